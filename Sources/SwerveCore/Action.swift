/// Which replica, on which node.
public struct ReplicaReference: Sendable, Hashable, Codable {
    public var tag: String
    public var backend: String
    public var node: String

    public init(tag: String, backend: String, node: String) {
        self.tag = tag
        self.backend = backend
        self.node = node
    }
}

/// Everything a node agent needs to start a replica.
public struct ReplicaAssignment: Sendable, Hashable, Codable {
    public var replica: ReplicaReference
    public var version: String
    public var replicaConfig: ReplicaConfig
    public var userConfig: JSONValue?
    public var maxConcurrentQueries: Int
    public var gracefulShutdownWaitLoopS: Double

    public init(replica: ReplicaReference, version: String, replicaConfig: ReplicaConfig, userConfig: JSONValue?,
                maxConcurrentQueries: Int, gracefulShutdownWaitLoopS: Double) {
        self.replica = replica
        self.version = version
        self.replicaConfig = replicaConfig
        self.userConfig = userConfig
        self.maxConcurrentQueries = maxConcurrentQueries
        self.gracefulShutdownWaitLoopS = gracefulShutdownWaitLoopS
    }
}

/// What the controller must do after a step, in the order given. ``writeCheckpoint(_:)``, when
/// present, is always first: every other action is covered by it (write-ahead), and every
/// other action is idempotent, so a new leader may safely do them again.
public enum Action: Sendable, Hashable {
    case writeCheckpoint(BackendState)
    case publishBackendConfigs(BackendConfigsView)
    case publishRoutingView(RoutingView)
    /// Kill at once (SIGKILL to the worker and its children), without draining.
    case forceKill(ReplicaReference)
    /// Ask it to drain; the node agent kills it at `deadline`.
    case drain(ReplicaReference, deadline: Timestamp)
    /// Tell a node agent to run it.
    case assign(ReplicaAssignment)
    /// Hand a running replica a new user config, without restarting it.
    case pushUserConfig(ReplicaReference, userConfig: JSONValue?)
    /// Remove a stopped replica's keys (assignment, ready, drain, drained).
    case forget(ReplicaReference)
    case completeGoal(GoalID)
    case failGoal(GoalID, reason: String)
}
