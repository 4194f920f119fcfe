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

/// `swerve-bench autoscale`: an autoscaled backend under a load that steps up and down, and
/// the latency of a cold start from zero replicas next to a warm request.
///
/// Prints `cold.first_ms` / `cold.warm_ms` lines (median over the runs), one `step` line per
/// load step (clients, requests, req/s, p50 and p99 in ms, failures, replicas routed at its
/// end) and a `timeline` of the replicas routed over time.
struct AutoscaleBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoscale",
        abstract: "Cold starts from zero, and an autoscaled backend under 1 -> 16 -> 4 -> 0 clients.",
        discussion: """
            Example (ops/bench autoscale starts the Redis):
              swerve-bench autoscale --url redis://127.0.0.1:6390 --swerve .build/release/swerve --logs /tmp/bench
            """
    )

    @OptionGroup var options: BenchClusterOptions

    @Option(help: "Cold starts to measure.")
    var coldRuns = 5

    @Option(help: "Seconds each load step lasts.")
    var stepSeconds = 6.0

    @Option(help: "Clients in each step, comma-separated.")
    var steps = "1,16,4,0"

    func run() async throws {
        let (_, client, logger) = try options.connect()
        defer { client.close() }
        let keys = try ClusterKeys(cluster: "autoscale\(UInt32.random(in: 0...UInt32.max))")
        let clientCounts = steps.split(separator: ",").compactMap { Int($0) }
        let limit = Duration.seconds(60 + coldRuns * 10 + Int(stepSeconds * Double(clientCounts.count)) * 2)
        let (cluster, watchdog) = try options.start(cluster: keys.cluster, limit: limit, command: "autoscale")
        defer { cluster.stopAll() }
        defer { watchdog.cancel() }
        try cluster.startNode("n1")
        try cluster.startController("c1")
        let listen = "127.0.0.1:\(try freeLoopbackPort())"
        try cluster.startRouter("r1", listen: listen, admin: "127.0.0.1:\(try freeLoopbackPort())")
        let clusterClient = ClusterClient(keys: keys, client: client, logger: logger)
        func routed(_ backend: String) async throws -> Int {
            try await ClusterClient.routingSnapshot(client: client, keys: keys)?.view.backends[backend]?.count ?? 0
        }
        func awaitRouted(_ backend: String, _ count: Int, within: Duration = .seconds(30)) async throws {
            let deadline = ContinuousClock.now + within
            while try await routed(backend) != count {
                guard ContinuousClock.now < deadline else { throw ValidationError("\(backend) never reached \(count) routed replicas") }
                try await Task.sleep(for: .milliseconds(20))
            }
        }

        // Cold starts: an echo backend at zero; each run waits until it drained back to zero.
        let cold = AutoscalingConfig(minReplicas: 0, maxReplicas: 1, targetOngoingRequests: 1, upscaleDelayS: 0, downscaleDelayS: 0.3,
                                     lookBackPeriodS: 0.3, metricsIntervalS: 0.1)
        let echo = ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 0.01))
        let created = try await clusterClient.submit(.createBackend(tag: "cold", config: BackendConfig(gracefulShutdownWaitLoopS: 0, routePrefix: "/cold", autoscaling: cold),
                                                                    replicaConfig: echo))
        _ = try await clusterClient.wait(for: created, backend: "cold") { _ in }
        var firsts: [Duration] = []
        var warms: [Duration] = []
        for _ in 0..<coldRuns {
            try await awaitRouted("cold", 0)
            // Wait out the look-back so the leader has recorded zero load (a fresh start).
            try await Task.sleep(for: .milliseconds(500))
            let connection = try HTTPConnection(listen)
            firsts.append(try connection.get("/cold/x").duration)
            for _ in 0..<20 { warms.append(try connection.get("/cold/x").duration) }
            connection.close()
        }
        print("cold.first_ms \(Self.ms(Self.median(firsts))) \(Self.ms(firsts.max() ?? .zero)) \(firsts.count)")
        print("cold.warm_ms \(Self.ms(Self.median(warms))) \(Self.ms(Self.percentile(warms, 0.99))) \(warms.count)")

        // Load steps: a sleep backend (50 ms per request), 2 requests per replica wanted.
        let auto = AutoscalingConfig(minReplicas: 0, maxReplicas: 16, targetOngoingRequests: 2, upscaleDelayS: 0.5, downscaleDelayS: 3,
                                     lookBackPeriodS: 2, metricsIntervalS: 0.1)
        let sleep = ReplicaConfig(workload: .builtin(name: "sleep", options: ["ms": .number(50)]), resources: Resources(cpu: 0.01))
        let goal = try await clusterClient.submit(.createBackend(tag: "auto", config: BackendConfig(gracefulShutdownWaitLoopS: 0.2, routePrefix: "/auto", autoscaling: auto),
                                                                 replicaConfig: sleep))
        _ = try await clusterClient.wait(for: goal, backend: "auto") { _ in }
        let started = ContinuousClock.now
        let timeline = Mutex<[(Double, Int)]>([])
        let sampler = Task {
            while !Task.isCancelled {
                let count = (try? await routed("auto")) ?? -1
                let at = (ContinuousClock.now - started) / .seconds(1)
                timeline.withLock { $0.append((at, count)) }
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        for clients in clientCounts {
            let load = StepLoad(address: listen, path: "/auto/x", clients: clients)
            let stepStart = ContinuousClock.now
            try await Task.sleep(for: .seconds(stepSeconds))
            let (latencies, failures) = await load.stop()
            let elapsed = (ContinuousClock.now - stepStart) / .seconds(1)
            let rate = Double(latencies.count) / elapsed
            print("step \(clients) \(latencies.count) \(Int(rate)) \(Self.ms(Self.median(latencies))) \(Self.ms(Self.percentile(latencies, 0.99))) \(failures) \(try await routed("auto"))")
        }
        // The last step's drain to zero, if it ends at zero clients.
        if clientCounts.last == 0 { try? await awaitRouted("auto", 0, within: .seconds(15)) }
        sampler.cancel()
        let final = (try? await routed("auto")) ?? -1
        timeline.withLock { $0.append(((ContinuousClock.now - started) / .seconds(1), final)) }
        let points = timeline.withLock { $0 }
        var line = "timeline"
        var last = -2
        for (at, count) in points where count != last {
            line += String(format: " %.1f:%d", at, count)
            last = count
        }
        print(line)
    }

    static func median(_ values: [Duration]) -> Duration { percentile(values, 0.5) }

    static func percentile(_ values: [Duration], _ p: Double) -> Duration {
        guard !values.isEmpty else { return .zero }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
    }

    static func ms(_ duration: Duration) -> String { String(format: "%.2f", duration / .milliseconds(1)) }
}

/// One keep-alive HTTP/1.1 connection, blocking: for measuring single requests.
final class HTTPConnection {
    private let descriptor: Int32
    private let host: String

    init(_ address: String) throws {
        switch connectTCP(address, receiveTimeoutSeconds: 30) {
        case .success(let descriptor): self.descriptor = descriptor
        case .failure(let error): throw ValidationError(error.description)
        }
        host = address
    }

    /// Sends `GET path` and reads the whole response: its status and how long it took.
    func get(_ path: String) throws -> (status: Int, duration: Duration) {
        let started = ContinuousClock.now
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) == request.count else { throw ValidationError("write failed") }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        var headEnd: Int?
        var length = 0
        while true {
            let count = read(descriptor, &chunk, chunk.count)
            guard count > 0 else { throw ValidationError("the connection closed mid-response") }
            buffer += chunk[0..<count]
            if headEnd == nil, let end = buffer.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound {
                headEnd = end
                let head = String(decoding: buffer[0..<end], as: UTF8.self).lowercased()
                if let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }) {
                    length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
            if let headEnd, buffer.count >= headEnd + length {
                let status = Int(String(decoding: buffer[9..<12], as: UTF8.self)) ?? 0
                return (status, ContinuousClock.now - started)
            }
        }
    }

    func close() { Glibc.close(descriptor) }
}

/// `clients` threads, each sending requests one after another on its own connection, until
/// stopped: every successful request's latency, and how many failed.
final class StepLoad: Sendable {
    private let latencies = Mutex<[Duration]>([])
    private let failures = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)
    private let running = Atomic<Int>(0)

    init(address: String, path: String, clients: Int) {
        for _ in 0..<clients {
            running.add(1, ordering: .relaxed)
            Thread { [self] in
                defer { running.subtract(1, ordering: .relaxed) }
                var connection = try? HTTPConnection(address)
                while !stopped.load(ordering: .relaxed) {
                    guard let open = connection, let (status, duration) = try? open.get(path) else {
                        failures.add(1, ordering: .relaxed)
                        connection?.close()
                        connection = try? HTTPConnection(address)
                        continue
                    }
                    if status == 200 { latencies.withLock { $0.append(duration) } } else { failures.add(1, ordering: .relaxed) }
                }
                connection?.close()
            }.start()
        }
    }

    func stop() async -> (latencies: [Duration], failures: Int) {
        stopped.store(true, ordering: .relaxed)
        while running.load(ordering: .relaxed) > 0 { try? await Task.sleep(for: .milliseconds(10)) }
        return (latencies.withLock { $0 }, failures.load(ordering: .relaxed))
    }
}
