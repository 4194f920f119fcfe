import Foundation
public import Logging
public import SwerveCore
public import SwerveProtocol
public import SwerveRedis
import SwerveHTTP
import SwerveMetrics

/// What `swerve router` needs.
public struct RouterConfiguration: Sendable {
    public var redis: RedisConfiguration
    public var keys: ClusterKeys
    /// Where clients connect (`host`, `port`; port 0 picks one).
    public var listen: HostPort
    /// Where `/-/healthz`, `/-/routes` and `/metrics` are served; nil for nowhere.
    public var admin: HostPort?
    public var settings: ProxySettings
    /// How often both snapshots are re-read even without a notice.
    public var resync: Duration
    /// After SIGTERM, how long in-flight requests get to finish.
    public var drainTimeout: Duration

    public init(redis: RedisConfiguration, keys: ClusterKeys, listen: HostPort, admin: HostPort?,
                settings: ProxySettings = ProxySettings(), resync: Duration = .seconds(5), drainTimeout: Duration = .seconds(30)) {
        self.redis = redis
        self.keys = keys
        self.listen = listen
        self.admin = admin
        self.settings = settings
        self.resync = resync
        self.drainTimeout = drainTimeout
    }
}

/// `swerve router`: the data plane. Serves until its task is cancelled (SIGTERM), then stops
/// accepting, lets in-flight requests finish (up to the drain timeout) and returns.
public enum Router {
    /// Runs the router; `started` is told the listening and admin addresses once both listen.
    public static func run(_ configuration: RouterConfiguration, logger: Logger,
                           started: @Sendable (_ listen: String, _ admin: String?) -> Void = { _, _ in }) async throws {
        let registry = MetricsEndpoint.bootstrap(durationBuckets: [RouterMetrics.durationLabel: RouterMetrics.durationBuckets])
        let state = ProxyState(settings: configuration.settings, metrics: RouterMetrics(),
                               upstreamSetup: ConnectionSetup(server: "router-upstream", logger: logger))
        let client = RedisClient(configuration: configuration.redis, logger: logger)
        defer { client.close() }
        let server = try await ProxyServer.start(host: configuration.listen.host, port: Int(configuration.listen.port), state: state,
                                                 setup: ConnectionSetup(server: "router", logger: logger))
        var admin: MetricsEndpoint?
        if let address = configuration.admin {
            admin = try await MetricsEndpoint.start(host: address.host, port: Int(address.port), registry: registry,
                                                    pages: ["/-/routes": { ("application/json", RoutesPage.render(state.currentView, queueLength: state.queueLength)) }])
        }
        started(server.address, admin?.address)
        logger.info("routing", metadata: ["listen": "\(server.address)", "admin": "\(admin?.address ?? "none")"])
        let follower = ViewFollower(keys: configuration.keys, client: client, subscriberConfiguration: configuration.redis, state: state,
                                    resync: configuration.resync, logger: logger)
        let routerID = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let reporter = LoadReporter(keys: configuration.keys, client: client, state: state, routerID: routerID, logger: logger)
        let traffic = TrafficReporter(keys: configuration.keys, client: client, metrics: state.metrics, routerID: routerID, logger: logger)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await follower.run() }
            group.addTask { await reporter.run() }
            group.addTask { await traffic.run() }
            // Until cancelled.
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
            group.cancelAll()
        }
        await server.stopAccepting()
        let deadline = ContinuousClock.now + configuration.drainTimeout
        while state.activeRequests > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        logger.info("stopped", metadata: ["unfinished": "\(state.activeRequests)"])
        await admin?.close()
    }
}
