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

    @Option(help: "Requests that may wait per backend when every replica is at its limit (default: SWERVE_ROUTER_QUEUE_LIMIT, else 100).")
    var queueLimit: Int?

    @Option(help: "How long a request may wait for a replica, in milliseconds, before a 503 (default: SWERVE_ROUTER_QUEUE_TIMEOUT_MS, else 5000).")
    var queueTimeoutMs: Int?

    @Option(help: "Close a kept-alive client connection idle this long, in milliseconds (default: SWERVE_ROUTER_CLIENT_IDLE_TIMEOUT_MS, else 60000).")
    var clientIdleTimeoutMs: Int?

    @Option(help: "A request head must arrive in full this long after it began, in milliseconds, else 408 (default: SWERVE_ROUTER_CLIENT_HEADER_TIMEOUT_MS, else 10000).")
    var clientHeaderTimeoutMs: Int?

    @Option(help: "Client connections open at once; more are answered 503 and closed (default: SWERVE_ROUTER_MAX_CONNECTIONS, else 10000).")
    var maxConnections: Int?

    @Option(help: "Bytes of a request head, request line included; more is answered 431 (default: SWERVE_ROUTER_MAX_HEAD_BYTES, else 65536).")
    var maxHeadBytes: Int?

    @Option(help: "Fields in a request head; more is answered 431 (default: SWERVE_ROUTER_MAX_HEADER_FIELDS, else 100).")
    var maxHeaderFields: Int?

    @Option(help: "How often both snapshots are re-read without a notice, in milliseconds (a safety net for lost messages).")
    var resyncMs = 5000

    func validate() throws {
        _ = try addresses()
        _ = try settings()
        guard resyncMs >= 50 else { throw ArgumentParser.ValidationError("--resync-ms: must be ≥ 50, got \(resyncMs)") }
    }

    /// Each limit from its flag, else its environment variable, else its default; checked.
    func settings() throws -> ProxySettings {
        func value(_ flag: Int?, _ option: String, _ variable: String, _ fallback: Int, _ range: ClosedRange<Int>) throws -> Int {
            let chosen = try flag ?? environmentInteger(variable) ?? fallback
            guard range.contains(chosen) else {
                throw ArgumentParser.ValidationError("\(option) (or \(variable)): must be between \(range.lowerBound) and \(range.upperBound), got \(chosen)")
            }
            return chosen
        }
        let defaults = ProxySettings()
        let day = 86_400_000
        return ProxySettings(
            queueLimit: try value(queueLimit, "--queue-limit", "SWERVE_ROUTER_QUEUE_LIMIT", defaults.queueLimit, 0...1_000_000),
            queueTimeout: .milliseconds(try value(queueTimeoutMs, "--queue-timeout-ms", "SWERVE_ROUTER_QUEUE_TIMEOUT_MS", Int(defaults.queueTimeout / .milliseconds(1)), 0...day)),
            clientIdleTimeout: .milliseconds(try value(clientIdleTimeoutMs, "--client-idle-timeout-ms", "SWERVE_ROUTER_CLIENT_IDLE_TIMEOUT_MS",
                                                       Int(defaults.clientIdleTimeout / .milliseconds(1)), 1...day)),
            clientHeaderTimeout: .milliseconds(try value(clientHeaderTimeoutMs, "--client-header-timeout-ms", "SWERVE_ROUTER_CLIENT_HEADER_TIMEOUT_MS",
                                                         Int(defaults.clientHeaderTimeout / .milliseconds(1)), 1...day)),
            maxConnections: try value(maxConnections, "--max-connections", "SWERVE_ROUTER_MAX_CONNECTIONS", defaults.maxConnections, 1...10_000_000),
            maxHeadBytes: try value(maxHeadBytes, "--max-head-bytes", "SWERVE_ROUTER_MAX_HEAD_BYTES", defaults.maxHeadBytes, 1_024...(16 << 20)),
            maxHeaderFields: try value(maxHeaderFields, "--max-header-fields", "SWERVE_ROUTER_MAX_HEADER_FIELDS", defaults.maxHeaderFields, 1...65_534))
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
        let logger = try processLogger("swerve.router")
        let (listenAddress, adminAddress) = try addresses()
        let configuration = RouterConfiguration(
            redis: try cluster.redisConfiguration(), keys: try cluster.keys(), listen: listenAddress, admin: adminAddress,
            settings: try settings(), resync: .milliseconds(resyncMs))
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
