import FoundationEssentials

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
    /// For an autoscaled backend: the count the autoscaler decided and what it waits on.
    public var autoscaling: AutoscalingState?

    /// The replica count the backend converges to: the autoscaler's decision, or `numReplicas`.
    public var target: Int {
        guard config.autoscaling != nil, let autoscaling else { return config.numReplicas }
        return autoscaling.desired
    }

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
        self.autoscaling = config.autoscaling.map { AutoscalingState(desired: $0.startingCount(running: nil)) }
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
