@testable import SwerveController
import SwerveCore
import SwerveProtocol
import Testing

/// The order a step's writes go out in, and where each failpoint sits: pure, no Redis.
@Suite struct StepWritesRules {
    let keys = try! ClusterKeys(cluster: "t")
    let replica = ReplicaReference(tag: "api#1", backend: "api", node: "n1")
    var assignment: ReplicaAssignment {
        ReplicaAssignment(replica: replica, version: "v", replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 0.1)),
                          userConfig: nil, maxConcurrentQueries: 1, gracefulShutdownWaitLoopS: 1)
    }
    let status: [String: BackendStatus] = [:]
    let event = EventEntry(epoch: 1, controller: "c", at: Timestamp(milliseconds: 1), event: ClusterEvent(kind: .backendCreated, backend: "api", message: "created"))

    @Test func aRoutingViewAfterTheFirstGoesAsADeltaAndTheCheckpointAsItsChangedParts() {
        var ledger = CheckpointLedger()
        var routing = RoutingPublisher()
        let replicas = (0..<4).map { RoutedReplica(tag: "api#\($0)", address: HostPort(host: "10.0.0.1", port: 1), node: "n1") }
        let first = StepWrites([.writeCheckpoint(BackendState()), .publishRoutingView(RoutingView(version: 1, backends: ["api": Array(replicas.prefix(3))]))],
                               status: nil, appliedRequest: false, events: [], epoch: 1, keys: keys, checkpoints: &ledger, routing: &routing)
        #expect(first.calls.map(\.name) == ["writeCheckpoint", "publishSnapshot"])
        let second = StepWrites([.writeCheckpoint(BackendState()), .publishRoutingView(RoutingView(version: 2, backends: ["api": replicas]))],
                                status: nil, appliedRequest: false, events: [], epoch: 1, keys: keys, checkpoints: &ledger, routing: &routing)
        #expect(second.calls.map(\.name) == ["writeCheckpoint", "publishDelta"])
        #expect(second.calls[0].arguments.count == 5, "the header alone: no part changed")
    }

    @Test func theStatusAndEventsFollowTheCheckpointAndGoalsComeLast() {
        var ledger = CheckpointLedger()
        var routing = RoutingPublisher()
        let writes = StepWrites([.writeCheckpoint(BackendState()), .assign(assignment), .publishRoutingView(RoutingView(version: 1, backends: [:])), .completeGoal("g")],
                                status: status, appliedRequest: true, events: [event], epoch: 1, keys: keys, checkpoints: &ledger, routing: &routing)
        #expect(writes.calls.map(\.name) == ["writeCheckpoint", "writeStatus", "appendEvents", "assign", "publishSnapshot", "settleGoal"])
        #expect(writes.failpoints == [.afterCheckpoint: 0, .afterRequest: 0, .afterAssign: 3, .beforeGoalOutcomes: 4])
    }

    @Test func aStatusWithoutACheckpointGoesFirstAndShiftsTheFailpoints() {
        var ledger = CheckpointLedger()
        var routing = RoutingPublisher()
        let writes = StepWrites([.assign(assignment), .failGoal("g", reason: "r")], status: status, appliedRequest: false, events: [], epoch: 1, keys: keys, checkpoints: &ledger, routing: &routing)
        #expect(writes.calls.map(\.name) == ["writeStatus", "assign", "settleGoal"])
        #expect(writes.failpoints == [.afterAssign: 1, .beforeGoalOutcomes: 1])
    }

    @Test func eventsWithoutACheckpointFollowTheStatusAndShiftTheFailpoints() {
        var ledger = CheckpointLedger()
        var routing = RoutingPublisher()
        let elected = EventEntry(epoch: 2, controller: "c", at: Timestamp(milliseconds: 1), event: .leaderElected(controller: "c", epoch: 2))
        let writes = StepWrites([.assign(assignment)], status: status, appliedRequest: false, events: [elected], epoch: 2, keys: keys,
                                checkpoints: &ledger, routing: &routing)
        #expect(writes.calls.map(\.name) == ["writeStatus", "appendEvents", "assign"])
        #expect(writes.failpoints == [.afterAssign: 2])
        let alone = StepWrites([], status: nil, appliedRequest: false, events: [elected], epoch: 2, keys: keys, checkpoints: &ledger, routing: &routing)
        #expect(alone.calls.map(\.name) == ["appendEvents"], "a step with nothing else to write still records the election")
    }

    @Test func failpointsWithNothingOnTheirOtherSideAreLeftOut() {
        var ledger = CheckpointLedger()
        var routing = RoutingPublisher()
        let onlyCheckpoint = StepWrites([.writeCheckpoint(BackendState())], status: nil, appliedRequest: false, events: [], epoch: 1, keys: keys, checkpoints: &ledger, routing: &routing)
        #expect(onlyCheckpoint.failpoints.isEmpty, "after the checkpoint needs something after it")
        let onlyGoal = StepWrites([.completeGoal("g")], status: nil, appliedRequest: false, events: [], epoch: 1, keys: keys, checkpoints: &ledger, routing: &routing)
        #expect(onlyGoal.failpoints.isEmpty, "before goal outcomes needs something before them")
        let unplaced = StepWrites([.forceKill(ReplicaReference(tag: "api#2", backend: "api", node: ""))], status: nil, appliedRequest: false, events: [], epoch: 1, keys: keys, checkpoints: &ledger, routing: &routing)
        #expect(unplaced.calls.isEmpty, "a replica never placed has no process to kill")
    }

    @Test func theSplitStopsAtTheFirstArmedFailpointInCallOrder() throws {
        var ledger = CheckpointLedger()
        var routing = RoutingPublisher()
        let writes = StepWrites([.writeCheckpoint(BackendState()), .assign(assignment), .drain(replica, deadline: Timestamp(milliseconds: 9)), .completeGoal("g")],
                                status: nil, appliedRequest: false, events: [], epoch: 1, keys: keys, checkpoints: &ledger, routing: &routing)
        let split = try #require(writes.split { $0 == .beforeGoalOutcomes || $0 == .afterAssign })
        #expect(split.point == .afterAssign)
        #expect(split.through.map(\.name) == ["writeCheckpoint", "assign"])
        #expect(split.after.map(\.name) == ["drain", "settleGoal"])
        #expect(writes.split { _ in false } == nil)
    }
}

/// The status a term writes: recomputed only when the state changed, written only when it differs.
@Suite struct StatusLedgerRules {
    @Test func theFirstStepWritesAndAnUnchangedStatusIsNotWrittenAgain() {
        var ledger = StatusLedger()
        let empty = ledger.status(after: BackendState(), actions: [])
        #expect(ledger.change(to: empty) == empty, "nothing written yet this term")
        ledger.wrote(empty)
        #expect(ledger.change(to: ledger.status(after: BackendState(), actions: [])) == nil)
        #expect(ledger.change(to: ledger.status(after: BackendState(), actions: [.completeGoal("g")])) == nil, "recomputed, still the same")
    }
}
