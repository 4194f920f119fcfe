import SwerveCore
import SwerveProtocol

/// What a node agent's next heartbeat must send, as a pure value (time is passed in).
///
/// A node's liveness is one lease: its score in the `nodes` set, the time (Unix ms, on Redis's
/// clock) its lease runs out. Most heartbeats only push that score forward — one `ZADD`, the
/// whole cost of a node at rest. Every ``renewalInterval`` a heartbeat also renews the record
/// and the claim on the id, which live ``ClusterKeys/nodeRecordTTL``. A heartbeat registers in
/// full — record written, the node added to `nodes:changed`, the leader woken — whenever the
/// leader may not know what the agent knows:
/// - the first one, and after the record changed (draining);
/// - after a heartbeat failed or came late (the lease may have run out meanwhile, and the
///   leader counted the node gone), or the agent reconnected (Redis restarted or failed over
///   and may have lost the record);
/// - when a bare `ZADD` found the node missing from the set.
struct NodeHeartbeat: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// Write the record, claim, lease; mark the node changed; wake the leader.
        case register
        /// Renew the record's and the claim's TTL, and the lease.
        case renew
        /// Push the lease forward (`ZADD`).
        case beat
    }

    /// The lease: how long the node counts as alive after a heartbeat.
    let ttl: Duration
    /// How often the record and the claim are renewed.
    let renewalInterval: Duration
    private(set) var mustRegister = true
    private(set) var lastAttempt: ContinuousClock.Instant?
    private(set) var lastSuccess: ContinuousClock.Instant?
    private(set) var lastRenewal: ContinuousClock.Instant?
    /// Redis's clock minus this host's wall clock (ms), measured at every registration: leases
    /// are written on Redis's clock, so a host whose clock is off still gets its full lease.
    private(set) var clockOffsetMs: Int64 = 0

    init(ttl: Duration, renewalInterval: Duration = ClusterKeys.nodeRecordTTL / 3) {
        self.ttl = ttl
        self.renewalInterval = renewalInterval
    }

    /// A heartbeat is due every third of the lease, and at once when the agent must register.
    func isDue(now: ContinuousClock.Instant) -> Bool {
        guard let lastAttempt else { return true }
        if mustRegister, now - lastAttempt >= .milliseconds(200) { return true }
        return now - lastAttempt >= ttl / 3
    }

    /// What the heartbeat sent at `now` must be.
    func kind(now: ContinuousClock.Instant) -> Kind {
        guard !mustRegister, let lastSuccess, now - lastSuccess < ttl / 2 else { return .register }
        guard let lastRenewal, now - lastRenewal < renewalInterval else { return .renew }
        return .beat
    }

    /// When the lease sent at `wallClock` (this host's Unix ms) runs out, on Redis's clock.
    func leaseDeadline(wallClock: Int64) -> Int64 {
        wallClock + clockOffsetMs + ttl.wholeMilliseconds
    }

    mutating func attempted(at now: ContinuousClock.Instant) {
        lastAttempt = now
    }

    /// A heartbeat of `kind` went through at `now`. `redisTimeMs` (a registration's) is
    /// Redis's clock as the script read it, `wallClock` this host's at about the same moment.
    /// `leaseWasThere` and `recordWasThere` are what Redis answered about the keys it touched.
    ///
    /// Returns whether Redis lost this node's keys (then the next heartbeat registers again):
    /// a beat or a renewal that found the lease missing, a renewal that found the record
    /// missing, or a registration that found no lease although this agent registered before.
    @discardableResult
    mutating func succeeded(_ kind: Kind, at now: ContinuousClock.Instant, redisTimeMs: Int64? = nil, wallClock: Int64 = 0,
                            leaseWasThere: Bool = true, recordWasThere: Bool = true) -> Bool {
        let registeredBefore = lastSuccess != nil
        lastSuccess = now
        if kind != .beat { lastRenewal = now }
        if kind == .register { mustRegister = false }
        if let redisTimeMs { clockOffsetMs = redisTimeMs - wallClock }
        let lost = switch kind {
        case .beat: !leaseWasThere
        case .renew: !leaseWasThere || !recordWasThere
        case .register: registeredBefore && !leaseWasThere
        }
        if lost { mustRegister = true }
        return lost
    }

    /// The leader may not know what the agent knows: the next heartbeat registers in full.
    /// Called after a failed heartbeat, a changed record, a reconnect, or a lease found missing.
    mutating func registerNext() {
        mustRegister = true
    }
}
