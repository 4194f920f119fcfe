import ArgumentParser
import Foundation
import Logging
import SwerveController
import SwerveSystem

/// `swerve controller`: one of the 2–5 controllers; the one holding the lease runs the cluster.
struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Run a controller: contend for the lease, and while leading, keep the backends running.",
        discussion: """
            Run two to five. SIGTERM releases the lease, so another takes over at once.

            Example:
              swerve controller --redis redis://10.0.0.2:6379 --cluster prod --id ctl-a
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "This controller's id (default: HOST-PID).")
    var id: String?

    @Option(help: "The lease's time to live, in milliseconds.")
    var leaseTTLMs: Int = 1500

    @Option(help: "The control loop runs at least this often, in milliseconds.")
    var tickMs: Int = 100

    func validate() throws {
        guard leaseTTLMs >= 300 else { throw ArgumentParser.ValidationError("--lease-ttl-ms: must be ≥ 300, got \(leaseTTLMs)") }
        guard tickMs >= 10 else { throw ArgumentParser.ValidationError("--tick-ms: must be ≥ 10, got \(tickMs)") }
    }

    func run() async throws {
        var logger = Logger(label: "swerve.controller") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = ProcessInfo.processInfo.environment["SWERVE_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        let host = ProcessInfo.processInfo.hostName
        let pid = ProcessInfo.processInfo.processIdentifier
        let configuration = ControllerConfiguration(
            redis: try cluster.redisConfiguration(), keys: try cluster.keys(),
            identity: ControllerIdentity(id: id ?? "\(host)-\(pid)", host: host, pid: pid),
            leaseTTL: .milliseconds(leaseTTLMs), tick: .milliseconds(tickMs))
        let task = Task { try await Controller.run(configuration, logger: logger) }
        let termination = handleTermination { task.cancel() }
        defer { termination.cancel() }
        do {
            try await task.value
        } catch {
            FileHandle.standardError.write(Data("swerve controller: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
