import Foundation
import Glibc
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

/// Routine node operations lose no request: an agent stopped with SIGTERM (or SIGINT) drains
/// its node through the leader, and a second agent cannot take a live agent's node id.
extension RouterProcesses {
    func slowBackend(replicas: Int) -> Request.Operation {
        .createBackend(tag: "api", config: BackendConfig(numReplicas: replicas, gracefulShutdownWaitLoopS: 0.3, routePrefix: "/api", maxUnavailable: .count(0)),
                       replicaConfig: ReplicaConfig(workload: .builtin(name: "sleep", options: ["ms": .number(300)]), resources: Resources(cpu: 1)))
    }

    func nodesOfRoutedReplicas() async throws -> [String] {
        try await routed().map(\.node).sorted()
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func stoppingANodeAgentUnderLoadDrainsItsNodeAndFailsNoRequest(signal: Int32) async throws {
        let leader = try controller("c1")
        let staying = try node("n1", cpu: 4)
        let leaving = try node("n2", cpu: 4)
        let front = try await router()
        defer { leader.kill(); staying.kill(SIGTERM); leaving.kill(SIGKILL); front.process.kill() }
        try await awaitRegistered("n1", "n2")
        #expect(try await request(slowBackend(replicas: 2), goal: "g-1") == GoalOutcome(goal: "g-1"))
        #expect(try await nodesOfRoutedReplicas() == ["n1", "n2"], "one replica on each node")
        try await awaitRouted(front, backend: "api", count: 2)

        let load = LoadGenerator(address: front.address, path: "/api", clients: 6)
        load.start()
        try await load.awaitCompleted(12)
        leaving.kill(signal)
        let (status, stderr) = await leaving.exit()
        #expect(status == 0, "it exits cleanly once its worker drained:\n\(stderr)")
        #expect(try await nodesOfRoutedReplicas() == ["n1", "n1"], "the backend is back at its target on the other node")
        try await load.awaitCompleted(load.completed + 12)
        let (completed, failures) = await load.stop()
        #expect(failures.isEmpty, "\(failures.count) of \(completed) failed: \(failures.prefix(5))")
        #expect(try await client.send("ZSCORE", keys.nodes, "n2").isNull, "and it deregistered")
    }

    @Test func aSecondAgentWithALiveAgentsNodeIDRefusesToStart() async throws {
        let first = try node("n1")
        defer { first.kill(SIGTERM) }
        try await poll("n1's claim") { try await client.send("EXISTS", keys.nodeOwner("n1")).integer == 1 }
        let second = try node("n1")
        let (status, stderr) = await second.exit()
        #expect(status != 0)
        #expect(stderr.contains("node id \"n1\" is held by the agent with pid \(first.pid)"), "\(stderr)")
        #expect(try await client.send("EXISTS", keys.node("n1")).integer == 1, "the first agent is undisturbed")
    }

    @Test func anAgentRestartedRightAfterACrashTakesItsNodeIDBack() async throws {
        let crashed = try node("n1")
        try await poll("n1's claim") { try await client.send("EXISTS", keys.nodeOwner("n1")).integer == 1 }
        crashed.kill(SIGKILL)
        _ = await crashed.exit()
        let restarted = try node("n1")
        defer { restarted.kill(SIGTERM) }
        try await poll("the restarted agent's claim") {
            guard let bytes = try await client.send("GET", keys.nodeOwner("n1")).bytes else { return false }
            return try DocumentCodec.decode(NodeOwnerDocument.self, from: bytes, source: "owner").pid == restarted.pid
        }
    }
}
