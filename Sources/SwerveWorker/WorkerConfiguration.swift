public import SwerveErrors
public import SwerveProtocol
public import SwerveRedis

/// What a worker needs: the launch contract its node agent set (``WorkerLaunchEnvironment``)
/// and the Redis connection it describes.
public struct WorkerConfiguration: Sendable {
    public var redis: RedisConfiguration
    public var keys: ClusterKeys
    public var nodeID: String
    /// The host the worker binds and advertises.
    public var nodeAddress: String
    public var tag: String
    /// The node agent's pid: when the worker's parent is no longer this, the agent died.
    public var agentPID: Int32?
    /// How often the drain and config keys are re-read (and a missing ready record written
    /// again) without a message: a safety net only. The control channel says when they change
    /// (and the node agent asks for a re-check when it finds Redis lost keys), and the worker
    /// re-reads them whenever its subscription (re)starts, so a message is lost only with a
    /// connection, and then re-read. Each re-read is two commands: at 60 s, 10,000 replicas cost
    /// Redis 330 commands a second.
    public var controlPollInterval: Duration

    public init(redis: RedisConfiguration, keys: ClusterKeys, nodeID: String, nodeAddress: String, tag: String,
                agentPID: Int32? = nil, controlPollInterval: Duration = .seconds(60)) {
        self.redis = redis
        self.keys = keys
        self.nodeID = nodeID
        self.nodeAddress = nodeAddress
        self.tag = tag
        self.agentPID = agentPID
        self.controlPollInterval = controlPollInterval
    }

    /// Reads the launch contract (``WorkerLaunchEnvironment``) and the Redis password variables;
    /// an error names every variable that is missing or invalid.
    public static func fromEnvironment(_ environment: [String: String]) throws(WorkerError) -> WorkerConfiguration {
        let launch: WorkerLaunchEnvironment
        let redis: RedisConfiguration
        do {
            launch = try WorkerLaunchEnvironment(environment: environment)
        } catch {
            throw WorkerError(.invalidEnvironment, "swerve worker: " + error.message)
        }
        do {
            redis = try RedisConfiguration(url: launch.redisURL, environment: environment)
        } catch {
            throw WorkerError(.invalidEnvironment, "swerve worker: \(WorkerLaunchEnvironment.Variable.redisURL): \(error)")
        }
        return WorkerConfiguration(redis: redis, keys: launch.keys, nodeID: launch.nodeID, nodeAddress: launch.nodeAddress,
                                   tag: launch.replicaTag, agentPID: launch.agentPID)
    }
}
