import Glibc
import SwerveCore
import SwerveTestSupport
import Testing

/// A node whose workers listen on an IPv6 address: the address travels typed (`[::1]:PORT`)
/// from the ready record through the routing view to the router's upstream connection.
extension RouterProcesses {
    @Test func aWorkerOnIPv6LoopbackIsRouted() async throws {
        let leader = try controller("c1")
        let agent = try node(address: "::1")
        let front = try await router()
        defer { leader.kill(); agent.kill(SIGTERM); front.process.kill() }
        #expect(try await request(backend("echo", replicas: 1, route: "/echo"), goal: "g-1") == GoalOutcome(goal: "g-1"))
        try await awaitRouted(front, backend: "echo", count: 1)
        let (_, address) = try #require(try await routedReplicas("echo").first)
        let typed = try #require(HostPort(address), "the routed address \(address) parses")
        #expect(typed.host == "::1", "the replica advertises its IPv6 address: \(address)")
        #expect(address.hasPrefix("[::1]:"), "written with the host in brackets: \(address)")

        let response = try await httpRequest(front.address, method: "POST", path: "/echo/x", body: Array("over v6".utf8))
        #expect(response.status == 200)
        #expect(response.body == Array("over v6".utf8), "the router proxied to [::1]")
    }
}
