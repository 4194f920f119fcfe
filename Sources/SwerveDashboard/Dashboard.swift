public import Logging
public import SwerveCore
public import SwerveProtocol
public import SwerveRedis

/// `swerve dashboard`: the ``DashboardFeed`` and the ``DashboardServer`` together, until the
/// task is cancelled.
public enum Dashboard {
    public struct Configuration: Sendable {
        public var redis: RedisConfiguration
        public var keys: ClusterKeys
        public var listen: HostPort
        /// Names besides IP addresses and `localhost` the page may be reached by, lowercased.
        public var allowedHosts: Set<String>

        public init(redis: RedisConfiguration, keys: ClusterKeys, listen: HostPort, allowedHosts: Set<String> = []) {
            self.redis = redis
            self.keys = keys
            self.listen = listen
            self.allowedHosts = allowedHosts
        }
    }

    /// Serves until cancelled; `listening` is told the address once it accepts connections.
    public static func run(_ configuration: Configuration, logger: Logger, listening: @Sendable (String) -> Void = { _ in }) async throws {
        let feed = DashboardFeed(keys: configuration.keys, redis: configuration.redis, logger: logger)
        let server = try await DashboardServer.start(host: configuration.listen.host, port: Int(configuration.listen.port), feed: feed,
                                                     allowedHosts: configuration.allowedHosts)
        logger.info("serving the dashboard", metadata: ["address": "\(server.address)", "cluster": "\(configuration.keys.cluster)"])
        listening(server.address)
        await withTaskCancellationHandler {
            await feed.run()
        } onCancel: {
            feed.close()
        }
        await server.close()
    }
}
