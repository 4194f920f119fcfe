import ArgumentParser
import Foundation
import Logging
import SwerveProtocol
import SwerveRedis
import SwerveSystem

/// `swerve-ops sim`: a simulated fleet (``SimulatedFleet``) — N node agents and their workers in
/// one process — against a real Redis and real controllers, for `ops/bench scale` and for
/// trying the control plane at a size this machine could not run for real.
///
/// Reads commands on stdin, one per line, and answers each with one line on stdout:
/// `kill-replica [TAG]`, `lose-node [ID]`, `slow-node ID SECONDS`, `status`. Stops on SIGTERM,
/// or SIGINT (a closed stdin only ends the commands).
struct SimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Simulate many node agents and their workers against a real Redis and real controllers.",
        discussion: """
            Example:
              swerve-ops sim --redis redis://127.0.0.1:6379 --cluster big --nodes 1000
              (then, on stdin: kill-replica · lose-node · slow-node sim-7 5 · status)
            """
    )

    @Option(help: "The Redis URL (default: SWERVE_REDIS_URL, else redis://127.0.0.1:6379).")
    var redis = ProcessInfo.processInfo.environment["SWERVE_REDIS_URL"] ?? "redis://127.0.0.1:6379"
    @Option(help: "The cluster name.") var cluster = "default"
    @Option(help: "How many node agents to simulate.") var nodes = 100
    @Option(help: "Node ids are PREFIX-1…PREFIX-N.") var prefix = "sim"
    @Option(help: "CPUs each simulated node offers.") var cpu: Double = 64
    @Option(help: "How long a started worker takes to report ready, in milliseconds.") var readyDelayMs = 0
    @Option(help: "Simulated routers following the routing snapshot.") var routers = 1

    func validate() throws {
        guard (1...100_000).contains(nodes) else { throw ValidationError("--nodes: must be 1 to 100000, got \(nodes)") }
        guard readyDelayMs >= 0 else { throw ValidationError("--ready-delay-ms: must be 0 or more, got \(readyDelayMs)") }
        guard (0...100).contains(routers) else { throw ValidationError("--routers: must be 0 to 100, got \(routers)") }
        guard cpu > 0, cpu.isFinite else { throw ValidationError("--cpu: must be above 0, got \(cpu)") }
    }

    func run() async throws {
        var logger = Logger(label: "swerve-ops.sim")
        logger.logLevel = .warning
        let settings = SimulatedFleet.Settings(redis: try RedisConfiguration(url: redis), keys: try ClusterKeys(cluster: cluster), nodes: nodes,
                                               prefix: prefix, cpu: cpu, readyDelay: .milliseconds(readyDelayMs), routers: routers)
        let (events, continuation) = AsyncStream.makeStream(of: SimulatedFleet.Event.self)
        let termination = handleTermination { continuation.yield(.stop) }
        defer { termination.cancel() }
        // Commands come from a thread of their own: reading stdin blocks.
        Thread {
            while let line = readLine() {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if !trimmed.isEmpty { continuation.yield(.command(trimmed)) }
            }
        }.start()
        try await SimulatedFleet(settings: settings, logger: logger).run(events: events, continuation: continuation)
    }
}
