import Foundation

/// One backend as the leader records it.
public struct BackendRecord: Sendable, Hashable, Codable {
    public var tag: String
    public var config: BackendConfig
    public var replicaConfig: ReplicaConfig
    /// `replicaConfig.version`, kept so it is computed once per change.
    public var version: String
    /// A digest of `config.userConfig`; replicas record which one they were given.
    public var userConfigVersion: String
    /// Distinguishes this incarnation from an earlier one with the same tag.
    public var generation: Int
    /// Its replicas in creation order (never those of an earlier incarnation).
    public var replicas: [ReplicaRecord]
    /// Goals waiting on this backend; they complete or fail together.
    public var goals: [GoalID]
    /// Being deleted: every replica drains, then the backend is removed.
    public var deleting: Bool
    /// Deleted with `force`: replicas are killed without draining.
    public var forceDelete: Bool
    /// Replicas that failed to start since the config last changed.
    public var failedStarts: Int
    /// Set when failed starts reached the limit: no replicas are added until the config changes.
    public var failure: String?

    init(tag: String, config: BackendConfig, replicaConfig: ReplicaConfig, generation: Int, goal: GoalID) {
        self.tag = tag
        self.config = config
        self.replicaConfig = replicaConfig
        self.version = replicaConfig.version
        self.userConfigVersion = Self.digest(config.userConfig)
        self.generation = generation
        self.replicas = []
        self.goals = [goal]
        self.deleting = false
        self.forceDelete = false
        self.failedStarts = 0
        self.failure = nil
    }

    static func digest(_ userConfig: JSONValue?) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let userConfig, let data = try? encoder.encode(userConfig) else { return "none" }
        return stableDigest(data)
    }
}

/// Everything the leader knows: the content of the checkpoint.
///
/// Backends are kept sorted by tag, so every step visits them in the same order and a
/// checkpoint encodes the same way every time.
public struct BackendState: Sendable, Hashable, Codable {
    public internal(set) var backends: [BackendRecord]
    /// Replicas of deleted incarnations that are still stopping.
    public internal(set) var retiredReplicas: [ReplicaRecord]
    /// The last request applied; requests at or before it are never applied again.
    public internal(set) var lastAppliedRequest: RequestID?
    /// The most recent goal outcomes, replayed after a failover in case the old leader wrote
    /// its checkpoint but died before announcing them.
    public internal(set) var recentGoalOutcomes: [GoalOutcome]
    public internal(set) var configsVersion: Int
    public internal(set) var routingVersion: Int
    public internal(set) var nextGeneration: Int

    public init() {
        backends = []
        retiredReplicas = []
        lastAppliedRequest = nil
        recentGoalOutcomes = []
        configsVersion = 0
        routingVersion = 0
        nextGeneration = 1
    }

    /// The index of the backend with `tag`, or where it would be inserted.
    func index(of tag: String) -> (found: Bool, index: Int) {
        var low = 0
        var high = backends.count
        while low < high {
            let middle = (low + high) / 2
            if backends[middle].tag < tag { low = middle + 1 } else { high = middle }
        }
        return (low < backends.count && backends[low].tag == tag, low)
    }

    public func backend(_ tag: String) -> BackendRecord? {
        let (found, index) = index(of: tag)
        return found ? backends[index] : nil
    }

    /// Every replica record, live backends' first (in tag order) then retired ones.
    public var allReplicas: [ReplicaRecord] { backends.flatMap(\.replicas) + retiredReplicas }

    /// The routers' view of this state: running replicas per backend.
    public var routingView: RoutingView {
        var view: [String: [RoutedReplica]] = [:]
        for backend in backends where !backend.deleting {
            let running = backend.replicas.compactMap { replica -> RoutedReplica? in
                guard replica.state == .running, let endpoint = replica.endpoint, let node = replica.node else { return nil }
                return RoutedReplica(tag: replica.tag, address: endpoint.address, node: node)
            }
            view[backend.tag] = running
        }
        return RoutingView(version: routingVersion, backends: view)
    }

    /// The routers' view of backend configs: routes and concurrency limits.
    public var backendConfigsView: BackendConfigsView {
        var view: [String: RoutedBackendConfig] = [:]
        for backend in backends where !backend.deleting {
            view[backend.tag] = RoutedBackendConfig(routePrefix: backend.config.routePrefix, maxConcurrentQueries: backend.config.maxConcurrentQueries)
        }
        return BackendConfigsView(version: configsVersion, backends: view)
    }
}

/// The replicas routers may use: exactly the RUNNING ones, per backend.
public struct RoutingView: Sendable, Hashable, Codable {
    public var version: Int
    public var backends: [String: [RoutedReplica]]
}

public struct RoutedReplica: Sendable, Hashable, Codable {
    public var tag: String
    public var address: String
    public var node: String
}

/// What routers need of each backend's config.
public struct BackendConfigsView: Sendable, Hashable, Codable {
    public var version: Int
    public var backends: [String: RoutedBackendConfig]
}

public struct RoutedBackendConfig: Sendable, Hashable, Codable {
    public var routePrefix: String?
    public var maxConcurrentQueries: Int
}

/// Which replica, on which node.
public struct ReplicaReference: Sendable, Hashable, Codable {
    public var tag: String
    public var backend: String
    public var node: String
}

/// Everything a node agent needs to start a replica.
public struct ReplicaAssignment: Sendable, Hashable, Codable {
    public var replica: ReplicaReference
    public var version: String
    public var replicaConfig: ReplicaConfig
    public var userConfig: JSONValue?
    public var maxConcurrentQueries: Int
    public var gracefulShutdownWaitLoopS: Double
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
