public import SwerveCore
public import SwerveProtocol
public import SwerveRedis

/// What `swerve node` needs: a `Sendable` value with defaults, built by the CLI from flags.
public struct NodeConfiguration: Sendable {
    /// The Redis URL as given (workers get it as `SWERVE_REDIS_URL`).
    public var redisURL: String
    public var redis: RedisConfiguration
    public var keys: ClusterKeys
    public var id: String
    /// The host this node's workers bind and advertise.
    public var address: String
    public var resources: Resources
    public var nodeTTL: Duration
    public var workerHeartbeatTTL: Duration
    /// How often assignments and drain requests are re-read without a notification.
    public var pollInterval: Duration
    /// On SIGTERM, how long workers get to drain before they are killed.
    public var shutdownTimeout: Duration
    /// The program started for each replica, and its arguments (default: this `swerve`, `worker`).
    public var workerCommand: [String]
    /// The environment workers inherit before the launch contract's variables are added.
    public var environment: [String: String]
    /// The programs command replicas may run here (`--allow-command`; empty: any).
    public var allowedCommands = CommandAllowList(patterns: [])
    /// Where the agent records what its workers do.
    public var metrics = NodeMetrics()

    public init(redisURL: String, redis: RedisConfiguration, keys: ClusterKeys, id: String, address: String = "127.0.0.1",
                resources: Resources, nodeTTL: Duration = .seconds(3), workerHeartbeatTTL: Duration = .seconds(3),
                pollInterval: Duration = .seconds(10), shutdownTimeout: Duration = .seconds(30),
                workerCommand: [String], environment: [String: String] = [:]) {
        self.redisURL = redisURL
        self.redis = redis
        self.keys = keys
        self.id = id
        self.address = address
        self.resources = resources
        self.nodeTTL = nodeTTL
        self.workerHeartbeatTTL = workerHeartbeatTTL
        self.pollInterval = pollInterval
        self.shutdownTimeout = shutdownTimeout
        self.workerCommand = workerCommand
        self.environment = environment
    }
}
