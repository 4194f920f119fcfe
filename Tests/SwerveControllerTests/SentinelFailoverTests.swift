import Foundation
import Glibc
import Logging
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

/// A whole cluster on a Sentinel-watched Redis (a master, a replica, three sentinels): every
/// process is given the `redis-sentinel://` URL; the master is killed; the cluster carries on
/// on the promoted replica with no replica restarted and no request lost.
@Suite(.timeLimit(.minutes(1))) struct SentinelFailover: ClusterTest {
    let group: RedisSentinelGroup
    let url: String
    let keys: ClusterKeys
    let client: RedisClient
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    init() async throws {
        group = try await RedisSentinelGroup()
        url = group.url
        keys = try ClusterKeys(cluster: "sentinel")
        client = RedisClient(configuration: try RedisConfiguration(url: url), logger: logger)
    }

    @Test func theClusterCarriesOnOnThePromotedReplica() async throws {
        let first = try controller("c1")
        let second = try controller("c2")
        let agent = try node()
        let router = try SwerveProcess(["router", "--redis", url, "--cluster", keys.cluster, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
                                       environment: ["SWERVE_LOG_LEVEL": "warning"], captureOutput: true)
        defer { first.kill(); second.kill(); agent.kill(SIGTERM); router.kill() }
        let listen = try #require(try await router.nextOutputLine().split(separator: " ").dropFirst().first.map(String.init))

        let create = Request.Operation.createBackend(tag: "api", config: BackendConfig(numReplicas: 2, routePrefix: "/api"),
                                                     replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1)))
        #expect(try await request(create, goal: "g-create") == GoalOutcome(goal: "g-create"))
        var pids: [String: Int32] = [:]
        for tag in try await routedReplicas().keys { pids[tag] = try await pid(tag) }
        #expect(pids.count == 2)
        try await awaitServing(listen)
        // The replica has everything (asynchronous replication would otherwise lose the tail).
        #expect(try await client.send("WAIT", 1, 5000).integer == 1)

        group.master.kill()
        // A request sent while the sentinels fail over: retried until the new master takes it.
        let deadline = ContinuousClock.now + .seconds(30)
        while (try? await append(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 3)), goal: "g-scale")) == nil {
            guard ContinuousClock.now < deadline else { throw TestFailure("no master took the request within 30 s") }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await outcome(of: "g-scale") == GoalOutcome(goal: "g-scale"))
        #expect(group.reportedMasterPort() == group.replica.port)
        let routed = try await routedReplicas()
        #expect(routed.count == 3)
        #expect(Set(pids.keys).isSubset(of: Set(routed.keys)), "the first replicas are still routed: \(routed.keys.sorted())")
        for (tag, pid) in pids {
            #expect(kill(pid, 0) == 0, "\(tag)'s worker \(pid) is still running")
            // Its ready key may have expired during the failover (a worker reconnects with
            // backoff); the same worker writes it again.
            let shown = try await readyPID(tag, becomes: pid)
            #expect(shown == pid, "\(tag) was not restarted: its ready key shows \(shown.map(String.init) ?? "nothing")")
        }
        try await awaitServing(listen)
    }

    /// The pid in `tag`'s ready key once it is `expected`, or what it shows after 10 s.
    func readyPID(_ tag: String, becomes expected: Int32) async throws -> Int32? {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let shown = try await pid(tag)
            if shown == expected || ContinuousClock.now >= deadline { return shown }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
