/// Leadership as a pure state machine: when to try for the lease, when to renew it, and the
/// moment to stop trusting it. Time is passed in (a monotonic clock's instants, never the wall
/// clock); the ``LeaseElector`` performs the actions against Redis.
///
/// What the lease gives, and what it does not: it decides who *should* act. A leader trusts
/// its lease only until `(send time of its last successful renew) + ttl − margin`, and steps
/// down the moment that passes or any fenced write is refused. But a process can be paused, or
/// its clock can run slow, so trust alone is not safety: every write a leader makes is a
/// *fenced* script that first checks that the lease still holds this leader's value, and
/// refuses otherwise. That — not the timing — is what makes a stale leader harmless.
/// (Kubernetes' client-go leader election has no fencing; this one does.)
///
/// States: `follower(retryAt:)` (retry acquisition at that instant, or at once on a
/// leader-left announcement); `acquiring`/`renewing` (a script is in flight); `leader(epoch:
/// trustedUntil: renewAt:)`; `stopped`.
struct LeaseStateMachine: Sendable {
    struct Timing: Sendable, Equatable {
        /// The lease's time to live in Redis.
        var ttl: Duration
        /// A leader renews this often.
        var renewInterval: Duration
        /// A leader trusts its lease until the last renew's send time + ttl − margin.
        var safetyMargin: Duration
        /// A follower tries to acquire this often.
        var retryPeriod: Duration

        /// Defaults: TTL 1 s, renew every 0.2 s (ttl/5), margin 0.2 s (20%), retry every 20 ms.
        ///
        /// Why: a follower's retry is also how soon it notices a dead holder's lease (the acquire
        /// script takes over a lease whose holder has no connection left), so it is short and
        /// does not grow with the TTL; 50 cheap scripts a second per follower. The TTL bounds
        /// only a frozen or cut-off leader's failover (about TTL − renew/2 after the freeze);
        /// a leader steps down after ttl − margin = 0.8 s without a renew, four renews in a row.
        static func defaults(ttl: Duration = .milliseconds(1000)) -> Timing {
            Timing(ttl: ttl, renewInterval: ttl / 5, safetyMargin: ttl / 5, retryPeriod: min(ttl / 6, .milliseconds(20)))
        }

        /// Problems with the timing, or nil. The lease must outlive the trust window, which must
        /// leave room for at least one failed renew before it ends.
        var problem: String? {
            if ttl <= .zero { return "the lease TTL must be positive" }
            if safetyMargin <= .zero || safetyMargin >= ttl { return "the safety margin must be between 0 and the TTL" }
            if renewInterval <= .zero || renewInterval * 2 > ttl - safetyMargin {
                return "renew at most every (TTL − margin) / 2, so one lost renew does not end leadership (TTL \(ttl), margin \(safetyMargin), renew \(renewInterval))"
            }
            if retryPeriod <= .zero || retryPeriod > ttl { return "the retry period must be positive and at most the TTL" }
            return nil
        }
    }

    enum State: Sendable, Equatable {
        case follower(retryAt: ContinuousClock.Instant)
        /// `again`: a leader announced that it left while the script was in flight; a refusal
        /// is then followed by another try at once, not after the retry period.
        case acquiring(sentAt: ContinuousClock.Instant, again: Bool = false)
        case leader(epoch: Int64, trustedUntil: ContinuousClock.Instant, renewAt: ContinuousClock.Instant)
        case renewing(epoch: Int64, trustedUntil: ContinuousClock.Instant, sentAt: ContinuousClock.Instant)
        case stopped
    }

    enum Action: Sendable, Equatable {
        case tryAcquire
        case renew(epoch: Int64)
        /// Leadership began: start leading under this fencing epoch.
        case becameLeader(epoch: Int64)
        /// Leadership ended (trust expired, a renew or fenced write was refused): cancel all
        /// leader work at once.
        case steppedDown(epoch: Int64, reason: String)
        /// Delete the lease if it is still ours, and announce that we left.
        case release(epoch: Int64)
    }

    let timing: Timing
    private(set) var state: State
    /// The highest epoch this controller ever held: passed to the acquire script as a floor,
    /// so that a Redis that lost its counter cannot hand out a smaller one.
    private(set) var highestEpoch: Int64 = 0

    init(timing: Timing, now: ContinuousClock.Instant) {
        precondition(timing.problem == nil, "invalid lease timing: \(timing.problem ?? "")")
        self.timing = timing
        self.state = .follower(retryAt: now)
    }

    var epoch: Int64? {
        switch state {
        case .leader(let epoch, _, _), .renewing(let epoch, _, _): return epoch
        default: return nil
        }
    }

    /// The next instant at which ``timePassed(now:)`` has something to do (nil: none until an
    /// answer or an announcement arrives).
    var nextDeadline: ContinuousClock.Instant? {
        switch state {
        case .follower(let retryAt): return retryAt
        case .leader(_, let trustedUntil, let renewAt): return min(trustedUntil, renewAt)
        case .renewing(_, let trustedUntil, _): return trustedUntil
        case .acquiring, .stopped: return nil
        }
    }

    /// An acquire script is in flight.
    var isAcquiring: Bool {
        if case .acquiring = state { return true }
        return false
    }

    /// A renew of `epoch`'s lease is in flight.
    func isRenewing(_ epoch: Int64) -> Bool {
        if case .renewing(let renewing, _, _) = state { return renewing == epoch }
        return false
    }

    /// The clock moved; returns what is due.
    mutating func timePassed(now: ContinuousClock.Instant) -> [Action] {
        switch state {
        case .follower(let retryAt) where now >= retryAt:
            state = .acquiring(sentAt: now, again: false)
            return [.tryAcquire]
        case .leader(let epoch, let trustedUntil, _) where now >= trustedUntil,
             .renewing(let epoch, let trustedUntil, _) where now >= trustedUntil:
            return stepDown(epoch: epoch, reason: "the lease was not renewed in time", now: now)
        case .leader(let epoch, let trustedUntil, let renewAt) where now >= renewAt:
            state = .renewing(epoch: epoch, trustedUntil: trustedUntil, sentAt: now)
            return [.renew(epoch: epoch)]
        default:
            return []
        }
    }

    /// The acquire script answered: `epoch` if we got the lease, nil if someone holds it.
    mutating func acquireAnswered(epoch: Int64?, now: ContinuousClock.Instant) -> [Action] {
        guard case .acquiring(let sentAt, let again) = state else { return [] }
        guard let epoch else {
            state = .follower(retryAt: again ? now : now + timing.retryPeriod)
            return again ? timePassed(now: now) : []
        }
        state = .leader(epoch: epoch, trustedUntil: sentAt + timing.ttl - timing.safetyMargin, renewAt: sentAt + timing.renewInterval)
        highestEpoch = max(highestEpoch, epoch)
        return [.becameLeader(epoch: epoch)]
    }

    /// The renew script answered: true if the lease was still ours and was extended.
    mutating func renewAnswered(ok: Bool, now: ContinuousClock.Instant) -> [Action] {
        guard case .renewing(let epoch, let trustedUntil, let sentAt) = state else { return [] }
        guard ok else { return stepDown(epoch: epoch, reason: "the lease is held by another controller", now: now) }
        // Trust is measured from when the renew was *sent*: the server may have applied it
        // any time after that.
        let extended = max(trustedUntil, sentAt + timing.ttl - timing.safetyMargin)
        if now >= extended { return stepDown(epoch: epoch, reason: "the renew answered too late", now: now) }
        state = .leader(epoch: epoch, trustedUntil: extended, renewAt: sentAt + timing.renewInterval)
        return []
    }

    /// Redis could not be reached for a script: nothing is known; trust runs out on its own.
    mutating func requestFailed(now: ContinuousClock.Instant) -> [Action] {
        switch state {
        case .acquiring:
            state = .follower(retryAt: now + timing.retryPeriod)
        case .renewing(let epoch, let trustedUntil, _):
            state = .leader(epoch: epoch, trustedUntil: trustedUntil, renewAt: now + timing.retryPeriod)
            return timePassed(now: now)
        default:
            break
        }
        return []
    }

    /// A fenced write was refused: another controller holds the lease. Step down at once.
    mutating func fencedWriteRefused(now: ContinuousClock.Instant) -> [Action] {
        guard let epoch else { return [] }
        return stepDown(epoch: epoch, reason: "a fenced write was refused", now: now)
    }

    /// The leader's work ended by its own choice (it refused to lead, e.g. on a checkpoint it
    /// cannot read): release the lease so another controller — perhaps a newer one that can —
    /// takes over, and hold off for two TTLs before trying again.
    mutating func termEnded(epoch ended: Int64, now: ContinuousClock.Instant) -> [Action] {
        guard let epoch, epoch == ended else { return [] }
        state = .follower(retryAt: now + timing.ttl * 2)
        return [.steppedDown(epoch: epoch, reason: "it stopped leading by itself"), .release(epoch: epoch)]
    }

    /// Another controller announced that it left: try at once.
    mutating func leaderLeft(now: ContinuousClock.Instant) -> [Action] {
        if case .acquiring(let sentAt, _) = state {
            // The try in flight may have been refused just before the lease was released.
            state = .acquiring(sentAt: sentAt, again: true)
            return []
        }
        guard case .follower = state else { return [] }
        state = .follower(retryAt: now)
        return timePassed(now: now)
    }

    /// This process's presence channel is subscribed (at start, or again after its connection
    /// was lost): a follower tries at once, now that a lease it takes can name the channel; a
    /// leader renews at once, so that its lease names it again (a dead leader is then taken
    /// over at once, not after the TTL).
    mutating func presenceConfirmed(now: ContinuousClock.Instant) -> [Action] {
        switch state {
        case .follower:
            state = .follower(retryAt: now)
        case .leader(let epoch, let trustedUntil, _):
            state = .leader(epoch: epoch, trustedUntil: trustedUntil, renewAt: now)
        default:
            return []
        }
        return timePassed(now: now)
    }

    /// Shutting down: a leader releases its lease so a follower takes over at once.
    mutating func shutdownRequested() -> [Action] {
        let actions: [Action]
        if let epoch {
            actions = [.steppedDown(epoch: epoch, reason: "shutting down"), .release(epoch: epoch)]
        } else {
            actions = []
        }
        state = .stopped
        return actions
    }

    private mutating func stepDown(epoch: Int64, reason: String, now: ContinuousClock.Instant) -> [Action] {
        state = .follower(retryAt: now + timing.retryPeriod)
        return [.steppedDown(epoch: epoch, reason: reason)]
    }
}
