import Foundation
import Glibc
import Logging
import SwerveCore
import SwerveLauncher
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Testing

/// A leader in a network namespace of the test's own, cut off from Redis by the kernel:
/// `iptables … -j DROP` on the host end of a veth pair, so packets vanish (no reset; calls
/// hang). Needs root (for `ip netns` and `iptables`); skipped otherwise. Traffic stays between
/// the test's own namespace and the host end of its own veth pair.
@Suite(.timeLimit(.minutes(1)), .enabled(if: NetworkNamespace.available, "needs root, ip and iptables"))
struct NetworkPartitions {
    /// The test's cluster on its own Redis (for ``ClusterTest``'s request helpers).
    struct Cluster: ClusterTest {
        let url: String
        let keys: ClusterKeys
        let client: RedisClient
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
    }

    @Test func aPartitionedLeaderStepsDownInTimeAndNothingOfItsEpochLandsAfterTheHeal() async throws {
        let namespace = try NetworkNamespace()
        defer { namespace.remove() }
        let server = try RedisServerProcess(extraArguments: ["--bind", "127.0.0.1 \(namespace.hostAddress)", "--protected-mode", "no"])
        try await server.start()
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let keys = try ClusterKeys(cluster: "netns")
        let client = RedisClient(configuration: try RedisConfiguration(url: server.url), logger: logger)
        defer { client.close() }
        let cluster = Cluster(url: server.url, keys: keys, client: client)
        let empty = { (tag: String) in
            Request.Operation.createBackend(tag: tag, config: BackendConfig(numReplicas: 0), replicaConfig: ReplicaConfig(workload: .builtin(name: "echo")))
        }

        // c1 leads from inside the namespace; c2 waits on the host.
        let metricsPort = try freeLoopbackPort()
        let isolated = try namespace.run(["controller", "--redis", "redis://\(namespace.hostAddress):\(server.port)", "--cluster", keys.cluster,
                                          "--id", "c1", "--metrics-address", "127.0.0.1:\(metricsPort)", "--lease-ttl-ms", "2000"])
        defer { isolated.kill() }
        try await awaitLeaderRecord("c1", client: client, keys: keys)
        // A 2 s lease (0.4 s margin): a starved debug process on the loaded machine still steps
        // down before the lease can expire in Redis.
        let other = try SwerveProcess(["controller", "--redis", server.url, "--cluster", keys.cluster, "--id", "c2", "--lease-ttl-ms", "2000"],
                                      environment: ["SWERVE_LOG_LEVEL": "warning"])
        defer { other.kill() }
        #expect(namespace.controllerIsLeader(metricsPort: metricsPort) == true)
        let oldEpoch = try #require(try await leaderRecord(client: client, keys: keys)).epoch
        // c1 writes a checkpoint of its epoch.
        #expect(try await cluster.request(empty("before"), goal: "g-before") == GoalOutcome(goal: "g-before"))
        #expect(try await client.send("GET", keys.checkpointEpoch).string == "\(oldEpoch)")

        // The cut. c2 may lead once the lease expired in Redis; by then c1 must have stepped
        // down on its own clock, though its renew still hangs in the void.
        try namespace.cut()
        let cutAt = ContinuousClock.now
        let successor = try await awaitLeaderRecord("c2", client: client, keys: keys, timeout: .seconds(10))
        #expect(ContinuousClock.now - cutAt < .seconds(5), "c2 leads within the TTL plus its retry period")
        #expect(successor.epoch > oldEpoch)
        #expect(namespace.controllerIsLeader(metricsPort: metricsPort) == false, "c1 still claimed to lead when c2 took over")
        // c2 writes one of its own.
        #expect(try await cluster.request(empty("during"), goal: "g-during") == GoalOutcome(goal: "g-during"))
        #expect(try await client.send("GET", keys.checkpointEpoch).string == "\(successor.epoch)")

        // The heal: c1's retransmitted writes reach Redis now. Every one carries the old
        // epoch's lease value, so the scripts refuse them: the leader record and the
        // checkpoint's epoch stay c2's while c1 comes back as a follower.
        try namespace.heal()
        let watchUntil = ContinuousClock.now + .seconds(4)
        while ContinuousClock.now < watchUntil {
            let leader = try await leaderRecord(client: client, keys: keys)
            #expect(leader?.id == "c2" && leader?.epoch == successor.epoch, "the leader changed after the heal: \(String(describing: leader))")
            let epoch = try await client.send("GET", keys.checkpointEpoch).string
            #expect(epoch == "\(successor.epoch)", "a checkpoint of epoch \(epoch ?? "none") landed after the heal")
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(namespace.controllerIsLeader(metricsPort: metricsPort) == false, "c1 follows after the heal")
    }

    func leaderRecord(client: RedisClient, keys: ClusterKeys) async throws -> LeaderRecord? {
        guard let bytes = try await client.send("GET", keys.leader).bytes else { return nil }
        return try DocumentCodec.decode(LeaderRecord.self, from: bytes, source: keys.leader)
    }

    /// Polls the leader record (its owner is what every client reads) until `id` holds it.
    @discardableResult
    func awaitLeaderRecord(_ id: String, client: RedisClient, keys: ClusterKeys, timeout: Duration = .seconds(10)) async throws -> LeaderRecord {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let record = try await leaderRecord(client: client, keys: keys), record.id == id { return record }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestFailure("\(id) did not lead within \(timeout)")
    }
}

extension NetworkNamespace {
    /// `swerve ARGUMENTS` inside the namespace (as the test user, like every swerve process).
    func run(_ arguments: [String]) throws -> SwerveProcess {
        try SwerveProcess(arguments, environment: ["SWERVE_LOG_LEVEL": "warning"], prefix: commandPrefix)
    }
}
