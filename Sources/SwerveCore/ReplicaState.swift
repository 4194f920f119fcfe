/// Where a replica is in its life. Transitions are the mutating functions of
/// ``ReplicaRecord``; each is named after the event that causes it.
///
/// ```
/// SHOULD_START ──placed──▶ STARTING ──ready──▶ RUNNING
///      │                      │                   │
///      └──stop: never ran─────┼──stop─────────────┴──▶ SHOULD_STOP ──drain requested──▶ STOPPING
///                             └──died / start timed out──┐                                  │
///                                          RUNNING died ─┴─────────────▶ STOPPED ◀──drained / exited / killed
/// ```
///
/// - `shouldStart`: wanted, not yet placed on a node (pending placement).
/// - `starting`: placed; the node agent is starting it; not yet ready.
/// - `running`: ready; in the routing view.
/// - `shouldStop`: chosen to stop; already out of the routing view; drain not yet requested.
/// - `stopping`: asked to drain; force-killed at its deadline.
/// - `stopped`: gone; its keys are cleaned up and the record dropped.
public enum ReplicaState: String, Sendable, Hashable, Codable, CaseIterable {
    case shouldStart = "SHOULD_START"
    case starting = "STARTING"
    case running = "RUNNING"
    case shouldStop = "SHOULD_STOP"
    case stopping = "STOPPING"
    case stopped = "STOPPED"

    /// Counts toward the target and the surge: not on its way out.
    public var isAlive: Bool { self == .shouldStart || self == .starting || self == .running }

    /// Holds resources on a node (its process may exist).
    public var occupiesNode: Bool { self != .shouldStart && self != .stopped }
}

/// The address a ready replica serves on.
public struct ReplicaEndpoint: Sendable, Hashable, Codable {
    public var address: HostPort
    public var pid: Int32?

    public init(address: HostPort, pid: Int32? = nil) {
        self.address = address
        self.pid = pid
    }
}

/// One replica incarnation, as the leader records it in the checkpoint.
public struct ReplicaRecord: Sendable, Hashable, Codable {
    /// `backend#random`: names this incarnation only, never reused.
    public var tag: String
    public var backend: String
    /// The replica config version it runs.
    public var version: String
    public internal(set) var state: ReplicaState
    public internal(set) var node: String?
    public internal(set) var endpoint: ReplicaEndpoint?
    /// When it was placed (for the start timeout).
    public internal(set) var startedAt: Timestamp?
    /// When a draining replica is force-killed.
    public internal(set) var drainDeadline: Timestamp?
    /// Why it is pending placement, for status lines.
    public internal(set) var pendingReason: String?
    /// The digest of the user config it was last given.
    public internal(set) var userConfigVersion: String?
    /// Why it stopped or is stopping, for events and status.
    public internal(set) var stopReason: String?

    public init(tag: String, backend: String, version: String) {
        self.tag = tag
        self.backend = backend
        self.version = version
        self.state = .shouldStart
    }

    /// Restores a record in any state (checkpoint decoding and tests).
    public init(tag: String, backend: String, version: String, state: ReplicaState, node: String? = nil,
                endpoint: ReplicaEndpoint? = nil, startedAt: Timestamp? = nil, drainDeadline: Timestamp? = nil) {
        self.init(tag: tag, backend: backend, version: version)
        self.state = state
        self.node = node
        self.endpoint = endpoint
        self.startedAt = startedAt
        self.drainDeadline = drainDeadline
    }

    // MARK: Transitions

    /// SHOULD_START → STARTING on `node`.
    mutating func placed(on node: String, at now: Timestamp, userConfigVersion: String?) {
        precondition(state == .shouldStart, "placed from \(state)")
        state = .starting
        self.node = node
        startedAt = now
        pendingReason = nil
        self.userConfigVersion = userConfigVersion
    }

    /// STARTING → RUNNING.
    mutating func reportedReady(_ endpoint: ReplicaEndpoint) {
        precondition(state == .starting, "ready from \(state)")
        state = .running
        self.endpoint = endpoint
    }

    /// The leader chose to stop it. Never placed: straight to STOPPED. Otherwise SHOULD_STOP.
    mutating func stopChosen(reason: String) {
        stopReason = reason
        switch state {
        case .shouldStart: state = .stopped
        case .starting, .running: state = .shouldStop
        case .shouldStop, .stopping, .stopped: break
        }
    }

    /// SHOULD_STOP → STOPPING with a deadline.
    mutating func drainRequested(deadline: Timestamp) {
        precondition(state == .shouldStop, "drain requested from \(state)")
        state = .stopping
        drainDeadline = deadline
    }

    /// Any placed state → STOPPED: drained, exited, killed, or found dead.
    mutating func stopped(reason: String) {
        if stopReason == nil || state.isAlive { stopReason = reason }
        state = .stopped
    }
}
