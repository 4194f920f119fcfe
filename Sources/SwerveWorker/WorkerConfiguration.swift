public import SwerveProtocol
public import SwerveRedis

/// What a worker needs, from the environment its node agent gives it (the worker launch
/// contract in `docs/PROTOCOL.md`).
public struct WorkerConfiguration: Sendable {
    public var redis: RedisConfiguration
    public var keys: ClusterKeys
    public var nodeID: String
    /// The host the worker binds and advertises.
    public var nodeAddress: String
    public var tag: String
    /// The node agent's pid: when the worker's parent is no longer this, the agent died.
    public var agentPID: Int32?
    public var heartbeatTTL: Duration
    public var controlPollInterval: Duration

    public init(redis: RedisConfiguration, keys: ClusterKeys, nodeID: String, nodeAddress: String, tag: String,
                agentPID: Int32? = nil, heartbeatTTL: Duration = .seconds(3), controlPollInterval: Duration = .seconds(1)) {
        self.redis = redis
        self.keys = keys
        self.nodeID = nodeID
        self.nodeAddress = nodeAddress
        self.tag = tag
        self.agentPID = agentPID
        self.heartbeatTTL = heartbeatTTL
        self.controlPollInterval = controlPollInterval
    }

    /// Reads `SWERVE_REDIS_URL`, `SWERVE_CLUSTER`, `SWERVE_NODE_ID`, `SWERVE_NODE_ADDRESS`,
    /// `SWERVE_REPLICA_TAG`, `SWERVE_AGENT_PID` and the optional `SWERVE_HEARTBEAT_TTL_MS`;
    /// an error names every variable that is missing or invalid.
    public static func fromEnvironment(_ environment: [String: String]) throws -> WorkerConfiguration {
        var problems: [String] = []
        func required(_ name: String) -> String {
            guard let value = environment[name], !value.isEmpty else {
                problems.append("\(name) is not set")
                return ""
            }
            return value
        }
        let url = environment["SWERVE_REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "redis://127.0.0.1:6379"
        let cluster = environment["SWERVE_CLUSTER"].flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        let node = required("SWERVE_NODE_ID")
        let address = required("SWERVE_NODE_ADDRESS")
        let tag = required("SWERVE_REPLICA_TAG")
        var agent: Int32?
        if let text = environment["SWERVE_AGENT_PID"], !text.isEmpty {
            if let pid = Int32(text), pid > 0 { agent = pid } else { problems.append("SWERVE_AGENT_PID \"\(text)\" is not a pid") }
        }
        var ttl = Duration.seconds(3)
        if let text = environment["SWERVE_HEARTBEAT_TTL_MS"], !text.isEmpty {
            if let ms = Int64(text), ms >= 300 { ttl = .milliseconds(ms) } else { problems.append("SWERVE_HEARTBEAT_TTL_MS \"\(text)\" must be a number of milliseconds ≥ 300") }
        }
        let redis: RedisConfiguration
        let keys: ClusterKeys
        do {
            redis = try RedisConfiguration(url: url, environment: environment)
            keys = try ClusterKeys(cluster: cluster)
        } catch {
            problems.append("\(error)")
            throw WorkerError(.invalidEnvironment, "swerve worker: " + problems.joined(separator: "; "))
        }
        guard problems.isEmpty else { throw WorkerError(.invalidEnvironment, "swerve worker: " + problems.joined(separator: "; ")) }
        return WorkerConfiguration(redis: redis, keys: keys, nodeID: node, nodeAddress: address, tag: tag, agentPID: agent, heartbeatTTL: ttl)
    }
}
