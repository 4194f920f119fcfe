import SwerveCore

/// The leader's look-back window over the routers' load reports, as a pure value: each step
/// adds one sample per autoscaled backend (the sum of the live routers' reports, 0 when none
/// reports), and the load the autoscaler sees is the mean of the samples within the backend's
/// `lookBackPeriodS`.
///
/// It is not in the checkpoint: a new leader starts with an empty window, and
/// ``BackendLoad/coveredS`` says how long it has watched, so it does not scale anything down
/// before it has seen a whole look-back period (see ``Autoscaler``).
///
/// Samples are summed into at most ``bucketsPerWindow`` buckets per backend, each a hundredth
/// of its look-back period: an hour's look-back at a step every 100 ms keeps 100 buckets, not
/// 36,000 samples, whatever a config asks for.
struct LoadWindow: Sendable {
    static let bucketsPerWindow = 100

    /// When this window began (the term's first sample).
    private(set) var since: Timestamp?
    private var buckets: [String: [Bucket]] = [:]

    private struct Bucket: Sendable {
        var start: Timestamp
        var sum: Double
        var count: Int
        var latest: Double
    }

    /// Records the totals read at `now` for the autoscaled backends (`lookBack` per tag: how
    /// far back each keeps); backends no longer autoscaled are forgotten.
    mutating func record(_ totals: [String: Double], lookBack: [String: Double], at now: Timestamp) {
        if since == nil { since = now }
        for tag in buckets.keys where lookBack[tag] == nil { buckets[tag] = nil }
        for (tag, seconds) in lookBack {
            let total = totals[tag] ?? 0
            var kept = buckets[tag] ?? []
            if let last = kept.last, now.seconds(since: last.start) < seconds / Double(Self.bucketsPerWindow) {
                kept[kept.count - 1].sum += total
                kept[kept.count - 1].count += 1
                kept[kept.count - 1].latest = total
            } else {
                kept.append(Bucket(start: now, sum: total, count: 1, latest: total))
            }
            let horizon = now.adding(seconds: -seconds)
            if let first = kept.firstIndex(where: { $0.start >= horizon }), first > 0 { kept.removeFirst(first) }
            buckets[tag] = kept
        }
    }

    /// What the autoscaler sees of `tag` at `now`, nil before any sample.
    func load(_ tag: String, lookBack: Double, at now: Timestamp) -> BackendLoad? {
        guard let since, let kept = buckets[tag], let latest = kept.last else { return nil }
        let horizon = now.adding(seconds: -lookBack)
        var sum = 0.0
        var count = 0
        for bucket in kept where bucket.start >= horizon {
            sum += bucket.sum
            count += bucket.count
        }
        let average = count == 0 ? latest.latest : sum / Double(count)
        return BackendLoad(average: average, coveredS: now.seconds(since: since), waiting: latest.latest > 0)
    }

    /// How many buckets `tag` keeps (for tests).
    func bucketCount(_ tag: String) -> Int { buckets[tag]?.count ?? 0 }

    /// Every autoscaled backend's load at `now`, for the step's observations.
    func loads(_ lookBack: [String: Double], at now: Timestamp) -> [String: BackendLoad] {
        var loads: [String: BackendLoad] = [:]
        for (tag, seconds) in lookBack { loads[tag] = load(tag, lookBack: seconds, at: now) }
        return loads
    }
}
