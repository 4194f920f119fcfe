import Foundation
import Glibc
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

/// `swerve node cordon|drain|uncordon`, as an operator uses them, against a real leader.
extension ControllerProcesses {
    func placements() async throws -> [String] {
        try await routed().map(\.node).sorted()
    }

    @Test func anOperatorDrainsCordonsAndUncordonsNodes() async throws {
        let leader = try controller("c1")
        let first = try node("n1", cpu: 8)
        let second = try node("n2", cpu: 8)
        defer { leader.kill(); first.kill(SIGTERM); second.kill(SIGTERM) }
        let echo = ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1))
        try await awaitRegistered("n1", "n2")
        #expect(try await request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2, gracefulShutdownWaitLoopS: 0.1), replicaConfig: echo),
                                  goal: "g-1") == GoalOutcome(goal: "g-1"))
        #expect(try await placements() == ["n1", "n2"])

        let drain = try await cli(["node", "drain", "n2", "--wait", "--timeout", "30"])
        #expect(drain.status == 0 && drain.output.contains("node/n2 drained"), "\(drain)")
        #expect(try await placements() == ["n1", "n1"], "n2's replica moved to n1")
        let listed = try await cli(["get", "nodes"])
        #expect(listed.output.split(separator: "\n").contains { $0.hasPrefix("n2") && $0.contains("Draining") }, "\(listed.output)")

        #expect(try await cli(["node", "uncordon", "n2"]).output.contains("node/n2 uncordoned"))
        #expect(try await cli(["node", "cordon", "n1"]).output.contains("node/n1 cordoned"))
        #expect(try await request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 4)), goal: "g-2") == GoalOutcome(goal: "g-2"))
        #expect(try await placements() == ["n1", "n1", "n2", "n2"], "new replicas only on the uncordoned node; the cordoned keeps its own")
        let cordoned = try await cli(["get", "nodes"])
        #expect(cordoned.output.split(separator: "\n").contains { $0.hasPrefix("n1") && $0.contains("Cordoned") }, "\(cordoned.output)")

        let invalid = try await cli(["node", "cordon", "no such node!"])
        #expect(invalid.status != 0 && invalid.errors.contains("is not a node id"), "\(invalid)")
    }
}
