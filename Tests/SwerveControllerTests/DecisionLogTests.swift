@testable import SwerveController
import Logging
import SwerveCore
import Testing

/// What a step's decisions look like in the log: one line each, or one summary per kind when a
/// step takes many.
@Suite struct DecisionLogLines {
    let now = Timestamp(milliseconds: 1_700_000_000_000)

    func assign(_ tag: String, node: String) -> Action {
        .assign(ReplicaAssignment(replica: ReplicaReference(tag: tag, backend: String(tag.prefix { $0 != "#" }), node: node), version: "v1",
                                  replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1)),
                                  userConfig: nil, maxConcurrentQueries: 100, gracefulShutdownWaitLoopS: 2))
    }

    @Test func aFewDecisionsAreOneLineEach() {
        let lines = DecisionLog.lines([assign("api#1", node: "n1"), assign("api#2", node: "n2"), .completeGoal("g1")], now: now)
        #expect(lines.map(\.message) == ["assigned api#1 to node n1", "assigned api#2 to node n2", "goal g1 completed"])
        #expect(lines[0].metadata == ["backend": "api", "replica": "api#1", "node": "n1"])
    }

    @Test func manyOfOneKindAreOneSummaryAndTheOtherKindsStayAsTheyAre() {
        var actions: [Action] = (0..<3000).map { assign("api#\($0)", node: "n\($0 % 40)") }
        actions += (0..<500).map { assign("web#\($0)", node: "n\($0 % 40)") }
        actions += [.completeGoal("g1"), .forget(ReplicaReference(tag: "api#old", backend: "api", node: "n1"))]
        let lines = DecisionLog.lines(actions, now: now)
        #expect(lines.count == 3, "\(lines.map(\.message))")
        #expect(lines[0].message == "assigned 3500 replicas (api: 3000, web: 500) on 40 nodes; first: api#0, api#1, api#2, …")
        #expect(lines[0].metadata == ["replicas": "3500", "nodes": "40"])
        #expect(lines[1].message == "goal g1 completed")
        #expect(lines[2].message == "forgot stopped api#old")
    }

    @Test func theLimitIsPerKindAndFailedGoalsStayNotices() {
        let exactly = (0..<DecisionLog.perKindLimit).map { assign("api#\($0)", node: "n1") }
        #expect(DecisionLog.lines(exactly, now: now).count == DecisionLog.perKindLimit)
        let failures: [Action] = (0...DecisionLog.perKindLimit).map { .failGoal("g\($0)", reason: "bad") }
        let summary = DecisionLog.lines(failures, now: now)
        #expect(summary.count == 1 && summary[0].level == .notice)
        #expect(summary[0].message.hasPrefix("\(DecisionLog.perKindLimit + 1) goals failed"))
    }

    @Test func aGoneNodeSaysWhatWasSeenOfItAndAFleetIsOneLine() {
        let few = DecisionLog.nodeLines(gone: ["n1", "n2"], alive: ["n3"], listed: ["n1", "n3"])
        #expect(few.map(\.message) == ["node n1 is gone: its record expired (it is still in the nodes set)",
                                       "node n2 is gone: it has no record and left the nodes set",
                                       "node n3 is alive"])
        #expect(few[0].level == .warning && few[2].level == .info && few[0].metadata == ["node": "n1"])
        let fleet = (0...DecisionLog.perKindLimit).map { "n\($0)" }
        let many = DecisionLog.nodeLines(gone: fleet, alive: fleet, listed: [])
        #expect(many.map(\.message) == ["\(fleet.count) nodes are gone (first: n0, n1, n2, n3, n4, …)", "\(fleet.count) nodes are alive (first: n0, n1, n2, n3, n4, …)"])
    }
}
