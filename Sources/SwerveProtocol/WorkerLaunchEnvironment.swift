public import SwerveCore
public import SwerveErrors

/// The worker launch contract: the variables a node agent sets when it starts `swerve worker`
/// for one replica (see "the worker launch contract" in `docs/PROTOCOL.md`).
///
/// Guarantees: ``environment()`` and ``init(environment:)`` are inverses; reading checks every
/// variable and names each one that is missing or invalid in one error. The Redis credentials
/// are not part of it: the agent hands workers the worker role's (`SWERVE_WORKER_REDIS_USER`,
/// `SWERVE_WORKER_REDIS_PASSWORD_FILE`, as `SWERVE_REDIS_USER` and
/// `SWERVE_REDIS_PASSWORD_FILE`) when it has them, else its own pass through unchanged.
public struct WorkerLaunchEnvironment: Sendable, Hashable {
    /// The variables' names.
    public enum Variable {
        public static let redisURL = "SWERVE_REDIS_URL"
        public static let cluster = "SWERVE_CLUSTER"
        public static let nodeID = "SWERVE_NODE_ID"
        public static let nodeAddress = "SWERVE_NODE_ADDRESS"
        public static let replicaTag = "SWERVE_REPLICA_TAG"
        public static let agentPID = "SWERVE_AGENT_PID"
        public static let heartbeatTTL = "SWERVE_HEARTBEAT_TTL_MS"
    }

    /// The shortest heartbeat TTL a worker accepts.
    public static let minimumHeartbeatTTL = Duration.milliseconds(300)

    /// As the node agent was given it; default `redis://127.0.0.1:6379`.
    public var redisURL: String
    public var keys: ClusterKeys
    public var nodeID: String
    /// The host the worker binds and advertises (no port).
    public var nodeAddress: String
    public var replicaTag: String
    /// The node agent's pid: when the worker's parent is no longer this, the agent died.
    public var agentPID: Int32?
    /// The ready record's TTL of the protocol before node leases (workers renewed it). Still
    /// set, so workers written for it start; a worker of this protocol ignores it: its ready
    /// record has no TTL (its node's heartbeat vouches for it).
    public var heartbeatTTL: Duration

    public init(redisURL: String, keys: ClusterKeys, nodeID: String, nodeAddress: String, replicaTag: String,
                agentPID: Int32?, heartbeatTTL: Duration = .seconds(3)) {
        self.redisURL = redisURL
        self.keys = keys
        self.nodeID = nodeID
        self.nodeAddress = nodeAddress
        self.replicaTag = replicaTag
        self.agentPID = agentPID
        self.heartbeatTTL = heartbeatTTL
    }

    /// The variables to add to the worker's environment.
    public func environment() -> [String: String] {
        var variables = [
            Variable.redisURL: redisURL,
            Variable.cluster: keys.cluster,
            Variable.nodeID: nodeID,
            Variable.nodeAddress: nodeAddress,
            Variable.replicaTag: replicaTag,
            Variable.heartbeatTTL: "\(heartbeatTTL.wholeMilliseconds)",
        ]
        if let agentPID { variables[Variable.agentPID] = "\(agentPID)" }
        return variables
    }

    /// Reads the contract from a worker's environment.
    /// - Throws: ``ProtocolError`` `.malformed` naming every variable that is missing or invalid.
    public init(environment: [String: String]) throws(ProtocolError) {
        var problems: [String] = []
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        func required(_ name: String) -> String {
            guard let value = value(name) else {
                problems.append("\(name) is not set")
                return ""
            }
            return value
        }
        redisURL = value(Variable.redisURL) ?? "redis://127.0.0.1:6379"
        var keys: ClusterKeys?
        do {
            keys = try ClusterKeys(cluster: value(Variable.cluster) ?? "default")
        } catch {
            problems.append("\(Variable.cluster): \(error.message)")
        }
        nodeID = required(Variable.nodeID)
        nodeAddress = required(Variable.nodeAddress)
        if !nodeAddress.isEmpty, let problem = HostPort.problem(host: nodeAddress) {
            problems.append("\(Variable.nodeAddress): \(problem)")
        }
        replicaTag = required(Variable.replicaTag)
        agentPID = nil
        if let text = value(Variable.agentPID) {
            if let pid = Int32(text), pid > 0 { agentPID = pid } else { problems.append("\(Variable.agentPID) \"\(text)\" is not a pid") }
        }
        heartbeatTTL = .seconds(3)
        if let text = value(Variable.heartbeatTTL) {
            if let ms = Int64(text), ms >= 300, ms <= 3_600_000 {
                heartbeatTTL = .milliseconds(ms)
            } else {
                problems.append("\(Variable.heartbeatTTL) \"\(text)\" must be a number of milliseconds from 300 to 3600000")
            }
        }
        guard problems.isEmpty, let keys else { throw ProtocolError(.malformed, problems.joined(separator: "; ")) }
        self.keys = keys
    }
}
