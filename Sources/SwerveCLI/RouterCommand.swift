import ArgumentParser
import Foundation
import Logging
import SwerveCore
import SwerveProtocol
import SwerveRouter
import SwerveSystem

/// `swerve router`: the HTTP proxy in front of the replicas.
struct RouterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "router",
        abstract: "Run an HTTP router: send each request to a running replica of the backend that owns its route.",
        discussion: """
            It learns routes and replicas from the leader's snapshots in Redis and goes on
            serving from its last view while no controller leads or Redis is away. SIGTERM (or SIGINT) stops
            accepting, lets in-flight requests finish, and exits.

            Example:
              swerve router --redis redis://10.0.0.2:6379 --listen 0.0.0.0:8000 --admin 127.0.0.1:8001
              curl localhost:8000/api/hello; curl localhost:8001/-/routes
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: ArgumentHelp("Where clients connect (default: SWERVE_ROUTER_LISTEN, else 127.0.0.1:8000; port 0 picks one).", valueName: "host:port"))
    var listen: String?

    @Option(help: ArgumentHelp("Where /-/healthz, /-/routes and /metrics are served (default: SWERVE_ROUTER_ADMIN, else none).", valueName: "host:port"))
    var admin: String?

    @Option(help: "Requests that may wait per backend when every replica is at its limit.")
    var queueLimit = 100

    @Option(help: "How long a request may wait for a replica, in milliseconds, before a 503.")
    var queueTimeoutMs = 5000

    @Option(help: "How often both snapshots are re-read without a notice, in milliseconds (a safety net for lost messages).")
    var resyncMs = 5000

    func validate() throws {
        _ = try addresses()
        guard resyncMs >= 50 else { throw ArgumentParser.ValidationError("--resync-ms: must be ≥ 50, got \(resyncMs)") }
        guard queueLimit >= 0 else { throw ArgumentParser.ValidationError("--queue-limit: must be ≥ 0, got \(queueLimit)") }
        guard queueTimeoutMs >= 0 else { throw ArgumentParser.ValidationError("--queue-timeout-ms: must be ≥ 0, got \(queueTimeoutMs)") }
    }

    func addresses() throws -> (listen: HostPort, admin: HostPort?) {
        let environment = ProcessInfo.processInfo.environment
        let listenText = listen ?? environment["SWERVE_ROUTER_LISTEN"] ?? "127.0.0.1:8000"
        let listenAddress = try parseHostPort(listenText, option: "--listen (or SWERVE_ROUTER_LISTEN)")
        let adminText = admin ?? environment["SWERVE_ROUTER_ADMIN"]
        let adminAddress = try adminText.flatMap { $0.isEmpty ? nil : try parseHostPort($0, option: "--admin (or SWERVE_ROUTER_ADMIN)") }
        return (listenAddress, adminAddress)
    }

    func run() async throws {
        var logger = Logger(label: "swerve.router") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = ProcessInfo.processInfo.environment["SWERVE_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        let (listenAddress, adminAddress) = try addresses()
        let configuration = RouterConfiguration(
            redis: try cluster.redisConfiguration(), keys: try cluster.keys(), listen: listenAddress, admin: adminAddress,
            settings: ProxySettings(queueLimit: queueLimit, queueTimeout: .milliseconds(queueTimeoutMs)), resync: .milliseconds(resyncMs))
        try exitIfDryRun("router", "cluster \(configuration.keys.cluster), listen \(listenAddress), admin \(adminAddress.map(\.description) ?? "none")")
        try await runUntilTerminated("router") { [configuration, logger] in
            try await Router.run(configuration, logger: logger) { listen, admin in
                // One line on stdout, for scripts and tests: where it listens.
                FileHandle.standardOutput.write(Data("listening \(listen) admin \(admin ?? "none")\n".utf8))
            }
        }
    }
}

/// `host:port` (`[v6]:port`), or a validation error naming `option` and what is wrong.
func parseHostPort(_ text: String, option: String) throws -> HostPort {
    guard let address = HostPort(text) else {
        throw ArgumentParser.ValidationError("\(option): \(HostPort.problem(in: text) ?? "expected HOST:PORT")")
    }
    return address
}
