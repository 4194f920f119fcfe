import ArgumentParser
import Foundation
import Glibc
import Logging
import SwerveClient
import SwerveCore
import SwerveLauncher
import SwerveProtocol
import SwerveRedis
import Synchronization

/// `swerve-bench scale`: three real controllers and a real Redis against a simulated fleet
/// (`swerve-ops sim`: N node agents and their workers in one process, with simulated routers).
/// It creates R replicas and measures: apply → all running; over 20 s with nothing changing,
/// the leader's CPU, Redis's own command count, the leader's mean step time; Redis's memory,
/// the leader's RSS and the simulator's CPU (its overhead); the bytes the leader writes for one
/// replica killed and replaced (`swerve_controller_written_bytes_total`); and leader SIGKILL →
/// the new leader's first completed step. It prints `name value` lines for `ops/bench scale`.
struct ScaleBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "R replicas on N simulated nodes: ready time, idle leader cost, one change's bytes, failover.",
        discussion: """
            Example (ops/bench scale starts the Redis):
              swerve-bench scale --url redis://127.0.0.1:6390 --swerve .build/release/swerve \\
                --swerve-ops .build/release/swerve-ops --logs /tmp/bench --nodes 1000 --replicas 10000
            """
    )

    @Option(help: "The Redis URL of a server this benchmark may reconfigure and write to.") var url: String
    @Option(help: "The swerve binary (controllers).") var swerve: String
    @Option(help: "The swerve-ops binary (the simulated fleet).") var swerveOps: String
    @Option(help: "A directory for the processes' logs.") var logs: String
    @Option(help: "Simulated nodes.") var nodes = 1000
    @Option(help: "Replicas, in backends of up to 10,000.") var replicas = 10_000
    @Option(help: "Simulated routers.") var routers = 2
    @Option(help: "Seconds of rest measured.") var idleSeconds = 20

    func validate() throws {
        guard nodes >= 1, replicas >= 1, replicas <= Limits.replicasInCluster else {
            throw ValidationError("--nodes must be at least 1 and --replicas 1 to \(Limits.replicasInCluster)")
        }
    }

    func run() async throws {
        var logger = Logger(label: "swerve-bench")
        logger.logLevel = .warning
        let configuration = try RedisConfiguration(url: url)
        let client = RedisClient(configuration: configuration, logger: logger)
        defer { client.close() }
        let keys = try ClusterKeys(cluster: "scale\(UInt32.random(in: 0...UInt32.max))")
        // Keyspace events for string commands: the new leader's status write is its first
        // completed step.
        try await client.send("CONFIG", "SET", "notify-keyspace-events", "K$")
        let statusChannel = "__keyspace@\(configuration.database)__:\(keys.status)"

        var settings = LocalCluster.Settings(swerve: swerve, directory: logs, cluster: keys.cluster, redisURL: url)
        settings.logLevel = "warning"
        let cluster = try LocalCluster(settings: settings)
        defer { cluster.stopAll() }
        var metricsPorts: [String: Int] = [:]
        for index in 1...3 {
            let port = try freeLoopbackPort()
            metricsPorts["c\(index)"] = port
            try cluster.startController("c\(index)", extra: ["--metrics-address", "127.0.0.1:\(port)"])
        }
        let perNode = (replicas + nodes - 1) / nodes
        let sim = try SimProcess(swerveOps, ["sim", "--redis", url, "--cluster", keys.cluster, "--nodes", "\(nodes)",
                                             "--cpu", "\(perNode + 2)", "--routers", "\(routers)"], log: logs + "/sim.err")
        defer { sim.stop() }
        let watchdog = Task {
            try await Task.sleep(for: .seconds(600 + replicas / 100))
            FileHandle.standardError.write(Data("swerve-bench scale: no result in time; giving up (logs in \(logs))\n".utf8))
            sim.stop()
            cluster.stopAll()
            Foundation.exit(1)
        }
        defer { watchdog.cancel() }
        guard sim.nextLine()?.hasPrefix("registered") == true else { throw ValidationError("the simulator did not register its nodes (\(logs)/sim.err)") }

        // Apply → all running.
        let clusterClient = ClusterClient(keys: keys, client: client, logger: logger)
        let echo = ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1))
        let backends = (replicas + Limits.replicasPerBackend.upperBound - 1) / Limits.replicasPerBackend.upperBound
        let started = ContinuousClock.now
        for index in 0..<backends {
            let count = min(Limits.replicasPerBackend.upperBound, replicas - index * Limits.replicasPerBackend.upperBound)
            _ = try await clusterClient.submit(.createBackend(tag: "b\(index)", config: BackendConfig(numReplicas: count), replicaConfig: echo))
        }
        try await awaitRunning(replicas, client: client, keys: keys)
        print("ready_seconds \(seconds(ContinuousClock.now - started))")

        // Rest: a few seconds to settle (the last writes, the first full re-read), then measured.
        try await Task.sleep(for: .seconds(3))
        let leader = try await currentLeader(client: client, keys: keys)
        guard let leaderPort = metricsPorts[leader.id] else { throw ValidationError("no metrics port for \(leader.id)") }
        let cpuBefore = cpuTicks(leader.pid), simBefore = cpuTicks(sim.pid), commandsBefore = try await redisCommands(client)
        let stepsBefore = scrape(port: leaderPort)
        let restStarted = ContinuousClock.now
        try await Task.sleep(for: .seconds(idleSeconds))
        let rest = seconds(ContinuousClock.now - restStarted)
        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        let stepsAfter = scrape(port: leaderPort)
        print("idle_leader_cpu_percent \(String(format: "%.1f", Double(cpuTicks(leader.pid) - cpuBefore) / ticksPerSecond / rest * 100))")
        print("idle_redis_ops_per_second \(Int((Double(try await redisCommands(client) - commandsBefore) / rest).rounded()))")
        print("idle_sim_cpu_percent \(String(format: "%.1f", Double(cpuTicks(sim.pid) - simBefore) / ticksPerSecond / rest * 100))")
        let steps = (stepsAfter["swerve_controller_reconcile_duration_seconds_count"] ?? 0) - (stepsBefore["swerve_controller_reconcile_duration_seconds_count"] ?? 0)
        let stepTime = (stepsAfter["swerve_controller_reconcile_duration_seconds_sum"] ?? 0) - (stepsBefore["swerve_controller_reconcile_duration_seconds_sum"] ?? 0)
        print("idle_step_ms \(String(format: "%.2f", steps > 0 ? stepTime / steps * 1000 : 0))")
        print("idle_steps_per_second \(String(format: "%.1f", steps / rest))")
        // At rest the leader should write nothing: anything here is churn (a lease that lapsed,
        // a replica replaced), by call.
        let written = "swerve_controller_written_bytes_total"
        print("idle_written_bytes \(Int((stepsAfter[written] ?? 0) - (stepsBefore[written] ?? 0)))")
        let idleByCall = stepsAfter.filter { $0.key.hasPrefix(written + "{") }.compactMap { key, value -> String? in
            let bytes = Int(value - (stepsBefore[key] ?? 0))
            return bytes > 0 ? "\(key.dropFirst(written.count + "{call=\"".count).dropLast(2))=\(bytes)" : nil
        }
        print("idle_written_by_call \(idleByCall.sorted().joined(separator: " "))")
        let memory = try await client.send("INFO", "memory").string ?? ""
        let used = memory.split(separator: "\r\n").first { $0.hasPrefix("used_memory:") }.map { $0.dropFirst("used_memory:".count) } ?? "0"
        print("redis_memory_mib \(String(format: "%.1f", (Double(used) ?? 0) / 1_048_576))")
        print("leader_rss_mib \(String(format: "%.1f", Double(rssKiB(leader.pid)) / 1024))")
        print("sim_rss_mib \(String(format: "%.1f", Double(rssKiB(sim.pid)) / 1024))")
        // The checkpoint: its header and every part (what a full write would send).
        let header = try await client.send("STRLEN", keys.checkpoint).integer ?? 0
        let parts = try await client.send("HGETALL", keys.checkpointParts).array ?? []
        print("checkpoint_bytes \(parts.reduce(Int(header)) { $0 + ($1.bytes?.count ?? 0) })")
        print("routing_bytes \(try await client.send("STRLEN", keys.routingSnapshot).integer ?? 0)")

        // One change: a replica killed, replaced, the replacement running.
        let samplesBefore = scrape(port: leaderPort)
        let bytesBefore = samplesBefore["swerve_controller_written_bytes_total"] ?? 0
        sim.send("kill-replica")
        guard let killed = sim.nextLine(), killed.hasPrefix("killed ") else { throw ValidationError("the simulator killed nothing") }
        try await awaitReplaced(String(killed.dropFirst("killed ".count)), total: replicas, client: client, keys: keys)
        // Its last write (the routing snapshot with the replacement) may trail the status.
        var bytesAfter = scrape(port: leaderPort)["swerve_controller_written_bytes_total"] ?? 0
        while true {
            try await Task.sleep(for: .milliseconds(500))
            let now = scrape(port: leaderPort)["swerve_controller_written_bytes_total"] ?? 0
            if now == bytesAfter { break }
            bytesAfter = now
        }
        print("one_change_bytes \(Int(bytesAfter - bytesBefore))")
        let prefix = "swerve_controller_written_bytes_total{call=\""
        let byCall = scrape(port: leaderPort).filter { $0.key.hasPrefix(prefix) }.compactMap { key, value -> String? in
            let written = Int(value - (samplesBefore[key] ?? 0))
            return written > 0 ? "\(key.dropFirst(prefix.count).dropLast(2))=\(written)" : nil
        }
        print("one_change_by_call \(byCall.sorted().joined(separator: " "))")

        // Failover: the leader SIGKILLed → the new leader's first completed step.
        let subscriber = RedisSubscriber(configuration: configuration, logger: logger)
        let failover = try await subscriber.subscribe(to: [statusChannel]) { subscription -> Duration in
            var events = subscription.makeAsyncIterator()
            guard await events.next() == .subscribed else { throw ValidationError("could not subscribe") }
            let killed = ContinuousClock.now
            _ = cluster.signal(leader.id, SIGKILL)
            while let event = await events.next() {
                if case .message(let message) = event, message.text == "set" { return ContinuousClock.now - killed }
            }
            throw ValidationError("the subscription ended before a new leader stepped")
        }
        print("failover_seconds \(seconds(failover))")
        // A status line answered after every violation the routers reported so far.
        sim.send("status")
        _ = sim.nextLine()
        print("router_views_back \(sim.violations)")
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    private func currentLeader(client: RedisClient, keys: ClusterKeys) async throws -> LeaderRecord {
        while true {
            if let bytes = try await client.send("GET", keys.leader).bytes {
                return try DocumentCodec.decode(LeaderRecord.self, from: bytes, source: keys.leader)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The backends' statuses until `total` replicas run.
    private func awaitRunning(_ total: Int, client: RedisClient, keys: ClusterKeys) async throws {
        while try await running(client: client, keys: keys) < total { try await Task.sleep(for: .milliseconds(100)) }
    }

    private func running(client: RedisClient, keys: ClusterKeys) async throws -> Int {
        guard let bytes = try await client.send("GET", keys.status).bytes,
              let status = try? DocumentCodec.decode(StatusDocument.self, from: bytes, source: keys.status) else { return 0 }
        return status.backends.values.reduce(0) { $0 + $1.running }
    }

    /// Until `tag` is gone from the routing snapshot and `total` replicas run again.
    private func awaitReplaced(_ tag: String, total: Int, client: RedisClient, keys: ClusterKeys) async throws {
        while true {
            if let snapshot = try? await ClusterClient.routingSnapshot(client: client, keys: keys) {
                let routed = snapshot.view.backends.values.reduce(0) { $0 + $1.count }
                let still = snapshot.view.backends.values.contains { $0.contains { $0.tag == tag } }
                if !still, routed == total { return }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private func redisCommands(_ client: RedisClient) async throws -> Int {
        let stats = try await client.send("INFO", "stats").string ?? ""
        let line = stats.split(separator: "\r\n").first { $0.hasPrefix("total_commands_processed:") }
        return line.flatMap { Int($0.dropFirst("total_commands_processed:".count)) } ?? 0
    }
}

/// utime + stime of `pid`, in clock ticks.
func cpuTicks(_ pid: Int32) -> Int {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return 0 }
    return user + system
}

/// VmRSS of `pid`, in KiB.
func rssKiB(_ pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
}

/// The unlabelled samples of a Prometheus endpoint on loopback (`name value`).
func scrape(port: Int) -> [String: Double] {
    guard case .success(let descriptor) = connectTCP("127.0.0.1:\(port)", receiveTimeoutSeconds: 5) else { return [:] }
    defer { close(descriptor) }
    let request = Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        if count <= 0 { break }
        response.append(contentsOf: buffer[0..<count])
    }
    var samples: [String: Double] = [:]
    for line in String(decoding: response, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
        let parts = line.split(separator: " ")
        guard parts.count == 2, let value = Double(parts[1]) else { continue }
        // A labelled series under its own name, and summed under its metric's.
        samples[String(parts[0])] = value
        if let brace = parts[0].firstIndex(of: "{") { samples[String(parts[0][..<brace]), default: 0] += value }
    }
    return samples
}

/// `swerve-ops sim` as a child: commands on its stdin, answers on its stdout.
final class SimProcess: Sendable {
    private let process: Process
    private let input: FileHandle
    private let lines: LineReader
    var pid: Int32 { process.processIdentifier }

    init(_ executable: String, _ arguments: [String], log: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        self.process = process
        input = stdin.fileHandleForWriting
        lines = LineReader(stdout.fileHandleForReading)
    }

    func send(_ command: String) { input.write(Data((command + "\n").utf8)) }

    /// The next line it printed that is not a violation report (those are counted).
    func nextLine() -> String? { lines.next() }

    /// How many views the simulated routers saw go back (read so far).
    var violations: Int { lines.violations }

    func stop() {
        if process.isRunning { process.terminate() }
    }
}

/// Reads lines from a pipe, setting `VIOLATION` lines aside (counted, and echoed on stderr).
final class LineReader: Sendable {
    private let handle: FileHandle
    private let state = Mutex<(buffer: [UInt8], violations: Int)>(([], 0))

    init(_ handle: FileHandle) { self.handle = handle }

    var violations: Int { state.withLock { $0.violations } }

    /// The next line, blocking until one comes; nil once the pipe closed.
    func next() -> String? {
        while true {
            let line = state.withLock { state -> String? in
                while let newline = state.buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: state.buffer[..<newline], as: UTF8.self)
                    state.buffer.removeSubrange(...newline)
                    guard line.hasPrefix("VIOLATION") else { return line }
                    state.violations += 1
                    FileHandle.standardError.write(Data((line + "\n").utf8))
                }
                return nil
            }
            if let line { return line }
            let data = handle.availableData
            if data.isEmpty { return nil }
            state.withLock { $0.buffer.append(contentsOf: data) }
        }
    }
}
