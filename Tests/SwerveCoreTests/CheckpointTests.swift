import Foundation
@testable import SwerveCore
import SwerveErrors
import Testing

@Suite struct Checkpoints {
    /// A state with every kind of record in it: running, starting, pending, stopping,
    /// retired replicas, goals and outcomes.
    func busyState() -> BackendState {
        // 3.5 CPU: api's 2 running + 1 starting, 1 pending; old's 0.5 placed, then draining.
        var h = Harness(world: SimulatedWorld(nodes: [NodeInfo(id: "a", total: Resources(cpu: 3.5))]))
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2, userConfig: .object(["k": .array([.number(1.5), .null, .bool(true)])]), routePrefix: "/api"), replicaConfig: echo()))
        h.settle()
        h.world.holdReadiness = true
        h.world.holdDrains = true
        h.world.request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 4)))
        h.world.request(.createBackend(tag: "old", config: BackendConfig(numReplicas: 1), replicaConfig: echo(cpu: 0.5)))
        h.step()
        h.world.request(.deleteBackend(tag: "old", force: false))
        h.step()
        return h.state
    }

    @Test func aCheckpointRoundTripsExactlyAndEncodesDeterministically() throws {
        let state = busyState()
        #expect(state.backends.flatMap(\.replicas).map(\.state).contains(.shouldStart))
        #expect(state.backends.flatMap(\.replicas).map(\.state).contains(.stopping))
        let stored = Checkpoint.encode(state)
        let replicas = state.backends.flatMap(\.replicas) + state.retiredReplicas
        #expect(Set(stored.parts.keys) == Set(["nodes", "goals"] + state.backends.map { "backend:" + $0.tag } + replicas.map { "replica:" + $0.tag }))
        #expect(try Checkpoint.decode(stored) == state)
        #expect(Checkpoint.encode(try Checkpoint.decode(stored)) == stored)
    }

    @Test func theFastWriterWritesWhatFoundationWouldMeaningTheSameState() throws {
        var h = Harness()
        let awkward: JSONValue = .object([
            "quote\"back\\slash": .string("tab\tnew\nline\u{01}é/π 🚀"),
            "numbers": .array([.number(0.1), .number(-3), .number(1e-7), .number(123456789.125), .number(1e20)]),
            "flags": .array([.bool(true), .bool(false), .null]),
        ])
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 1, userConfig: awkward, gracefulShutdownTimeoutS: 2.5, routePrefix: "/a/\"b\""),
                                       replicaConfig: ReplicaConfig(workload: .command(arguments: ["sh", "-c", "echo \"$X\""], environment: ["X": "1"], healthPath: "/h"),
                                                                    resources: Resources(cpu: 0.25, memoryBytes: 1 << 30, custom: ["gpu": 1, "a.b": 0.5]))))
        h.settle()
        let state = h.state
        let parts = try Checkpoint.decode(Checkpoint.encode(state))
        let fast = try Checkpoint.decode(Checkpoint.Stored(header: Checkpoint.encodeVersion1(state)))
        let reference = try Checkpoint.decode(Checkpoint.Stored(header: Checkpoint.encodeWithFoundation(state)))
        #expect(parts == state)
        #expect(fast == state)
        #expect(reference == state)
        #expect(parts.backends[0].config.userConfig == awkward)
    }

    @Test func anAutoscaledBackendsDecisionRoundTripsWithItsPendingChange() throws {
        var h = Harness()
        let autoscaling = AutoscalingConfig(minReplicas: 0, maxReplicas: 9, initialReplicas: 2, targetOngoingRequests: 1.5, upscaleDelayS: 10, metricsIntervalS: 0.1)
        h.world.request(.createBackend(tag: "api", config: BackendConfig(autoscaling: autoscaling), replicaConfig: echo()))
        h.settle()
        h.world.loads["api"] = BackendLoad(average: 9, coveredS: 5)
        h.step()
        let state = h.state
        #expect(state.backends[0].autoscaling?.wanted == 6 && state.backends[0].autoscaling?.wantedSince != nil)
        #expect(try Checkpoint.decode(Checkpoint.encode(state)) == state)
        #expect(try Checkpoint.decode(Checkpoint.Stored(header: Checkpoint.encodeVersion1(state))) == state)
        #expect(try Checkpoint.decode(Checkpoint.Stored(header: Checkpoint.encodeWithFoundation(state))) == state)
    }

    @Test(arguments: [0, 7, -7, 10, 120, 1_700_000_000_000, 999_999_999_999_999_999, 1_000_000_000_000_000_000, Int64.max, Int64.min])
    func theWriterFormatsEveryIntegerExactly(value: Int64) {
        var writer = CheckpointWriter(capacity: 32)
        writer.integer(value)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == String(value))
    }

    @Test func anUnknownVersionIsRefusedNamingBothVersions() {
        var stored = Checkpoint.encode(BackendState())
        stored.header = Array(String(decoding: stored.header, as: UTF8.self).replacingOccurrences(of: "\"schemaVersion\":2", with: "\"schemaVersion\":7").utf8)
        #expect {
            try Checkpoint.decode(stored)
        } throws: { error in
            let error = error as! CheckpointError
            return error.code == .unknownVersion && error.message.contains("schema version 7") && error.message.contains("versions 1 and 2")
        }
    }

    @Test(arguments: [
        ("", "not a versioned Swerve checkpoint"),
        ("{\"state\":{}}", "missing \"schemaVersion\""),
        ("{\"schemaVersion\":1}", "missing \"state\""),
        ("{\"schemaVersion\":1,\"state\":{\"backends\":[]}}", "missing \"retiredReplicas\" at state"),
        ("{\"schemaVersion\":2,\"state\":{}}", "header is corrupted"),
    ])
    func aCorruptedCheckpointIsAnErrorNotAnEmptyState(text: String, expected: String) {
        #expect {
            try Checkpoint.decode(Checkpoint.Stored(header: Array(text.utf8)))
        } throws: { error in
            let error = error as! CheckpointError
            return error.code == .corrupted && error.message.contains(expected)
        }
    }

    @Test func aTruncatedHeaderOrPartIsRefused() throws {
        let stored = Checkpoint.encode(busyState())
        var header = stored
        header.header = Array(stored.header.prefix(stored.header.count / 2))
        #expect(throws: CheckpointError.self) { try Checkpoint.decode(header) }
        for field in stored.parts.keys {
            var part = stored
            part.parts[field] = Array(stored.parts[field]!.prefix(stored.parts[field]!.count / 2))
            #expect(throws: CheckpointError.self, "\(field)") { try Checkpoint.decode(part) }
        }
    }

    @Test func aMissingStrayOrMisfiledPartIsRefusedNamingIt() throws {
        let state = busyState()
        let stored = Checkpoint.encode(state)
        let tag = state.backends[0].replicas[0].tag
        var missing = stored
        missing.parts["replica:" + tag] = nil
        #expect { try Checkpoint.decode(missing) } throws: { ($0 as! CheckpointError).message.contains("parts are missing or left over") }
        var stray = stored
        stray.parts["replica:api#stray"] = stored.parts["replica:" + tag]
        stray.parts["replica:" + tag] = nil
        #expect { try Checkpoint.decode(stray) } throws: { ($0 as! CheckpointError).message.contains("part replica:api#stray holds replica \(tag)") }
        var unknown = stored
        unknown.parts["future"] = Array("{}".utf8)
        #expect { try Checkpoint.decode(unknown) } throws: { ($0 as! CheckpointError).message.contains("a part no Swerve writes: future") }
        var orphan = stored
        orphan.parts["backend:api"] = nil
        orphan.header = Checkpoint.encodeHeader(state, backends: state.backends.count - 1, replicas: state.backends.reduce(state.retiredReplicas.count) { $0 + $1.replicas.count })
        #expect { try Checkpoint.decode(orphan) } throws: { ($0 as! CheckpointError).message.contains("names backend api, which it does not hold") }
    }

    @Test func aCorruptedReplicaPartIsNamed() throws {
        let state = busyState()
        var stored = Checkpoint.encode(state)
        let field = "replica:" + state.backends[0].replicas[1].tag
        stored.parts[field] = Array(String(decoding: stored.parts[field]!, as: UTF8.self).replacingOccurrences(of: "\"state\":\"", with: "\"state\":\"x").utf8)
        #expect { try Checkpoint.decode(stored) } throws: { error in
            let message = (error as! CheckpointError).message
            return message.contains("(part \(field))") && message.contains("state")
        }
    }

    @Test func anInconsistentCheckpointIsRefused() throws {
        var state = busyState()
        state.backends[0].replicas.append(state.backends[0].replicas[0])
        #expect {
            try Checkpoint.decode(Checkpoint.Stored(header: Checkpoint.encodeVersion1(state)))
        } throws: { ($0 as! CheckpointError).message.contains("appears twice") }
        #expect(throws: CheckpointError.self, "a replica listed twice is stored once, and the header's count gives it away") {
            try Checkpoint.decode(Checkpoint.encode(state))
        }
    }
}

@Suite struct IncrementalCheckpoints {
    let busy = Checkpoints().busyState()

    @Test func aChangeToOneReplicaWritesItsPartAndTheHeaderOnly() throws {
        var ledger = CheckpointLedger()
        let first = ledger.write(busy)
        #expect(first.replacesAll)
        var stored = Checkpoint.Stored.applying(first, to: nil)
        #expect(stored == Checkpoint.encode(busy))

        #expect(ledger.write(busy) == CheckpointWrite(header: first.header, replacesAll: false, removed: [], parts: []), "nothing changed: the header alone")

        var next = busy
        let changed = try #require(next.backends[0].replicas.firstIndex { $0.state == .running })
        next.backends[0].replicas[changed].state = .shouldStop
        next.requestsApplied += 1
        let write = ledger.write(next)
        #expect(!write.replacesAll && write.removed.isEmpty)
        #expect(write.parts.map(\.field) == ["replica:" + next.backends[0].replicas[changed].tag])
        #expect(write.byteCount < 1_000)
        stored = Checkpoint.Stored.applying(write, to: stored)
        #expect(try Checkpoint.decode(stored) == next)
    }

    @Test func forgottenReplicasAndBackendsAreRemovedAndOrderSurvivesRetirement() throws {
        var h = settled(api: 4, web: 3, cpu: 16)
        var ledger = CheckpointLedger()
        var stored = Checkpoint.Stored.applying(ledger.write(h.state), to: nil)
        h.world.holdDrains = true
        h.world.request(.deleteBackend(tag: "api", force: false))
        h.world.request(.updateBackendConfig(tag: "web", patch: BackendConfigPatch(numReplicas: 1)))
        for _ in 0..<4 {
            h.step()
            stored = Checkpoint.Stored.applying(ledger.write(h.state), to: stored)
            #expect(try Checkpoint.decode(stored) == h.state)
        }
        #expect(!h.state.retiredReplicas.isEmpty || h.state.backend("api")?.deleting == true, "api's replicas are draining")
        h.world.holdDrains = false
        h.settle()
        let write = ledger.write(h.state)
        stored = Checkpoint.Stored.applying(write, to: stored)
        #expect(try Checkpoint.decode(stored) == h.state)
        #expect(h.state.backend("api") == nil)
        #expect(stored.parts.keys.filter { $0.hasPrefix("backend:") } == ["backend:web"])
        #expect(stored.parts.count == 3 + h.state.backends[0].replicas.count, "forgotten replicas' parts are gone")
    }

    @Test func aLoadedLedgerWritesOnlyWhatChangesAndAVersion1CheckpointIsReplacedWhole() throws {
        let stored = Checkpoint.encode(busy)
        var (state, ledger) = try Checkpoint.load(stored)
        #expect(ledger.write(state).parts.isEmpty, "the ledger knows what was loaded")
        state.liveNodes.append("z")
        #expect(ledger.write(state).parts.map(\.field) == ["nodes"])

        var (old, oldLedger) = try Checkpoint.load(Checkpoint.Stored(header: Checkpoint.encodeVersion1(busy)))
        #expect(old == busy)
        let upgrade = oldLedger.write(old)
        #expect(upgrade.replacesAll && upgrade.parts.count == Checkpoint.encode(busy).parts.count)
        #expect(try Checkpoint.decode(Checkpoint.Stored.applying(upgrade, to: nil)) == busy)
        old.requestsApplied += 1
        #expect(oldLedger.write(old).parts.isEmpty)
    }
}

@Suite struct RecoveryFromACheckpoint {
    /// Crashes after the checkpoint of the step that put a replica in `wanted`, before its
    /// actions ran; returns the harness of the new leader (the world kept going) and the tag.
    func crashWithAReplica(in wanted: ReplicaState) throws -> (Harness, String, BackendState) {
        var h = Harness(world: SimulatedWorld(nodes: [NodeInfo(id: "a", total: Resources(cpu: 2))]))
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        h.settle()
        h.world.holdReadiness = true
        h.world.holdDrains = true
        switch wanted {
        case .starting, .shouldStart:
            h.world.request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 3)))
            h.world.nodes["a"]!.total.cpu = wanted == .starting ? 3 : 2.5
        case .stopping:
            h.world.request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 1)))
        default:
            break
        }
        // The old leader's last step: its checkpoint is written, then it dies (actions lost).
        let (next, actions) = Reconciler.reconcile(h.state, h.world.observe())
        guard case .writeCheckpoint(let written)? = actions.first else {
            if wanted == .running { return (h, h.state.backends[0].replicas[0].tag, h.state) }
            throw TestFailure("no checkpoint")
        }
        #expect(written == next)
        let recovered = try Checkpoint.decode(Checkpoint.encode(written))
        let tag = try #require(recovered.backends[0].replicas.first { $0.state == wanted }?.tag)
        var newLeader = h
        newLeader.state = recovered
        return (newLeader, tag, written)
    }

    @Test func aRunningReplicaIsAdoptedAsItIs() throws {
        var (h, tag, _) = try crashWithAReplica(in: .running)
        let actions = Reconciler.recoveryActions(for: h.state)
        #expect(actions.assignedTags.isEmpty && actions.killedTags.isEmpty && actions.drainedTags.isEmpty)
        h.world.perform([.writeCheckpoint(h.state)] + actions)
        #expect(h.world.routingView?.backends["api"]?.contains { $0.tag == tag } == true)
        #expect(h.step().isEmpty, "nothing restarts")
    }

    @Test func onlyTheUserConfigsTheLastCheckpointedStepPushedArePushedAgain() throws {
        var h = settled(api: 2, web: 1, cpu: 8)
        var ledger = CheckpointLedger()
        var stored = Checkpoint.Stored.applying(ledger.write(h.state), to: nil)
        #expect(try Checkpoint.load(stored).ledger.pendingUserConfigs == [], "a step that pushed nothing")
        #expect(try Checkpoint.load(Checkpoint.Stored(header: Checkpoint.encodeVersion1(h.state))).ledger.pendingUserConfigs == nil,
                "a version 1 checkpoint does not say")

        // A new user config for api: its step checkpoints, then pushes to api's two replicas — and
        // the leader dies in between.
        h.world.request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(userConfig: .set(.object(["k": .number(2)])))))
        let (next, actions) = Reconciler.reconcile(h.state, h.world.observe(), settings: h.settings)
        let pushed = Set(actions.pushedTags)
        #expect(pushed == Set(next.backend("api")!.replicas.map(\.tag)))
        stored = Checkpoint.Stored.applying(ledger.write(next, pushing: Array(pushed)), to: stored)

        let (recovered, loaded) = try Checkpoint.load(stored)
        #expect(loaded.pendingUserConfigs == pushed)
        #expect(Set(Reconciler.recoveryActions(for: recovered, pendingUserConfigs: loaded.pendingUserConfigs).pushedTags) == pushed,
                "api's replicas again, web's not")
        #expect(Reconciler.recoveryActions(for: recovered).pushedTags.count == 3, "unknown: every RUNNING replica's")
    }

    @Test func aStartingReplicaIsAssignedAgainWithItsFullConfigAndKeepsWaiting() throws {
        // The seed called start() on recovered STARTING replicas without the backend info.
        var (h, tag, _) = try crashWithAReplica(in: .starting)
        let actions = Reconciler.recoveryActions(for: h.state)
        guard case .assign(let assignment)? = actions.first(where: { if case .assign = $0 { true } else { false } }) else {
            Issue.record("no assignment replayed")
            return
        }
        #expect(assignment.replica.tag == tag)
        #expect(assignment.replicaConfig == echo())
        #expect(assignment.version == echo().version)
        h.world.perform([.writeCheckpoint(h.state)] + actions)
        #expect(h.step().assignedTags.isEmpty, "still waiting, not placed twice")
        h.world.holdReadiness = false
        h.world.advance()
        h.step()
        #expect(h.backend("api")!.replicas.first { $0.tag == tag }?.state == .running)
    }

    @Test func aStoppingReplicaKeepsDrainingWithItsOriginalDeadline() throws {
        var (h, tag, written) = try crashWithAReplica(in: .stopping)
        let deadline = try #require(written.backends[0].replicas.first { $0.tag == tag }?.drainDeadline)
        let actions = Reconciler.recoveryActions(for: h.state)
        #expect(actions.contains(.drain(ReplicaReference(tag: tag, backend: "api", node: "a"), deadline: deadline)))
        h.world.perform([.writeCheckpoint(h.state)] + actions)
        h.world.advance(milliseconds: deadline.milliseconds - h.world.now.milliseconds)
        #expect(h.step().killedTags == [tag], "killed at the original deadline")
    }

    @Test func aPendingReplicaIsPlacedByTheNextStep() throws {
        var (h, tag, _) = try crashWithAReplica(in: .shouldStart)
        h.world.perform([.writeCheckpoint(h.state)] + Reconciler.recoveryActions(for: h.state))
        h.world.nodes["a"]!.total.cpu = 4
        #expect(h.step().assignedTags == [tag])
    }

    /// One running replica of "api", its record edited by `edit`, loaded as a new leader would.
    func recoveredWithAnEditedReplica(_ edit: (inout BackendState) -> Void) throws -> (Harness, String, BackendState) {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 1), replicaConfig: echo()))
        h.settle()
        var state = h.state
        edit(&state)
        h.state = try Checkpoint.decode(Checkpoint.encode(state))
        return (h, state.backends[0].replicas[0].tag, state)
    }

    @Test func aShouldStopReplicaInACheckpointIsDrainedByTheNextStep() throws {
        // No step leaves SHOULD_STOP behind, but a checkpoint written by another version might.
        var (h, tag, _) = try recoveredWithAnEditedReplica { state in
            state.backends[0].replicas[0].stopChosen(reason: "scaled down")
            state.backends[0].config.numReplicas = 0
        }
        let actions = h.step()
        #expect(actions.drainedTags == [tag])
        #expect(h.state.backends[0].replicas[0].state == .stopping)
    }

    @Test func aStoppedReplicaInACheckpointIsForgotten() throws {
        var (h, tag, state) = try recoveredWithAnEditedReplica { $0.backends[0].replicas[0].stopped(reason: "drained") }
        let actions = h.step()
        #expect(actions.contains(.forget(ReplicaReference(tag: tag, backend: "api", node: state.backends[0].replicas[0].node!))))
        #expect(h.state.backends[0].replicas.allSatisfy { $0.tag != tag })
        #expect(actions.assignedTags.count == 1, "and is replaced")
    }

    @Test func aForgetThatNeverRanIsSweptAtTheNextLoad() throws {
        // The step that forgot a stopped replica wrote its checkpoint, then its writes broke:
        // the assignment stayed in the node's hash, and the new checkpoint no longer knows it.
        var (h, tag, state) = try recoveredWithAnEditedReplica { $0.backends[0].replicas[0].stopped(reason: "drained") }
        let node = try #require(state.backends[0].replicas[0].node)
        _ = h.step()
        let known = h.state.backends[0].replicas.map(\.tag)
        let assigned = [node: known + [tag], "n-other": ["web#x1"]]
        #expect(Reconciler.orphanedAssignments(in: h.state, assigned: assigned) == [
            ReplicaReference(tag: tag, backend: "api", node: node), ReplicaReference(tag: "web#x1", backend: "web", node: "n-other"),
        ])
        #expect(Reconciler.orphanedAssignments(in: h.state, assigned: [node: known]).isEmpty, "every known replica's assignment stays")
        #expect(Reconciler.orphanedAssignments(in: state, assigned: [node: [tag]]).isEmpty, "a replica the state still holds (even stopped) is not an orphan")
    }

    @Test func goalOutcomesAreAnnouncedAgain() {
        var h = Harness()
        let goal = h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 1), replicaConfig: echo()))
        h.settle()
        #expect(Reconciler.recoveryActions(for: h.state).completedGoals == [goal])
    }
}

/// A harness whose backends `api` and `web`, of these sizes, run on one node of `cpu` CPUs.
func settled(api: Int, web: Int, cpu: Double) -> Harness {
    var h = Harness(world: SimulatedWorld(nodes: [NodeInfo(id: "a", total: Resources(cpu: cpu))]))
    h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: api), replicaConfig: echo()))
    h.world.request(.createBackend(tag: "web", config: BackendConfig(numReplicas: web), replicaConfig: echo()))
    h.settle()
    return h
}
