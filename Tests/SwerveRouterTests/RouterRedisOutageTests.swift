import Foundation
import Glibc
import Logging
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

/// Routers and a Redis of the test's own, which it stops and starts.
@Suite(.timeLimit(.minutes(1))) struct RouterRedisOutages {
    /// A cluster on `server`, with the router helpers of ``RouterProcesses``.
    struct Cluster: ClusterTest {
        let url: String
        let keys: ClusterKeys
        let client: RedisClient
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        var routers: RouterProcesses { RouterProcesses(url: url, keys: keys, client: client) }
    }

    func cluster(_ server: RedisServerProcess) throws -> Cluster {
        var configuration = try RedisConfiguration(url: server.url)
        configuration.reconnectBackoff = ReconnectBackoff(initial: .milliseconds(20), maximum: .milliseconds(200))
        return Cluster(url: server.url, keys: try ClusterKeys(cluster: "outage"), client: RedisClient(configuration: configuration, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }))
    }

    /// A controller, a node agent and a router on `server`, with backend `api` (two echo
    /// replicas on `/api`) created and routed. The caller stops the three processes.
    struct Running {
        let cluster: Cluster
        let leader: SwerveProcess
        let agent: SwerveProcess
        let front: RouterProcesses.RunningRouter

        func stop() { leader.kill(); agent.kill(SIGTERM); front.process.kill() }
    }

    func runTwoReplicas(on server: RedisServerProcess) async throws -> Running {
        let cluster = try cluster(server)
        let routers = cluster.routers
        let leader = try cluster.controller("c1")
        let agent = try cluster.node()
        let front = try await routers.router()
        let running = Running(cluster: cluster, leader: leader, agent: agent, front: front)
        do {
            #expect(try await cluster.request(routers.backend("api", replicas: 2, route: "/api"), goal: "g-1") == GoalOutcome(goal: "g-1"))
            try await routers.awaitRouted(front, backend: "api", count: 2)
        } catch {
            running.stop()
            throw error
        }
        return running
    }

    @Test func stoppingRedisUnderLoadFailsNoRequestToRunningReplicas() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        let running = try await runTwoReplicas(on: server)
        defer { running.stop() }
        let front = running.front

        let load = LoadGenerator(address: front.address, path: "/api", clients: 4)
        load.start()
        try await load.awaitCompleted(50)
        server.kill()
        let before = load.completed
        // The outage's length is what is under test: longer than a worker heartbeat TTL and the
        // router's reconnect backoff, with traffic all along.
        try await Task.sleep(for: .seconds(4))
        let (completed, failures) = await load.stop()
        #expect(completed - before > 200, "traffic went on during the outage")
        #expect(failures.isEmpty, "\(failures.count) of \(completed) failed: \(failures.prefix(5))")
    }

    @Test func aRouterStartedWhileRedisIsDownServesOnceItIsUp() async throws {
        let server = try RedisServerProcess()
        let cluster = try cluster(server)
        let routers = cluster.routers
        let front = try await routers.router() // Redis is not running yet
        defer { front.process.kill() }
        #expect(try await httpRequest(front.address, path: "/api").status == 404, "no view yet: nothing is routed")

        try await server.start()
        let leader = try cluster.controller("c1")
        let agent = try cluster.node()
        defer { leader.kill(); agent.kill(SIGTERM) }
        #expect(try await cluster.request(routers.backend("api", replicas: 1, route: "/api"), goal: "g-1") == GoalOutcome(goal: "g-1"))
        try await routers.awaitRouted(front, backend: "api", count: 1)
        #expect(try await httpRequest(front.address, path: "/api").status == 200)
    }
}

/// A Redis stopped for a minute — far longer than every TTL in the cluster — then started again
/// from its append-only file on the same port.
@Suite(.timeLimit(.minutes(3))) struct LongRedisOutages {
    @Test func aMinuteWithoutRedisRestartsNoReplicaAndRoutersServeThroughout() async throws {
        let server = try RedisServerProcess(extraArguments: ["--appendonly", "yes", "--appendfsync", "always"])
        try await server.start()
        let running = try await RouterRedisOutages().runTwoReplicas(on: server)
        defer { running.stop() }
        let (cluster, front) = (running.cluster, running.front)
        let replicas = try await cluster.routedReplicas()
        var pids: [String: Int32] = [:]
        for tag in replicas.keys { pids[tag] = try await cluster.pid(tag) }

        // One client: steady traffic without starving the suites beside it of CPU for a minute.
        let load = LoadGenerator(address: front.address, path: "/api", clients: 1)
        load.start()
        try await load.awaitCompleted(20)
        try server.stop()
        // The outage's length is what is under test: every node, heartbeat and lease TTL
        // passes many times over, and every client reaches its longest reconnect backoff.
        try await Task.sleep(for: .seconds(60))
        try await server.start()
        // Back: keys whose TTL passed are gone until their owners rewrite them. Watch the
        // routing view across the leader's grace (node TTL + longest backoff, 5 s) and beyond:
        // the same two replicas all along.
        let watchUntil = ContinuousClock.now + .seconds(8)
        while ContinuousClock.now < watchUntil {
            if let routed = try? await cluster.routedReplicas() {
                #expect(Set(routed.keys) == Set(replicas.keys), "the routing view changed after Redis came back: \(routed.keys.sorted())")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        for (tag, pid) in pids {
            let now = try await cluster.pid(tag)
            #expect(now == pid, "\(tag) kept its process (\(String(describing: now)) vs \(pid))")
            #expect(kill(pid, 0) == 0, "\(tag)'s worker still runs")
        }
        let (completed, failures) = await load.stop()
        #expect(failures.isEmpty, "\(failures.count) of \(completed) failed: \(failures.prefix(5))")
    }
}
