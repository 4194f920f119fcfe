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

    /// Whether any replica is in `state`. It reads one field of each record in place:
    /// iterating records with `for in`, or handing them to a closure (even `borrowing`), copies
    /// each one (a retain per string field), which dominated an idle step over 10,000 replicas.
    func anyReplica(in state: ReplicaState) -> Bool {
        for r in replicas.indices where replicas[r].state == state { return true }
        return false
    }

    /// Whether a placed replica was given another user config than the current one.
    var anyReplicaNeedsUserConfig: Bool {
        for r in replicas.indices where (replicas[r].state == .running || replicas[r].state == .starting) && replicas[r].userConfigVersion != userConfigVersion {
            return true
        }
        return false
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
    /// The live nodes at the last step, sorted: replicas are checked against the nodes again
    /// only when this set changes.
    public internal(set) var liveNodes: [String]

    public init() {
        backends = []
        retiredReplicas = []
        lastAppliedRequest = nil
        recentGoalOutcomes = []
        configsVersion = 0
        routingVersion = 0
        nextGeneration = 1
        liveNodes = []
    }

    /// Where the replica with `tag` is: its backend's index (or nil if retired) and its index.
    func locate(_ tag: String) -> (backend: Int?, replica: Int)? {
        if let hash = tag.firstIndex(of: "#") {
            let (found, b) = index(of: String(tag[..<hash]))
            if found, let r = backends[b].replicas.firstIndex(where: { $0.tag == tag }) { return (b, r) }
        }
        if let r = retiredReplicas.firstIndex(where: { $0.tag == tag }) { return (nil, r) }
        return nil
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
        view.reserveCapacity(backends.count)
        for b in backends.indices where !backends[b].deleting {
            var running: [RoutedReplica] = []
            running.reserveCapacity(backends[b].replicas.count)
            for r in backends[b].replicas.indices where backends[b].replicas[r].state == .running {
                guard let address = backends[b].replicas[r].endpoint?.address, let node = backends[b].replicas[r].node else { continue }
                running.append(RoutedReplica(tag: backends[b].replicas[r].tag, address: address, node: node))
            }
            view[backends[b].tag] = running
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
