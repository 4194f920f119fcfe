@testable import SwerveCore
import SwerveLauncher
import Testing

/// Each chaos check finds the violation it exists for, and passes a healthy cluster.
@Suite struct ChaosInvariantChecks {
    @Test func anEpochActedOnByTwoControllersOrGoingBackIsAViolation() {
        #expect(ChaosInvariants.oneControllerPerEpoch([(1, "a"), (1, "a"), (2, "b"), (3, "a")]).isEmpty)
        let twice = ChaosInvariants.oneControllerPerEpoch([(1, "a"), (2, "b"), (2, "c")])
        #expect(twice == ["epoch 2 was acted on by 2 controllers: b, c"])
        let back = ChaosInvariants.oneControllerPerEpoch([(1, "a"), (2, "b"), (1, "a")])
        #expect(back == ["event 3 was written under epoch 1 after one under epoch 2: a deposed leader's write landed"])
        #expect(ChaosInvariants.electionsIncrease([(1, "a"), (2, "b"), (2, "c")]).count == 1)
        #expect(ChaosInvariants.electionsIncrease([(1, "a"), (2, "b"), (5, "a")]).isEmpty)
    }

    func state(target: Int, replicas: [ReplicaRecord]) -> BackendState {
        var backend = BackendRecord(tag: "api", config: BackendConfig(numReplicas: target),
                                    replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1)), generation: 1, goal: "g")
        backend.replicas = replicas
        var state = BackendState()
        state.backends = [backend]
        return state
    }

    func replica(_ n: Int, _ state: ReplicaState, version: String? = nil, pid: Int32? = nil) -> ReplicaRecord {
        let version = version ?? ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1)).version
        return ReplicaRecord(tag: "api#\(n)", backend: "api", version: version, state: state, node: "n1",
                             endpoint: pid.map { ReplicaEndpoint(address: HostPort(host: "127.0.0.1", port: 1), pid: $0) })
    }

    @Test func replicasMustBeTheTargetRunningAtTheCurrentVersion() {
        #expect(ChaosInvariants.replicasConverged(state(target: 2, replicas: [replica(1, .running), replica(2, .running)])).isEmpty)
        #expect(ChaosInvariants.replicasConverged(state(target: 2, replicas: [replica(1, .running), replica(2, .starting)])).count == 1)
        let outdated = ChaosInvariants.replicasConverged(state(target: 1, replicas: [replica(1, .running, version: "old")]))
        #expect(outdated.first?.contains("0 of 1 replicas running") == true && outdated.first?.contains("api#1 RUNNING at an old version") == true)
    }

    @Test func aWorkerNoRecordOwnsIsAnOrphanAndARunningRecordWithoutItsWorkerIsAGhost() {
        let cluster = state(target: 2, replicas: [replica(1, .running, pid: 10), replica(2, .running, pid: 11)])
        #expect(ChaosInvariants.workersMatchReplicas([("api#1", 10), ("api#2", 11)], cluster).isEmpty)
        #expect(ChaosInvariants.workersMatchReplicas([("api#1", 10), ("api#2", 11), ("api#9", 12)], cluster)
                == ["orphan: worker pid 12 runs api#9, which no live replica record owns"])
        #expect(ChaosInvariants.workersMatchReplicas([("api#1", 10), ("api#2", 13)], cluster).count == 2, "a second process for api#2, and 11 gone")
        #expect(ChaosInvariants.workersMatchReplicas([("api#1", 10)], cluster) == ["api#2 is RUNNING with pid 11, but no such worker process exists"])
    }

    @Test func everyRequestAppliedOnceAndEveryGoalSettled() {
        #expect(ChaosInvariants.requestsAndGoals(submitted: 3, inStream: 3, applied: 3, goals: ["a": GoalOutcome(goal: "a")]).isEmpty)
        #expect(ChaosInvariants.requestsAndGoals(submitted: 3, inStream: 3, applied: 4, goals: [:]) == ["3 requests submitted but the checkpoint counts 4 applied"])
        #expect(ChaosInvariants.requestsAndGoals(submitted: 3, inStream: 2, applied: 2, goals: [:]).count == 2)
        #expect(ChaosInvariants.requestsAndGoals(submitted: 1, inStream: 1, applied: 1, goals: ["a": GoalOutcome?.none]) == ["goal a never settled"])
        #expect(ChaosInvariants.requestsAndGoals(submitted: 1, inStream: 1, applied: 1, goals: ["a": GoalOutcome(goal: "a", failure: "")]) == ["goal a failed without a reason"])
    }
}
