import Foundation
import Glibc
import Logging
import SwerveCore
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
                                          "--id", "c1", "--metrics-address", "127.0.0.1:\(metricsPort)"])
        defer { isolated.kill() }
        try await awaitLeaderRecord("c1", client: client, keys: keys)
        let other = try SwerveProcess(["controller", "--redis", server.url, "--cluster", keys.cluster, "--id", "c2"], environment: ["SWERVE_LOG_LEVEL": "warning"])
        defer { other.kill() }
        #expect(try namespace.isLeader(metricsPort: metricsPort) == true)
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
        #expect(try namespace.isLeader(metricsPort: metricsPort) == false, "c1 still claimed to lead when c2 took over")
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
        #expect(try namespace.isLeader(metricsPort: metricsPort) == false, "c1 follows after the heal")
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

/// A network namespace with a veth pair to the host, for one test: the host end gets
/// `hostAddress`, the namespace end `innerAddress` (a /30 of 10.231.0.0/16 picked at random).
struct NetworkNamespace {
    let name: String
    let hostInterface: String
    let hostAddress: String
    let innerAddress: String

    static var available: Bool {
        geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") && FileManager.default.isExecutableFile(atPath: "/usr/sbin/iptables")
    }

    init() throws {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        name = "swerve-test-\(tag)"
        hostInterface = "swh\(tag)".prefix(15).description
        let inner = "swn\(tag)".prefix(15).description
        let block = Int.random(in: 0..<16_384) * 4
        hostAddress = "10.231.\(block / 256).\(block % 256 + 1)"
        innerAddress = "10.231.\(block / 256).\(block % 256 + 2)"
        try Self.sh(["ip", "netns", "add", name])
        do {
            try Self.sh(["ip", "link", "add", hostInterface, "type", "veth", "peer", "name", inner])
            try Self.sh(["ip", "link", "set", inner, "netns", name])
            try Self.sh(["ip", "addr", "add", "\(hostAddress)/30", "dev", hostInterface])
            try Self.sh(["ip", "link", "set", hostInterface, "up"])
            try Self.sh(["ip", "netns", "exec", name, "ip", "addr", "add", "\(innerAddress)/30", "dev", inner])
            try Self.sh(["ip", "netns", "exec", name, "ip", "link", "set", inner, "up"])
            try Self.sh(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"])
        } catch {
            remove()
            throw error
        }
    }

    /// `swerve ARGUMENTS` inside the namespace (as the test user, like every swerve process).
    func run(_ arguments: [String]) throws -> SwerveProcess {
        try SwerveProcess(arguments, environment: ["SWERVE_LOG_LEVEL": "warning"], prefix: ["/usr/sbin/ip", "netns", "exec", name])
    }

    /// Drops every packet from the namespace at the host: Redis never sees c1's requests, and
    /// c1 never sees an answer or a reset.
    func cut() throws { try Self.sh(["iptables", "-I", "INPUT", "-i", hostInterface, "-j", "DROP"]) }

    func heal() throws { try Self.sh(["iptables", "-D", "INPUT", "-i", hostInterface, "-j", "DROP"]) }

    /// `swerve_controller_is_leader` of the controller whose metrics listen on loopback inside
    /// the namespace (reachable whatever the host drops); nil when it does not answer.
    func isLeader(metricsPort: Int) throws -> Bool? {
        let output = try Self.sh(["ip", "netns", "exec", name, "python3", "-c",
                                  "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:\(metricsPort)/metrics', timeout=5).read().decode())"],
                                 allowFailure: true)
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("swerve_controller_is_leader ") }),
              let value = Double(line.split(separator: " ").last ?? "") else { return nil }
        return value == 1
    }

    /// Deletes the namespace (its veth pair goes with it) and the drop rule, if any.
    func remove() {
        _ = try? Self.sh(["iptables", "-D", "INPUT", "-i", hostInterface, "-j", "DROP"], allowFailure: true)
        _ = try? Self.sh(["ip", "netns", "del", name], allowFailure: true)
    }

    @discardableResult
    static func sh(_ arguments: [String], allowFailure: Bool = false) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        if process.terminationStatus != 0, !allowFailure {
            throw TestFailure("\(arguments.joined(separator: " ")) failed (\(process.terminationStatus)): \(text)")
        }
        return text
    }
}
