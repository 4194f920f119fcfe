public import SwerveErrors
/// Every Redis key and channel of one Swerve cluster, by name. The single place names are
/// spelled, so that every process (and `docs/PROTOCOL.md`) agrees on them.
///
/// All of them start with `swerve:{CLUSTER}:`. The braces are a Redis Cluster hash tag: every
/// key of a cluster lands in one slot, so multi-key Lua scripts stay legal on a Redis Cluster.
public struct ClusterKeys: Sendable, Hashable {
    public let cluster: String
    /// `swerve:{CLUSTER}:`
    public let prefix: String

    /// - Throws: when `cluster` is empty, longer than 64 characters, or holds anything but
    ///   letters, digits, `-`, `_` and `.` (braces or colons would break the hash tag or the
    ///   key structure).
    public init(cluster: String) throws(ProtocolError) {
        guard !cluster.isEmpty, cluster.count <= 64,
              cluster.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") })
        else {
            throw ProtocolError(.invalidName, "invalid cluster name \"\(cluster)\": use 1 to 64 letters, digits, \"-\", \"_\" or \".\" (set with --cluster or SWERVE_CLUSTER)")
        }
        self.cluster = cluster
        self.prefix = "swerve:{\(cluster)}:"
    }

    // MARK: Nodes

    /// STRING, a ``NodeRecord``, written when it changes and kept by the agent for
    /// ``nodeRecordTTL`` (renewed well before): what the node offers. Whether the node is alive
    /// is its score in ``nodes``, not this key.
    public func node(_ id: String) -> String { prefix + "node:" + id }
    /// STRING, a ``NodeOwnerDocument`` with ``nodeRecordTTL``: which agent process runs node `id`.
    public func nodeOwner(_ id: String) -> String { prefix + "node:" + id + ":owner" }
    /// How long a node record and its owner claim outlive their agent's last renewal.
    public static let nodeRecordTTL = Duration.seconds(60)
    /// HASH node id → ``NodeCordonDocument``: nodes operators cordoned or drained.
    public var cordons: String { prefix + "cordons" }
    /// ZSET of node ids, scored by when the node's lease runs out (Unix ms, Redis's clock): the
    /// node's heartbeat. A node is alive while its score is ahead of Redis's `TIME` and its
    /// record exists.
    public var nodes: String { prefix + "nodes" }
    /// SET of node ids whose record or liveness changed (joined, draining, left, back after its
    /// lease ran out) since the leader last took them (`SPOP`): what the leader re-reads.
    public var changedNodes: String { prefix + "nodes:changed" }
    /// HASH replica tag → ``AssignmentDocument``: exactly the replicas the node must run.
    /// Not under `node:`, which node agents may write (see ``AccessRoles``): only the leader
    /// writes what a node runs.
    public func assignments(_ node: String) -> String { prefix + "assignments:" + node }
    /// STRING integer, incremented with every change of the node's assignments.
    public func assignmentsVersion(_ node: String) -> String { prefix + "assignments:" + node + ":version" }
    /// Channel: the node's assignments changed (message: the new version).
    public func nodeNotify(_ node: String) -> String { prefix + "node:" + node + ":notify" }

    // MARK: Replicas

    /// STRING, a ``ReadyRecord``, written once when the replica is ready (no TTL: its node's
    /// heartbeat vouches for it); deleted when it stops serving (unhealthy, drained, exited).
    public func ready(_ tag: String) -> String { replica(tag) + ":ready" }
    /// STRING, a ``DrainRequest``: the replica must stop.
    public func drain(_ tag: String) -> String { replica(tag) + ":drain" }
    /// STRING, a ``DrainedRecord``: the replica has finished its work and is exiting.
    public func drained(_ tag: String) -> String { replica(tag) + ":drained" }
    /// STRING, an ``ExitRecord``: the replica's process exited (written by its node agent).
    public func exit(_ tag: String) -> String { replica(tag) + ":exit" }
    /// STRING, a ``UserConfigDocument``: the user config the replica must apply.
    public func userConfig(_ tag: String) -> String { replica(tag) + ":config" }
    /// Channel: a ``ControlMessage`` for the replica (drain, config).
    public func control(_ tag: String) -> String { replica(tag) + ":control" }

    /// SET of replica tags whose ready, drained or exit key changed since the leader last took
    /// them (`SPOP`): workers and node agents add a tag right after writing its key.
    public var changedReplicas: String { prefix + "replicas:changed" }

    /// Every key of a replica, for clean-up.
    public func replicaKeys(_ tag: String) -> [String] {
        [ready(tag), drain(tag), drained(tag), exit(tag), userConfig(tag)]
    }

    // MARK: Leadership

    /// STRING `"<controllerId>:<epoch>"` with the lease TTL: who should lead, and its fencing token.
    public var lease: String { prefix + "lease" }
    /// STRING integer: the last epoch handed out; never goes backwards.
    public var epoch: String { prefix + "epoch" }
    /// STRING, a ``LeaderRecord``, with the lease TTL: for `swerve leader` and people.
    public var leader: String { prefix + "leader" }
    /// Channel: a ``LeaderEvent`` when a controller starts or stops leading.
    public var leaderEvents: String { prefix + "leader:events" }
    /// STRING `"<lease value>\n<channel>"` with the lease TTL, beside the lease: the channel the
    /// lease holder's process stays subscribed to while it lives (``presence(_:)``). A follower
    /// that finds no subscriber on it knows the holder's process is gone, and takes the lease
    /// without waiting for it to expire.
    public var leasePresence: String { prefix + "lease:presence" }
    /// Channel nobody publishes on: one controller process, `instance` naming it (its id and a
    /// random token), stays subscribed to it while it lives; `PUBSUB NUMSUB` of it is 0 once
    /// its connections are closed.
    public func presence(_ instance: String) -> String { prefix + "controller:" + instance + ":present" }
    /// STRING integer: the epoch of the stored checkpoint; a floor for the next epoch.
    public var checkpointEpoch: String { prefix + "checkpoint:epoch" }

    // MARK: Requests, goals, state

    /// STREAM of client requests: fields `goal` (id) and `request` (a `Request.Operation`, JSON).
    public var requests: String { prefix + "requests" }
    /// STRING, a ``RequestAttemptDocument``: the batch of requests the leader is applying and
    /// how often its first was attempted; written (fenced) before the step that applies them.
    public var requestAttempt: String { prefix + "request-attempt" }
    /// STRING, the checkpoint's header (`SwerveCore.Checkpoint`), written by the leader (fenced).
    public var checkpoint: String { prefix + "checkpoint" }
    /// HASH, the checkpoint's parts (one per backend and per replica, and the live nodes),
    /// written by the leader in the same script as the header.
    public var checkpointParts: String { prefix + "checkpoint:parts" }
    /// STRING, a `GoalOutcome`, written when the goal completes or fails; kept a day.
    public func goal(_ id: String) -> String { prefix + "goal:" + id }
    /// Channel: a `GoalOutcome` when any goal settles.
    public var goals: String { prefix + "goals" }
    /// STRING, the routing view (`SwerveCore.RoutingView`) with the leader's epoch: the whole
    /// view, rewritten when the deltas after it outweigh it.
    public var routingSnapshot: String { prefix + "snapshot:routing" }
    /// LIST of ``SnapshotNotice``s with a `delta`, oldest first: the changes since the routing
    /// snapshot (emptied whenever it is rewritten).
    public var routingDeltas: String { prefix + "snapshot:routing:deltas" }
    /// STRING, the backend configs view (`SwerveCore.BackendConfigsView`) with the leader's epoch.
    public var configsSnapshot: String { prefix + "snapshot:configs" }
    /// Channel: `{"kind": "routing" | "configs", "epoch", "version"}` after a snapshot changed.
    public var snapshots: String { prefix + "snapshots" }
    /// STRING, JSON `{backend: BackendStatus}`: every backend's status, for `swerve status`.
    public var status: String { prefix + "status" }
    /// STREAM of state transitions (`SwerveCore.ClusterEvent`) the leader appends (fenced),
    /// capped near ``eventsLimit`` entries: fields `epoch`, `controller`, `at` (Unix ms),
    /// `kind`, `backend`, `replica` and `goal` (may be empty), `message`. For `swerve events`.
    public var events: String { prefix + "events" }
    /// About how many entries ``events`` keeps (XADD MAXLEN ~).
    public static let eventsLimit = 10_000

    // MARK: Load reports (autoscaling)

    /// HASH autoscaled backend tag → requests in flight plus queued at router `id` (a decimal
    /// integer), rewritten whole every report interval and expiring ``loadReportTTL(interval:)``
    /// after it: a router that dies stops counting.
    public func routerLoad(_ id: String) -> String { prefix + "router:" + id + ":load" }
    /// SET of router ids that reported load; the leader drops an id whose report expired.
    public var routerLoads: String { prefix + "routers:load" }
    /// How long a report outlives its router's last write: three intervals, at least a second.
    public static func loadReportTTL(interval: Duration) -> Duration { max(interval * 3, .seconds(1)) }

    // MARK: Traffic reports (the dashboard)

    /// STRING, a ``RouterTrafficReport``: router `id`'s requests per backend since it started,
    /// rewritten when they changed (at most once a second) or every few seconds, expiring after
    /// ``trafficReportTTL``.
    public func routerTraffic(_ id: String) -> String { prefix + "router:" + id + ":traffic" }
    /// ZSET of router ids that report traffic, scored by when their report expires (Unix ms):
    /// readers take those scored after now; reporting routers remove ids dead for an hour.
    public var routerTraffics: String { prefix + "routers:traffic" }
    public static let trafficReportTTL: Duration = .seconds(10)

    // MARK: Cluster-wide

    /// Channel: a ``WakeUp`` — something changed; the leader reconciles now, not at its next tick.
    public var wake: String { prefix + "wake" }

    private func replica(_ tag: String) -> String { prefix + "replica:" + tag }
}
