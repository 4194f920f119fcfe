import SwerveCore

/// The leader's look-back window over the routers' load reports, as a pure value: each step
/// adds one sample per autoscaled backend (the sum of the live routers' reports, 0 when none
/// reports), and the load the autoscaler sees is the mean of the samples within the backend's
/// `lookBackPeriodS`.
///
/// It is not in the checkpoint: a new leader starts with an empty window, and
/// ``BackendLoad/coveredS`` says how long it has watched, so it does not scale anything down
/// before it has seen a whole look-back period (see ``Autoscaler``).
struct LoadWindow: Sendable {
    /// When this window began (the term's first sample).
    private(set) var since: Timestamp?
    private var samples: [String: [(at: Timestamp, total: Double)]] = [:]

    /// Records the totals read at `now` for the autoscaled backends (`lookBack` per tag: how
    /// far back each keeps); backends no longer autoscaled are forgotten.
    mutating func record(_ totals: [String: Double], lookBack: [String: Double], at now: Timestamp) {
        if since == nil { since = now }
        for tag in samples.keys where lookBack[tag] == nil { samples[tag] = nil }
        for (tag, seconds) in lookBack {
            var kept = samples[tag] ?? []
            kept.append((now, totals[tag] ?? 0))
            let horizon = now.adding(seconds: -seconds)
            if let first = kept.firstIndex(where: { $0.at >= horizon }), first > 0 { kept.removeFirst(first) }
            samples[tag] = kept
        }
    }

    /// What the autoscaler sees of `tag` at `now`, nil before any sample.
    func load(_ tag: String, lookBack: Double, at now: Timestamp) -> BackendLoad? {
        guard let since, let kept = samples[tag], let latest = kept.last else { return nil }
        let horizon = now.adding(seconds: -lookBack)
        let inWindow = kept.filter { $0.at >= horizon }
        let average = inWindow.isEmpty ? latest.total : inWindow.reduce(0) { $0 + $1.total } / Double(inWindow.count)
        return BackendLoad(average: average, coveredS: now.seconds(since: since), waiting: latest.total > 0)
    }

    /// Every autoscaled backend's load at `now`, for the step's observations.
    func loads(_ lookBack: [String: Double], at now: Timestamp) -> [String: BackendLoad] {
        var loads: [String: BackendLoad] = [:]
        for (tag, seconds) in lookBack { loads[tag] = load(tag, lookBack: seconds, at: now) }
        return loads
    }
}
