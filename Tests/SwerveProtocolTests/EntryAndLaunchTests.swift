import Foundation
import SwerveCore
import SwerveErrors
import SwerveProtocol
import Testing

@Suite struct RequestEntries {
    let operation = Request.Operation.deleteBackend(tag: "api", force: true)

    func fields(_ entry: RequestEntry) -> [String: [UInt8]] {
        Dictionary(uniqueKeysWithValues: entry.fields().map { ($0.name, $0.value) })
    }

    @Test func anEntryRoundTrips() throws {
        let entry = RequestEntry(goal: "g-1", operation: operation)
        let request = try RequestEntry.decode(id: "17-3", fields: fields(entry), source: "requests").get()
        #expect(request == Request(id: RequestID(milliseconds: 17, sequence: 3), goal: "g-1", operation: operation))
    }

    @Test func anUnreadableEntryStillNamesItsGoalAndTheField() {
        var broken = fields(RequestEntry(goal: "g-2", operation: operation))
        broken["request"] = Array(#"{"deleteBackend":{"tag":"api"}}"#.utf8)
        guard case .failure(let unreadable) = RequestEntry.decode(id: "18-0", fields: broken, source: "requests") else {
            Issue.record("a request without force decoded"); return
        }
        #expect(unreadable.goal == "g-2")
        #expect(unreadable.error.message.contains("requests entry 18-0 field \"request\""), "\(unreadable.error.message)")
        #expect(unreadable.error.message.contains("force"), "names the missing field: \(unreadable.error.message)")
    }

    @Test func aRequestOfAnotherVersionOrWithoutOneIsRefused() {
        var newer = fields(RequestEntry(goal: "g-3", operation: operation))
        newer["schemaVersion"] = Array("2".utf8)
        guard case .failure(let unreadable) = RequestEntry.decode(id: "19-0", fields: newer, source: "requests") else {
            Issue.record("version 2 decoded"); return
        }
        #expect(unreadable.error.code == .unknownVersion && unreadable.goal == "g-3")
        newer["schemaVersion"] = nil
        guard case .failure(let missing) = RequestEntry.decode(id: "19-0", fields: newer, source: "requests") else {
            Issue.record("no version decoded"); return
        }
        #expect(missing.error.message.contains("missing field \"schemaVersion\""))
    }

    @Test func anEntryWithoutAGoalHasNoOneToTell() {
        guard case .failure(let unreadable) = RequestEntry.decode(id: "20-0", fields: [:], source: "requests") else {
            Issue.record("an empty entry decoded"); return
        }
        #expect(unreadable.goal == nil && unreadable.error.message.contains("\"goal\""))
    }
}

@Suite struct EventEntries {
    let entry = EventEntry(epoch: 4, controller: "c1", at: Timestamp(milliseconds: 1_700_000_000_123),
                           event: ClusterEvent(kind: .replica, backend: "api", replica: "api#x", goal: nil, message: "STARTING → RUNNING"))

    func fields(_ entry: EventEntry) -> [String: [UInt8]] {
        Dictionary(uniqueKeysWithValues: entry.fields().map { ($0.name, Array($0.value.utf8)) })
    }

    @Test func anEventRoundTripsWithEveryFieldPresent() throws {
        #expect(entry.fields().count == EventEntry.fieldCount)
        var read = try EventEntry(id: "5-0", fields: fields(entry), source: "events")
        #expect(read.id == "5-0")
        read.id = ""
        #expect(read == entry)
    }

    @Test func aBrokenEventNamesTheEntryAndField() {
        var broken = fields(entry)
        broken["at"] = Array("soon".utf8)
        #expect { try EventEntry(id: "6-0", fields: broken, source: "events") } throws: { error in
            (error as? ProtocolError)?.message == "events entry 6-0: field \"at\" is not an integer: \"soon\""
        }
        broken = fields(entry)
        broken["kind"] = Array("Exploded".utf8)
        #expect { try EventEntry(id: "6-1", fields: broken, source: "events") } throws: { error in
            (error as? ProtocolError)?.message.contains("\"kind\" is not an event kind") == true
        }
        broken = fields(entry)
        broken["schemaVersion"] = Array("9".utf8)
        #expect { try EventEntry(id: "6-2", fields: broken, source: "events") } throws: { error in
            (error as? ProtocolError)?.code == .unknownVersion
        }
    }
}

@Suite struct LeaderDocuments {
    @Test func snapshotsGoalOutcomesAndTheStatusAreVersioned() throws {
        let snapshot = Snapshot(epoch: 3, view: RoutingView(version: 2, backends: ["api": [RoutedReplica(tag: "api#1", address: HostPort(host: "::1", port: 80), node: "n1")]]))
        #expect(try DocumentCodec.decode(Snapshot<RoutingView>.self, from: DocumentCodec.encode(snapshot), source: "s") == snapshot)
        var future = String(decoding: DocumentCodec.encode(snapshot), as: UTF8.self)
        future = future.replacingOccurrences(of: #""schemaVersion":1"#, with: #""schemaVersion":2"#)
        #expect { try DocumentCodec.decode(Snapshot<RoutingView>.self, from: Array(future.utf8), source: "swerve:{c}:snapshot:routing") } throws: { error in
            let error = error as! ProtocolError
            return error.code == .unknownVersion && error.message.contains("swerve:{c}:snapshot:routing")
        }

        let outcome = GoalOutcome(goal: "g", failure: "no such backend")
        #expect(try DocumentCodec.decode(GoalOutcomeDocument.self, from: DocumentCodec.encode(GoalOutcomeDocument(outcome)), source: "g").outcome == outcome)
        let healthy = try DocumentCodec.decodeValue(BackendStatus.self, from: Array(#"{"kind":"healthy","reason":"1/1 running","running":1,"target":1}"#.utf8), source: "t")
        let status = StatusDocument(backends: ["api": healthy])
        #expect(try DocumentCodec.decode(StatusDocument.self, from: DocumentCodec.encode(status), source: "s") == status)
        // The shape before versioning (a bare map) is refused, naming the key.
        #expect { try DocumentCodec.decode(StatusDocument.self, from: Array(#"{"api":{}}"#.utf8), source: "swerve:{c}:status") } throws: { error in
            (error as? ProtocolError)?.message.contains("swerve:{c}:status does not hold a StatusDocument") == true
        }
    }
}

@Suite struct WorkerLaunchEnvironments {
    @Test func theEnvironmentRoundTrips() throws {
        let launch = WorkerLaunchEnvironment(redisURL: "redis://10.0.0.1:6380/2", keys: try ClusterKeys(cluster: "prod"), nodeID: "n1",
                                             nodeAddress: "::1", replicaTag: "api#k3", agentPID: 77, heartbeatTTL: .milliseconds(1500))
        let environment = launch.environment()
        #expect(environment[WorkerLaunchEnvironment.Variable.heartbeatTTL] == "1500")
        #expect(try WorkerLaunchEnvironment(environment: environment) == launch)
    }

    @Test func everyMissingOrInvalidVariableIsNamedAtOnce() {
        let environment = ["SWERVE_CLUSTER": "a:b", "SWERVE_NODE_ADDRESS": "bad host", "SWERVE_AGENT_PID": "-3", "SWERVE_HEARTBEAT_TTL_MS": "5"]
        #expect { try WorkerLaunchEnvironment(environment: environment) } throws: { error in
            let message = (error as? ProtocolError)?.message ?? ""
            return ["SWERVE_CLUSTER", "SWERVE_NODE_ID is not set", "SWERVE_NODE_ADDRESS: the host \"bad host\"", "SWERVE_REPLICA_TAG is not set",
                    "SWERVE_AGENT_PID \"-3\"", "SWERVE_HEARTBEAT_TTL_MS \"5\""].allSatisfy(message.contains)
        }
    }
}
