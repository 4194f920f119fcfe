public import SwerveCore

/// A JSON document stored in one of the cluster's keys or sent on a channel. Every one carries
/// `schemaVersion`; readers refuse versions they do not know.
public protocol ProtocolDocument: Codable, Sendable, Hashable {
    /// The version this code writes and reads.
    static var currentSchemaVersion: Int { get }
    var schemaVersion: Int { get }
}

/// `swerve:{C}:node:{ID}` — written by the node agent with a TTL, renewed every third of it.
public struct NodeRecord: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    public var id: String
    /// The host address workers on this node advertise (routers connect to it).
    public var address: String
    public var resources: Resources
    /// The node agent's pid, for people.
    public var pid: Int32
    /// When the agent started.
    public var startedAt: Timestamp
    /// True while the agent shuts down (SIGTERM/SIGINT): the leader moves its replicas away
    /// and drains them; absent in records of older agents (false).
    public var draining: Bool?

    public init(id: String, address: String, resources: Resources, pid: Int32, startedAt: Timestamp, draining: Bool = false) {
        self.id = id
        self.address = address
        self.resources = resources
        self.pid = pid
        self.startedAt = startedAt
        self.draining = draining ? true : nil
    }
}

/// A field of `swerve:{C}:cordons` (the field is the node id) — written by operators
/// (`swerve node cordon|drain`), removed by `swerve node uncordon`. Outlives the node agent, as
/// `kubectl cordon` outlives a kubelet restart.
public struct NodeCordonDocument: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    public var mode: Mode
    /// When it was set.
    public var at: Timestamp

    public enum Mode: String, Codable, Sendable, Hashable {
        /// No new replicas; the node keeps the ones it has.
        case cordon
        /// No new replicas, and the ones it has are replaced elsewhere and drained.
        case drain
    }

    public init(mode: Mode, at: Timestamp) {
        self.mode = mode
        self.at = at
    }
}

/// `swerve:{C}:node:{ID}:owner` — `SET NX` by the node agent that runs node ID, with the node
/// TTL, renewed with its heartbeat: a second agent started with the same id finds it held and
/// refuses to start, naming the holder.
public struct NodeOwnerDocument: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    /// Unique per agent process.
    public var token: String
    public var host: String
    public var pid: Int32
    public var startedAt: Timestamp

    public init(token: String, host: String, pid: Int32, startedAt: Timestamp) {
        self.token = token
        self.host = host
        self.pid = pid
        self.startedAt = startedAt
    }
}

/// A field of `swerve:{C}:assignments:{ID}` — written by the leader. The node agent runs a
/// worker for every field and kills any worker whose field is gone.
public struct AssignmentDocument: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    public var tag: String
    public var backend: String
    public var node: String
    /// The replica config version the worker must report in its ready record.
    public var version: String
    public var replicaConfig: ReplicaConfig
    public var userConfig: JSONValue?
    public var maxConcurrentQueries: Int
    public var gracefulShutdownWaitLoopS: Double

    public init(_ assignment: ReplicaAssignment) {
        tag = assignment.replica.tag
        backend = assignment.replica.backend
        node = assignment.replica.node
        version = assignment.version
        replicaConfig = assignment.replicaConfig
        userConfig = assignment.userConfig
        maxConcurrentQueries = assignment.maxConcurrentQueries
        gracefulShutdownWaitLoopS = assignment.gracefulShutdownWaitLoopS
    }
}

/// `swerve:{C}:replica:{TAG}:ready` — written by the worker with the heartbeat TTL.
public struct ReadyRecord: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    public var tag: String
    public var backend: String
    public var node: String
    public var version: String
    /// Where routers send requests.
    public var address: HostPort
    public var pid: Int32
    /// When the worker process started, and when it became ready.
    public var startedAt: Timestamp
    public var readyAt: Timestamp

    public init(tag: String, backend: String, node: String, version: String, address: HostPort, pid: Int32, startedAt: Timestamp, readyAt: Timestamp) {
        self.tag = tag
        self.backend = backend
        self.node = node
        self.version = version
        self.address = address
        self.pid = pid
        self.startedAt = startedAt
        self.readyAt = readyAt
    }
}

/// `swerve:{C}:replica:{TAG}:drain` — written by the leader.
public struct DrainRequest: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    public var tag: String
    /// After this the node agent kills the worker (SIGKILL to its process group).
    public var deadline: Timestamp
    /// Kill at once, without draining.
    public var force: Bool

    public init(tag: String, deadline: Timestamp, force: Bool) {
        self.tag = tag
        self.deadline = deadline
        self.force = force
    }
}

/// `swerve:{C}:replica:{TAG}:drained` — written by the worker once no request is in flight and
/// its program has exited; kept for an hour.
public struct DrainedRecord: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    public var tag: String
    public var drainedAt: Timestamp

    public init(tag: String, drainedAt: Timestamp) {
        self.tag = tag
        self.drainedAt = drainedAt
    }
}

/// `swerve:{C}:replica:{TAG}:exit` — written by the node agent when the worker process exits,
/// whatever the reason; kept for an hour.
public struct ExitRecord: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    public var tag: String
    public var node: String
    public var pid: Int32
    /// The exit code, when it exited.
    public var code: Int32?
    /// The signal's number, when a signal ended it.
    public var signal: Int32?
    public var exitedAt: Timestamp
    /// Why the node agent did not start the worker, when it refused to (absent otherwise, and
    /// from agents older than it).
    public var message: String?

    public init(tag: String, node: String, pid: Int32, code: Int32?, signal: Int32?, exitedAt: Timestamp, message: String? = nil) {
        self.tag = tag
        self.node = node
        self.pid = pid
        self.code = code
        self.signal = signal
        self.exitedAt = exitedAt
        self.message = message
    }

    /// "exit code 3", "signal 9 (SIGKILL)", "exit code 126: refused by node n1: …".
    public var reason: String {
        let status = if let signal { "signal \(signal)\(Self.signalNames[signal].map { " (\($0))" } ?? "")" } else { "exit code \(code ?? -1)" }
        guard let message, !message.isEmpty else { return status }
        return "\(status): \(message.prefix(1024))"
    }

    static let signalNames: [Int32: String] = [1: "SIGHUP", 2: "SIGINT", 6: "SIGABRT", 9: "SIGKILL", 11: "SIGSEGV", 15: "SIGTERM"]
}

/// `swerve:{C}:replica:{TAG}:config` — written by the leader; the worker hands it to its code.
public struct UserConfigDocument: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    public var tag: String
    public var userConfig: JSONValue?

    public init(tag: String, userConfig: JSONValue?) {
        self.tag = tag
        self.userConfig = userConfig
    }
}

/// On `swerve:{C}:replica:{TAG}:control` — published by the leader after it wrote the key the
/// message names. A hint: workers also re-read those keys periodically.
public struct ControlMessage: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    public var event: Event

    public enum Event: String, Codable, Sendable, Hashable {
        /// Read the drain key.
        case drain
        /// Read the config key.
        case config
        /// From the replica's node agent: Redis may have lost keys (the node's lease or its
        /// assignments' version went missing or back). Re-read the control keys, and write the
        /// ready record again if it is missing.
        case recheck
    }

    public init(event: Event) { self.event = event }
}

/// On `swerve:{C}:wake` — published by workers and node agents so the leader reconciles now.
public struct WakeUp: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    public var event: Event
    /// The replica or node it concerns.
    public var subject: String

    public enum Event: String, Codable, Sendable, Hashable {
        case ready, drained, exited, nodeJoined, nodeLeft
        /// A replica's health check failed: it retracted its ready record.
        case unhealthy
        /// A node was cordoned, uncordoned or started draining.
        case nodeChanged
        /// A client appended a request.
        case request
        /// A router holds a request for an autoscaled backend that runs no replica (the
        /// subject is the backend): its load report was just written.
        case demand
    }

    public init(event: Event, subject: String) {
        self.event = event
        self.subject = subject
    }
}

/// `swerve:{C}:leader` — written by the lease's acquire script, with the lease's TTL.
public struct LeaderRecord: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    public var id: String
    public var epoch: Int64
    public var host: String
    public var pid: Int32
    /// Where its metrics are served, if anywhere.
    public var address: String?
    /// When it started leading.
    public var since: Timestamp

    public init(id: String, epoch: Int64, host: String, pid: Int32, address: String?, since: Timestamp) {
        self.id = id
        self.epoch = epoch
        self.host = host
        self.pid = pid
        self.address = address
        self.since = since
    }
}

/// On `swerve:{C}:leader:events` — published when a controller starts or stops leading, so
/// followers try at once instead of waiting out the lease.
public struct LeaderEvent: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    public var event: Event
    public var id: String
    public var epoch: Int64

    public enum Event: String, Codable, Sendable, Hashable {
        case elected, left
    }

    public init(event: Event, id: String, epoch: Int64) {
        self.event = event
        self.id = id
        self.epoch = epoch
    }
}

/// `swerve:{C}:snapshot:routing` and `…:snapshot:configs` — a view the leader published, with
/// its epoch: routers never replace their view with one whose `(epoch, version)` is lower.
public struct Snapshot<View: Codable & Sendable & Hashable>: ProtocolDocument {
    public static var currentSchemaVersion: Int { 1 }
    public var schemaVersion = Self.currentSchemaVersion
    public var epoch: Int64
    public var view: View

    public init(epoch: Int64, view: View) {
        self.epoch = epoch
        self.view = view
    }
}

/// A message on `swerve:{C}:snapshots`: a snapshot changed. A configs notice, or a routing one
/// without `delta`, is a hint to re-read the snapshot. A routing notice with `delta` carries
/// the change itself (and is also appended to `…:snapshot:routing:deltas`): a router holding
/// the view it follows applies it; any other re-reads. The keys, not the messages, are the truth.
public struct SnapshotNotice: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    public var kind: Kind
    public var epoch: Int64
    public var version: Int
    /// The change from the previous routing view (`delta.version == version`).
    public var delta: RoutingDelta?

    public enum Kind: String, Codable, Sendable, Hashable {
        case routing, configs
    }

    public init(kind: Kind, epoch: Int64, version: Int) {
        self.kind = kind
        self.epoch = epoch
        self.version = version
    }

    /// A routing delta's notice.
    public init(epoch: Int64, delta: RoutingDelta) {
        self.init(kind: .routing, epoch: epoch, version: delta.version)
        self.delta = delta
    }
}

extension Snapshot where View == RoutingView {
    /// This full snapshot brought up to date by the deltas stored after it (the list
    /// `…:snapshot:routing:deltas`, oldest first), each applied when it follows the view built
    /// so far under the same epoch. Stops at the first that does not follow (`complete` false:
    /// a read raced a leader's write, or the list is damaged); deltas at or before the view
    /// are skipped. Replicas come sorted by tag.
    public func following(_ deltas: [SnapshotNotice]) -> (snapshot: Self, complete: Bool) {
        var current = Snapshot(epoch: epoch, view: view.sortedByTag)
        for notice in deltas {
            guard let delta = notice.delta, notice.kind == .routing, notice.epoch == epoch else { return (current, false) }
            if delta.version <= current.view.version { continue }
            guard let next = delta.applied(to: current.view) else { return (current, false) }
            current.view = next
        }
        return (current, true)
    }
}
