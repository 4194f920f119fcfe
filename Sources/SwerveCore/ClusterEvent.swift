/// One state transition, as `swerve events` and `swerve describe` show it: what changed, for
/// which backend (and replica), in words an operator can act on.
///
/// Derived, never stored in the checkpoint: ``ClusterEvent/between(_:_:actions:)`` compares
/// the state before and after a step, so every transition a step made appears exactly once
/// per step that made it (a leader that repeats a step after a crash may record it again).
public struct ClusterEvent: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable {
        case backendCreated = "BackendCreated"
        case backendUpdated = "BackendUpdated"
        case backendDeleting = "BackendDeleting"
        case backendRemoved = "BackendRemoved"
        case backendFailed = "BackendFailed"
        /// The autoscaler changed an autoscaled backend's replica count (the reason says why).
        case backendAutoscaled = "BackendAutoscaled"
        case replica = "Replica"
        case goalCompleted = "GoalCompleted"
        case goalFailed = "GoalFailed"
        /// A controller began a term as leader (written by its first step; `backend` empty).
        case leaderElected = "LeaderElected"
    }

    /// What a new leader's first step records: who leads, from which epoch.
    public static func leaderElected(controller: String, epoch: Int64) -> ClusterEvent {
        ClusterEvent(kind: .leaderElected, backend: "", message: "controller \(controller) leads from epoch \(epoch)")
    }

    public var kind: Kind
    public var backend: String
    /// The replica's tag, for replica transitions.
    public var replica: String?
    /// The goal's id, for goals settled.
    public var goal: GoalID?
    public var message: String

    public init(kind: Kind, backend: String, replica: String? = nil, goal: GoalID? = nil, message: String) {
        self.kind = kind
        self.backend = backend
        self.replica = replica
        self.goal = goal
        self.message = message
    }

    /// The transitions from `old` to `new` (backends, then replicas in tag order, then replicas
    /// whose records were dropped), then the goals `actions` settle.
    public static func between(_ old: BackendState, _ new: BackendState, actions: [Action]) -> [ClusterEvent] {
        var events: [ClusterEvent] = []
        let before = Dictionary(old.backends.map { ($0.tag, $0) }, uniquingKeysWith: { a, _ in a })
        let after = Dictionary(new.backends.map { ($0.tag, $0) }, uniquingKeysWith: { a, _ in a })
        for tag in Set(before.keys).union(after.keys).sorted() {
            switch (before[tag], after[tag]) {
            case (nil, let created?):
                events.append(ClusterEvent(kind: .backendCreated, backend: tag,
                                           message: "created with \(created.target) replica\(created.target == 1 ? "" : "s") at version \(created.version)"
                                               + (created.config.autoscaling.map { ", autoscaled \($0.minReplicas)…\($0.maxReplicas)" } ?? "")))
            case (let gone?, nil):
                events.append(ClusterEvent(kind: .backendRemoved, backend: tag, message: "removed\(gone.forceDelete ? " (forced)" : "")"))
            case (let was?, let now?):
                if !was.deleting, now.deleting {
                    events.append(ClusterEvent(kind: .backendDeleting, backend: tag, message: now.forceDelete ? "deleting: killing its replicas" : "deleting: draining its replicas"))
                } else if was.version != now.version || was.config != now.config {
                    var changes: [String] = []
                    if was.config.autoscaling == nil, now.config.autoscaling == nil, was.config.numReplicas != now.config.numReplicas {
                        changes.append("replicas \(was.config.numReplicas) → \(now.config.numReplicas)")
                    }
                    if was.config.autoscaling != now.config.autoscaling {
                        changes.append(now.config.autoscaling.map { "autoscaled \($0.minReplicas)…\($0.maxReplicas), target \(formatNumber($0.targetOngoingRequests)) requests per replica" }
                                       ?? "no longer autoscaled: \(now.config.numReplicas) replicas")
                    }
                    if was.version != now.version { changes.append("version \(was.version) → \(now.version) (rolling out)") }
                    if was.userConfigVersion != now.userConfigVersion { changes.append("user config updated") }
                    if changes.isEmpty { changes.append("config updated") }
                    events.append(ClusterEvent(kind: .backendUpdated, backend: tag, message: changes.joined(separator: ", ")))
                }
                if was.failure == nil, let failure = now.failure {
                    events.append(ClusterEvent(kind: .backendFailed, backend: tag, message: failure))
                }
                if let scaled = now.autoscaling, let before = was.autoscaling, scaled.desired != before.desired {
                    events.append(ClusterEvent(kind: .backendAutoscaled, backend: tag,
                                               message: "\(before.desired) → \(scaled.desired) replicas: \(scaled.reason ?? "autoscaled")"))
                }
            case (nil, nil):
                break
            }
        }
        let replicasBefore = Self.replicas(of: old)
        let replicasAfter = Self.replicas(of: new)
        for replica in replicasAfter.values.sorted(by: { $0.tag < $1.tag }) {
            let previous = replicasBefore[replica.tag]?.state
            guard previous != replica.state else { continue }
            events.append(ClusterEvent(kind: .replica, backend: replica.backend, replica: replica.tag, message: describe(replica, from: previous)))
        }
        for replica in replicasBefore.values.sorted(by: { $0.tag < $1.tag }) where replicasAfter[replica.tag] == nil {
            events.append(ClusterEvent(kind: .replica, backend: replica.backend, replica: replica.tag,
                                       message: "\(replica.state.rawValue) → removed (its process is gone; version \(replica.version))"))
        }
        for action in actions {
            switch action {
            case .completeGoal(let goal):
                events.append(ClusterEvent(kind: .goalCompleted, backend: backend(of: goal, old, new) ?? "", goal: goal, message: "goal \(goal) completed"))
            case .failGoal(let goal, let reason):
                events.append(ClusterEvent(kind: .goalFailed, backend: backend(of: goal, old, new) ?? "", goal: goal, message: "goal \(goal) failed: \(reason)"))
            default:
                break
            }
        }
        return events
    }

    private static func replicas(of state: BackendState) -> [String: ReplicaRecord] {
        var all: [String: ReplicaRecord] = [:]
        for replica in state.retiredReplicas { all[replica.tag] = replica }
        for backend in state.backends { for replica in backend.replicas { all[replica.tag] = replica } }
        return all
    }

    private static func describe(_ replica: ReplicaRecord, from previous: ReplicaState?) -> String {
        let transition = previous.map { "\($0.rawValue) → \(replica.state.rawValue)" } ?? replica.state.rawValue
        var details: [String] = []
        if let node = replica.node { details.append("node \(node)") }
        if replica.state == .running, let pid = replica.endpoint?.pid { details.append("pid \(pid)") }
        if replica.state == .shouldStart, let reason = replica.pendingReason { details.append(reason) }
        if replica.state == .stopped || replica.state == .shouldStop, let reason = replica.stopReason { details.append(reason) }
        details.append("version \(replica.version)")
        return transition + " (" + details.joined(separator: ", ") + ")"
    }

    /// The backend a goal belongs to: the one listing it before the step (it is settled now).
    private static func backend(of goal: GoalID, _ old: BackendState, _ new: BackendState) -> String? {
        (old.backends + new.backends).first { $0.goals.contains(goal) }?.tag
    }
}
