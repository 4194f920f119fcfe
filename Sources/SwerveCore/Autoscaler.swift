/// What the leader knows of one backend's load at a step, from the routers' reports.
public struct BackendLoad: Sendable, Hashable {
    /// Requests in flight plus queued, summed over the routers, averaged over the window.
    public var average: Double
    /// How many seconds of reports the average covers: less than the look-back period while a
    /// new leader's window fills (it has not seen the load long enough to scale down).
    public var coveredS: Double
    /// A request is waiting for this backend right now (a router said so at once).
    public var waiting: Bool

    public init(average: Double, coveredS: Double, waiting: Bool = false) {
        self.average = average
        self.coveredS = coveredS
        self.waiting = waiting
    }
}

/// What the leader remembers of an autoscaled backend, in the checkpoint: the count it decided
/// and the change the load has called for since when. A new leader resumes from it: it keeps
/// the count, and the delay of a pending change goes on counting.
public struct AutoscalingState: Sendable, Hashable, Codable {
    /// The decided replica count: the backend's target.
    public var desired: Int
    /// The count the load has called for (in the same direction) since ``wantedSince``.
    public var wanted: Int?
    public var wantedSince: Timestamp?
    /// The last decision, in words ("load 37.5 over 5 s, target 2 → 19 replicas").
    public var reason: String?

    public init(desired: Int) { self.desired = desired }
}

/// The autoscaler's rules, as a pure function of the config, the remembered state, the load
/// and the time.
///
/// - The load's count is `ceil(average / targetOngoingRequests)`; a decision moves the given
///   factor of the way from the current count to it (at least one replica when it moves).
/// - A change up is made once the load has called for more for `upscaleDelayS`, a change down
///   once it has called for fewer for `downscaleDelayS` *and* the window covers the whole
///   look-back period (a leader that just took over has not seen enough to scale down).
/// - The count stays within `minReplicas…maxReplicas`; a change of bounds applies at once.
/// - From zero, a waiting request scales to at least one replica at once: there is nothing
///   running to protect from a flap, and the request is waiting.
public enum Autoscaler {
    /// The state after a step at `now`, and whether ``AutoscalingState/desired`` changed.
    public static func decide(_ config: AutoscalingConfig, _ state: AutoscalingState, load: BackendLoad?, now: Timestamp) -> AutoscalingState {
        var next = state
        let current = state.desired
        let bounded = min(max(current, config.minReplicas), config.maxReplicas)
        if bounded != current {
            next.desired = bounded
            next.wanted = nil
            next.wantedSince = nil
            next.reason = "bounds \(config.minReplicas)…\(config.maxReplicas) → \(bounded) replica\(bounded == 1 ? "" : "s")"
            return next
        }
        guard let load else { return next }
        if current == 0, load.waiting, config.maxReplicas > 0 {
            let count = min(max(1, loadCount(load.average, config)), config.maxReplicas)
            next.desired = count
            next.wanted = nil
            next.wantedSince = nil
            next.reason = "a request is waiting and no replica runs → \(count) replica\(count == 1 ? "" : "s")"
            return next
        }
        let wanted = wantedCount(config, current: current, average: load.average)
        guard wanted != current else {
            next.wanted = nil
            next.wantedSince = nil
            return next
        }
        let up = wanted > current
        let sameDirection = state.wanted.map { ($0 > current) == up } ?? false
        let since = sameDirection ? (state.wantedSince ?? now) : now
        next.wanted = wanted
        next.wantedSince = since
        let delay = up ? config.upscaleDelayS : config.downscaleDelayS
        let waited = now.seconds(since: since) >= delay
        let seenEnough = up || load.coveredS >= config.lookBackPeriodS
        guard waited, seenEnough else { return next }
        next.desired = wanted
        next.wanted = nil
        next.wantedSince = nil
        next.reason = "load \(formatNumber(load.average)) over \(formatNumber(min(load.coveredS, config.lookBackPeriodS))) s, target \(formatNumber(config.targetOngoingRequests)) → \(wanted) replica\(wanted == 1 ? "" : "s")"
        return next
    }

    /// The count the load calls for, damped by the factor of its direction, at least one
    /// replica away from `current` when it differs, within the bounds.
    static func wantedCount(_ config: AutoscalingConfig, current: Int, average: Double) -> Int {
        let full = loadCount(average, config)
        var wanted = current
        if full > current {
            let damped = Double(current) + config.upscalingFactor * Double(full - current)
            wanted = max(current + 1, Int(min(damped.rounded(.up), Double(Int32.max))))
        } else if full < current {
            let damped = Double(current) - config.downscalingFactor * Double(current - full)
            wanted = min(current - 1, Int(max(damped.rounded(.down), 0)))
        }
        return min(max(wanted, config.minReplicas), config.maxReplicas)
    }

    /// `ceil(average / target)`, guarded against values no validation lets through.
    static func loadCount(_ average: Double, _ config: AutoscalingConfig) -> Int {
        guard average.isFinite, average > 0, config.targetOngoingRequests > 0 else { return 0 }
        // A hair under a whole count is that count (2 × 0.1 / 0.1 must not become 3).
        let exact = average / config.targetOngoingRequests
        return Int(min((exact - 1e-9).rounded(.up), Double(Int32.max)))
    }
}
