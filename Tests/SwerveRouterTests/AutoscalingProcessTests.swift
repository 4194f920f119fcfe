import Foundation
import Synchronization
import Logging
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

/// Autoscaling end to end: routers report their load to Redis, the leader's autoscaler
/// decides, node agents start and stop real workers, and no request fails on the way.
@Suite(.timeLimit(.minutes(1))) struct AutoscalingProcesses {
    let cluster: RouterProcesses

    init() throws {
        let (url, keys, client) = try TestCluster.make(prefix: "as")
        cluster = RouterProcesses(url: url, keys: keys, client: client)
    }

    func autoscaled(_ tag: String, _ autoscaling: AutoscalingConfig, builtin: String = "echo") -> Request.Operation {
        .createBackend(tag: tag, config: BackendConfig(maxConcurrentQueries: 100, gracefulShutdownWaitLoopS: 0.2, routePrefix: "/" + tag, autoscaling: autoscaling),
                       replicaConfig: ReplicaConfig(workload: .builtin(name: builtin), resources: Resources(cpu: 0.1)))
    }

    @Test func aBackendAtZeroServesItsFirstRequestAfterAColdStartAndGoesBackToZero() async throws {
        let leader = try cluster.controller("c1")
        let agent = try cluster.node()
        let front = try await cluster.router()
        defer { leader.kill(); agent.kill(SIGTERM); front.process.kill() }
        let config = AutoscalingConfig(minReplicas: 0, maxReplicas: 2, targetOngoingRequests: 1, upscaleDelayS: 0, downscaleDelayS: 0.5,
                                       lookBackPeriodS: 0.5, metricsIntervalS: 0.1)
        #expect(try await cluster.request(autoscaled("cold", config), goal: "g-1") == GoalOutcome(goal: "g-1"))
        try await cluster.awaitRouted(front, backend: "cold", count: 0)
        #expect(try await cluster.checkpoint().backend("cold")?.target == 0, "created at zero: minReplicas, no initialReplicas")

        let first = try await httpRequest(front.address, path: "/cold/x")
        #expect(first.status == 200, "held while a replica started: \(String(decoding: first.body, as: UTF8.self))")
        #expect(first.headers["x-swerve-replica"]?.hasPrefix("cold#") == true)
        let woken = try #require(try await cluster.checkpoint().backend("cold")?.autoscaling)
        #expect(woken.reason == "a request is waiting and no replica runs → 1 replica")

        // Idle again: after the downscale delay over a full window, it drains back to zero.
        try await cluster.awaitRouted(front, backend: "cold", count: 0)
        try await poll("the backend decided 0 replicas") { try await cluster.checkpoint().backend("cold")?.target == 0 }
        let again = try await httpRequest(front.address, path: "/cold/y")
        #expect(again.status == 200, "a second cold start")
    }

    @Test func aBackendGrowsUnderSteadyLoadAndShrinksWhenItStopsWithNoRequestFailing() async throws {
        let leader = try cluster.controller("c1")
        let agent = try cluster.node()
        let front = try await cluster.router()
        defer { leader.kill(); agent.kill(SIGTERM); front.process.kill() }
        let config = AutoscalingConfig(minReplicas: 1, maxReplicas: 4, targetOngoingRequests: 1, upscaleDelayS: 0.2, downscaleDelayS: 1,
                                       lookBackPeriodS: 0.5, metricsIntervalS: 0.1)
        #expect(try await cluster.request(autoscaled("busy", config, builtin: "sleep"), goal: "g-1") == GoalOutcome(goal: "g-1"))
        try await cluster.awaitRouted(front, backend: "busy", count: 1)

        // Three clients, each with one slow request in flight at all times: a load of 3 over a
        // target of 1 per replica calls for 3 replicas.
        let stop = StopFlag()
        let clients = (0..<3).map { _ in
            Task { () -> [Int] in
                var statuses: [Int] = []
                while !stop.isRaised { statuses.append((try? await httpRequest(front.address, path: "/busy/x?ms=200").status) ?? -1) }
                return statuses
            }
        }
        try await cluster.awaitRouted(front, backend: "busy", count: 3)
        let grown = try #require(try await cluster.checkpoint().backend("busy")?.autoscaling)
        #expect(grown.desired == 3, "load 3, target 1: \(grown.reason ?? "")")
        stop.raise()
        var statuses: [Int] = []
        for client in clients { statuses += await client.value }
        #expect(!statuses.isEmpty && statuses.allSatisfy { $0 == 200 }, "every request answered 200: \(Dictionary(grouping: statuses, by: { $0 }).mapValues(\.count))")

        // No load: back to minReplicas after the downscale delay.
        try await cluster.awaitRouted(front, backend: "busy", count: 1)
        let events = strings(in: try await cluster.client.pipeline([RedisCommand("XRANGE", cluster.keys.events, "-", "+")])[0])
        #expect(events.contains { $0.hasPrefix("1 → 3 replicas: load ") || $0.hasPrefix("2 → 3 replicas: load ") }, "the decision is an event with its reason")
    }
}

/// A flag the load generators read and the test sets.
final class StopFlag: Sendable {
    private let raised = Mutex(false)
    var isRaised: Bool { raised.withLock { $0 } }
    func raise() { raised.withLock { $0 = true } }
}

/// Every string in a reply, depth first (an `XRANGE`'s fields and values).
func strings(in reply: RedisReply) -> [String] {
    if let array = reply.array { return array.flatMap(strings(in:)) }
    return reply.string.map { [$0] } ?? []
}
