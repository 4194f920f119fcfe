import SwerveCore
@testable import SwerveNode
import SwerveProtocol
import Testing

@Suite struct NodeConvergenceRules {
    func assignment(_ tag: String) -> AssignmentDocument {
        AssignmentDocument(ReplicaAssignment(replica: ReplicaReference(tag: tag, backend: "api", node: "n1"), version: "v",
                                             replicaConfig: ReplicaConfig(workload: .builtin(name: "echo")), userConfig: nil,
                                             maxConcurrentQueries: 1, gracefulShutdownWaitLoopS: 0))
    }

    func actions(_ view: NodeView, running: [RunningWorker] = [], ranBefore: Set<String> = [], reported: Set<String> = [], now: Timestamp = 1000, shutdownDeadline: Timestamp? = nil) -> [NodeAction] {
        NodeConvergence.actions(view: view, running: Dictionary(uniqueKeysWithValues: running.map { ($0.tag, $0) }), ranBefore: ranBefore, reported: reported, now: now, shutdownDeadline: shutdownDeadline)
    }

    @Test func anAssignedReplicaWithoutAWorkerIsStarted() {
        #expect(actions(NodeView(assigned: ["a#1": assignment("a#1")])) == [.start(assignment("a#1"))])
    }

    @Test func aRunningAssignedReplicaIsLeftAlone() {
        #expect(actions(NodeView(assigned: ["a#1": assignment("a#1")]), running: [RunningWorker(tag: "a#1", pid: 5)]).isEmpty)
    }

    @Test func aReplicaThatRanHereBeforeIsNeverRestartedByTheAgent() {
        #expect(actions(NodeView(assigned: ["a#1": assignment("a#1")]), ranBefore: ["a#1"]).isEmpty)
    }

    @Test func aWorkerWhoseAssignmentWasRemovedIsKilled() {
        #expect(actions(NodeView(), running: [RunningWorker(tag: "a#1", pid: 5)]) == [.kill(tag: "a#1", pid: 5, reason: "its assignment was removed")])
    }

    @Test func aForcedDrainKillsAtOnceAndAPassedDeadlineKills() {
        let view = NodeView(assigned: ["a#1": assignment("a#1"), "a#2": assignment("a#2")],
                            drains: ["a#1": DrainRequest(tag: "a#1", deadline: 9999, force: true), "a#2": DrainRequest(tag: "a#2", deadline: 1000, force: false)])
        #expect(actions(view, running: [RunningWorker(tag: "a#1", pid: 5), RunningWorker(tag: "a#2", pid: 6)], now: 1000) == [
            .kill(tag: "a#1", pid: 5, reason: "force-kill requested"), .kill(tag: "a#2", pid: 6, reason: "its drain deadline passed"),
        ])
        #expect(actions(view, running: [RunningWorker(tag: "a#2", pid: 6)], now: 999).isEmpty, "before the deadline the worker drains by itself")
    }

    @Test func aKillIsSentOnce() {
        #expect(actions(NodeView(), running: [RunningWorker(tag: "a#1", pid: 5, killSent: true)]).isEmpty)
    }

    @Test func aReplicaWithADrainRequestIsNotStarted() {
        #expect(actions(NodeView(assigned: ["a#1": assignment("a#1")], drains: ["a#1": DrainRequest(tag: "a#1", deadline: 1, force: false)])).isEmpty)
    }

    @Test func nothingStartsWhileShuttingDown() {
        #expect(actions(NodeView(assigned: ["a#1": assignment("a#1")]), shutdownDeadline: 5000).isEmpty)
    }

    @Test func workersStillRunningAtTheShutdownDeadlineAreKilled() {
        let view = NodeView(assigned: ["a#1": assignment("a#1")])
        #expect(actions(view, running: [RunningWorker(tag: "a#1", pid: 5)], now: 4999, shutdownDeadline: 5000).isEmpty, "they drain until then")
        #expect(actions(view, running: [RunningWorker(tag: "a#1", pid: 5)], now: 5000, shutdownDeadline: 5000) == [
            .kill(tag: "a#1", pid: 5, reason: "it did not drain before the shutdown timeout"),
        ])
    }

    @Test func aMalformedAssignmentIsReportedOnceAndLeavesTheOthersRunning() {
        let view = NodeView(assigned: ["a#2": assignment("a#2")], malformed: ["a#1": "bad"])
        #expect(actions(view, running: [RunningWorker(tag: "a#1", pid: 5)]) == [.reportMalformed(tag: "a#1", reason: "bad"), .start(assignment("a#2"))])
        #expect(actions(view, running: [RunningWorker(tag: "a#1", pid: 5)], reported: ["a#1"]) == [.start(assignment("a#2"))], "its worker is not killed for it")
    }
}

@Suite struct StoreLossRules {
    @Test func aVersionThatWentBackOrVanishedMeansRedisLostWrites() {
        #expect(!NodeConvergence.storeLostWrites(lastRead: nil, read: nil), "a new node")
        #expect(!NodeConvergence.storeLostWrites(lastRead: nil, read: 3), "the first read")
        #expect(!NodeConvergence.storeLostWrites(lastRead: 3, read: 3))
        #expect(!NodeConvergence.storeLostWrites(lastRead: 3, read: 9))
        #expect(NodeConvergence.storeLostWrites(lastRead: 9, read: 3), "restored from an older file")
        #expect(NodeConvergence.storeLostWrites(lastRead: 9, read: nil), "restarted empty")
    }

    @Test func aWorkerKeptAfterALossIsNotKilledForItsMissingAssignmentButStillForADrain() {
        let kept = NodeView(keptAfterLoss: ["a#1", "a#2"])
        let running = [RunningWorker(tag: "a#1", pid: 5), RunningWorker(tag: "a#2", pid: 6), RunningWorker(tag: "a#3", pid: 7)]
        #expect(NodeConvergence.actions(view: kept, running: Dictionary(uniqueKeysWithValues: running.map { ($0.tag, $0) }), ranBefore: [],
                                        reported: [], now: 1000, shutdownDeadline: nil)
                == [.kill(tag: "a#3", pid: 7, reason: "its assignment was removed")], "a#3 was not running when the loss was seen")
        var drained = kept
        drained.drains["a#2"] = DrainRequest(tag: "a#2", deadline: 0, force: true)
        #expect(NodeConvergence.actions(view: drained, running: ["a#2": RunningWorker(tag: "a#2", pid: 6)], ranBefore: [],
                                        reported: [], now: 1000, shutdownDeadline: nil)
                == [.kill(tag: "a#2", pid: 6, reason: "force-kill requested")])
    }
}

@Suite struct NodeMetricsRules {
    @Test func exitsAreGroupedByWhatEndedThem() {
        #expect(NodeMetrics.exitReason(code: 0, signal: nil, killedByAgent: false) == "drained")
        #expect(NodeMetrics.exitReason(code: 2, signal: nil, killedByAgent: false) == "failed")
        #expect(NodeMetrics.exitReason(code: nil, signal: 9, killedByAgent: true) == "killed")
        #expect(NodeMetrics.exitReason(code: nil, signal: 9, killedByAgent: false) == "crashed", "a SIGKILL the agent did not send: the OOM killer, someone")
        #expect(NodeMetrics.exitReason(code: nil, signal: 11, killedByAgent: true) == "crashed")
    }
}
