import Foundation
import SwerveCore
import SwerveErrors
@testable import SwerveProtocol
import Testing

@Suite struct KeyNames {
    let keys = try! ClusterKeys(cluster: "prod")

    @Test func everyKeyCarriesTheClustersHashTag() {
        #expect(keys.node("n1") == "swerve:{prod}:node:n1")
        #expect(keys.nodes == "swerve:{prod}:nodes")
        #expect(keys.assignments("n1") == "swerve:{prod}:assignments:n1")
        #expect(keys.assignmentsVersion("n1") == "swerve:{prod}:assignments:n1:version")
        #expect(keys.nodeNotify("n1") == "swerve:{prod}:node:n1:notify")
        #expect(keys.ready("api#x1") == "swerve:{prod}:replica:api#x1:ready")
        #expect(keys.drain("api#x1") == "swerve:{prod}:replica:api#x1:drain")
        #expect(keys.drained("api#x1") == "swerve:{prod}:replica:api#x1:drained")
        #expect(keys.exit("api#x1") == "swerve:{prod}:replica:api#x1:exit")
        #expect(keys.userConfig("api#x1") == "swerve:{prod}:replica:api#x1:config")
        #expect(keys.control("api#x1") == "swerve:{prod}:replica:api#x1:control")
        #expect(keys.wake == "swerve:{prod}:wake")
    }

    @Test func aReplicasCleanUpCoversEveryKeyItHas() {
        #expect(Set(keys.replicaKeys("t")) == [keys.ready("t"), keys.drain("t"), keys.drained("t"), keys.exit("t"), keys.userConfig("t")])
    }

    @Test(arguments: ["", "a{b}", "a:b", "with space", String(repeating: "x", count: 65)])
    func aClusterNameThatWouldBreakTheKeysIsRefused(name: String) {
        #expect {
            try ClusterKeys(cluster: name)
        } throws: { error in
            let error = error as! ProtocolError
            return error.code == .invalidName && error.message.contains("SWERVE_CLUSTER")
        }
    }
}

@Suite struct Documents {
    func roundTrip<D: ProtocolDocument>(_ document: D) throws -> D {
        try DocumentCodec.decode(D.self, from: DocumentCodec.encode(document), source: "test-key")
    }

    @Test func everyDocumentRoundTrips() throws {
        let assignment = AssignmentDocument(ReplicaAssignment(
            replica: ReplicaReference(tag: "api#1", backend: "api", node: "n1"), version: "abc",
            replicaConfig: ReplicaConfig(workload: .command(arguments: ["python3", "-m", "http.server"], environment: ["A": "1"], healthPath: "/healthz"), resources: Resources(cpu: 0.5)),
            userConfig: .object(["k": .number(1)]), maxConcurrentQueries: 8, gracefulShutdownWaitLoopS: 2))
        #expect(try roundTrip(assignment) == assignment)
        let node = NodeRecord(id: "n1", address: "10.1.2.3", resources: Resources(cpu: 4, memoryBytes: 8 << 30, custom: ["gpu": 1]), pid: 42, startedAt: 1)
        #expect(try roundTrip(node) == node)
        let ready = ReadyRecord(tag: "api#1", backend: "api", node: "n1", version: "abc", address: HostPort(host: "10.1.2.3", port: 40001), pid: 43, startedAt: 2, readyAt: 3)
        #expect(try roundTrip(ready) == ready)
        #expect(try roundTrip(DrainRequest(tag: "api#1", deadline: 10, force: true)) == DrainRequest(tag: "api#1", deadline: 10, force: true))
        #expect(try roundTrip(DrainedRecord(tag: "api#1", drainedAt: 11)) == DrainedRecord(tag: "api#1", drainedAt: 11))
        let exit = ExitRecord(tag: "api#1", node: "n1", pid: 43, code: nil, signal: 9, exitedAt: 12)
        #expect(try roundTrip(exit) == exit)
        #expect(try roundTrip(UserConfigDocument(tag: "api#1", userConfig: nil)) == UserConfigDocument(tag: "api#1", userConfig: nil))
        #expect(try roundTrip(ControlMessage(event: .drain)) == ControlMessage(event: .drain))
        #expect(try roundTrip(WakeUp(event: .ready, subject: "api#1")) == WakeUp(event: .ready, subject: "api#1"))
    }

    @Test func documentsAreWrittenWithSortedKeysAndUnescapedSlashes() {
        let text = String(decoding: DocumentCodec.encode(DrainRequest(tag: "a/b#1", deadline: 5, force: false)), as: UTF8.self)
        #expect(text == #"{"deadline":5,"force":false,"schemaVersion":1,"tag":"a/b#1"}"#)
    }

    @Test func exitReasonsNameTheCodeOrTheSignal() {
        #expect(ExitRecord(tag: "t", node: "n", pid: 1, code: 3, signal: nil, exitedAt: 0).reason == "exit code 3")
        #expect(ExitRecord(tag: "t", node: "n", pid: 1, code: nil, signal: 9, exitedAt: 0).reason == "signal 9 (SIGKILL)")
    }

    @Test func anUnknownSchemaVersionIsRefusedNamingTheKey() {
        #expect {
            try DocumentCodec.decode(ReadyRecord.self, from: Array(#"{"schemaVersion":2,"tag":"x"}"#.utf8), source: "swerve:{c}:replica:x:ready")
        } throws: { error in
            let error = error as! ProtocolError
            return error.code == .unknownVersion && error.message.hasPrefix("swerve:{c}:replica:x:ready holds a ReadyRecord of schema version 2")
        }
    }

    @Test(arguments: [
        ("", "(no schemaVersion): (empty)"),
        ("not json", "(no schemaVersion): \"not json\""),
        (#"{"schemaVersion":1,"tag":"x"}"#, "missing field \"deadline\""),
        (#"{"schemaVersion":1,"tag":"x","deadline":"soon","force":true}"#, "field \"deadline\""),
        // The fuzzer's crash: Foundation's decoder traps on 513 levels; refused before it.
        (String(repeating: "[", count: 513), "nested deeper than 64 levels"),
        (#"{"schemaVersion":1,"tag":"x","deadline":1,"force":"# + String(repeating: "[", count: 100), "nested deeper than 64 levels"),
    ])
    func aMalformedValueIsAnErrorNamingTheKeyAndTheField(text: String, expected: String) {
        #expect {
            try DocumentCodec.decode(DrainRequest.self, from: Array(text.utf8), source: "swerve:{c}:replica:x:drain")
        } throws: { error in
            let error = error as! ProtocolError
            return error.code == .malformed && error.message.hasPrefix("swerve:{c}:replica:x:drain") && error.message.contains(expected)
        }
    }
}

@Suite struct RoutingSnapshotChains {
    func replica(_ tag: String) -> RoutedReplica { RoutedReplica(tag: tag, address: HostPort(host: "10.0.0.1", port: 1), node: "n1") }

    @Test func theDeltasAfterASnapshotBringItUpToDateAndAGapStopsThem() {
        let v1 = RoutingView(version: 1, backends: ["api": [replica("api#1")]])
        let v2 = RoutingView(version: 2, backends: ["api": [replica("api#1"), replica("api#2")]])
        let v3 = RoutingView(version: 3, backends: ["api": [replica("api#2")]])
        let v4 = RoutingView(version: 4, backends: [:])
        let whole = Snapshot(epoch: 7, view: v1)
        let deltas = [RoutingDelta(from: v1, to: v2), RoutingDelta(from: v2, to: v3)].map { SnapshotNotice(epoch: 7, delta: $0) }
        let (current, complete) = whole.following(deltas)
        #expect(complete && current.epoch == 7 && current.view == v3)
        // A snapshot rewritten at version 2 with the list not yet emptied: delta 2 is skipped.
        #expect(Snapshot(epoch: 7, view: v2).following(deltas) == (Snapshot(epoch: 7, view: v3), true))
        let gap = [deltas[0], SnapshotNotice(epoch: 7, delta: RoutingDelta(from: v3, to: v4))]
        #expect(whole.following(gap) == (Snapshot(epoch: 7, view: v2), false), "version 3's delta is missing")
        #expect(whole.following([SnapshotNotice(epoch: 8, delta: deltas[0].delta!)]) == (whole, false), "another term's delta")
    }
}
