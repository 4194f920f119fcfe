import SwerveCore
public import SwerveProtocol

/// Request rates and latencies per backend, from the routers' cumulative traffic reports. Pure.
///
/// Each router's rate is the difference between its two latest reports over the time between
/// them (by its own clock, so clocks of different hosts never mix); a backend's rate is the
/// sum over the routers that report, its percentiles those of the summed latency buckets.
///
/// Guarantees: a router is counted only from its second report on (one report has no rate);
/// a router whose report is gone (expired: it stopped or lost Redis) counts no more; counts that
/// go back are taken as zero, never as a negative rate.
public struct TrafficWindow: Sendable {
    private struct Sample: Sendable {
        var report: RouterTrafficReport
        /// What the router answered between its report before this one and this one, and over
        /// how many seconds; nil until there are two.
        var delta: (seconds: Double, backends: [String: RouterTrafficReport.Backend])?
    }
    private var routers: [String: Sample] = [:]

    public init() {}

    /// Takes the reports read now (every reporting router's latest) and returns each
    /// backend's traffic.
    public mutating func take(_ reports: [RouterTrafficReport]) -> [String: DashboardSnapshot.Traffic] {
        var next: [String: Sample] = [:]
        for report in reports {
            guard let previous = routers[report.router] else {
                next[report.router] = Sample(report: report, delta: nil)
                continue
            }
            guard report.at > previous.report.at else {
                next[report.router] = previous // the same report read again
                continue
            }
            let seconds = report.at.seconds(since: previous.report.at)
            var backends: [String: RouterTrafficReport.Backend] = [:]
            for (tag, now) in report.backends {
                let before = previous.report.backends[tag]
                backends[tag] = RouterTrafficReport.Backend(
                    requests: max(0, now.requests - (before?.requests ?? 0)),
                    errors: max(0, now.errors - (before?.errors ?? 0)),
                    buckets: now.buckets.indices.map { max(0, now.buckets[$0] - (before?.buckets[safe: $0] ?? 0)) })
            }
            next[report.router] = Sample(report: report, delta: (seconds, backends))
        }
        routers = next
        return Self.sum(next.values.compactMap(\.delta))
    }

    static func sum(_ deltas: [(seconds: Double, backends: [String: RouterTrafficReport.Backend])]) -> [String: DashboardSnapshot.Traffic] {
        var requests: [String: Double] = [:], errors: [String: Double] = [:], buckets: [String: [Int]] = [:]
        for delta in deltas where delta.seconds > 0 {
            for (tag, backend) in delta.backends {
                requests[tag, default: 0] += Double(backend.requests) / delta.seconds
                errors[tag, default: 0] += Double(backend.errors) / delta.seconds
                let summed = buckets[tag] ?? Array(repeating: 0, count: backend.buckets.count)
                buckets[tag] = zip(summed, backend.buckets).map(+)
            }
        }
        var traffic: [String: DashboardSnapshot.Traffic] = [:]
        for (tag, rate) in requests {
            let counts = buckets[tag] ?? []
            traffic[tag] = DashboardSnapshot.Traffic(requestsPerSecond: (rate * 100).rounded() / 100, errorsPerSecond: ((errors[tag] ?? 0) * 100).rounded() / 100,
                                                     p50Ms: percentile(0.5, counts), p99Ms: percentile(0.99, counts))
        }
        return traffic
    }

    /// The upper bound (ms) of the bucket the `q` quantile falls in; nil with no request, the
    /// last bound for requests above every bound.
    static func percentile(_ q: Double, _ buckets: [Int]) -> Double? {
        let total = buckets.reduce(0, +)
        guard total > 0 else { return nil }
        let rank = q * Double(total)
        var seen = 0
        for (index, count) in buckets.enumerated() {
            seen += count
            if Double(seen) >= rank {
                let bound = RouterTrafficReport.bucketBounds[min(index, RouterTrafficReport.bucketBounds.count - 1)]
                return (bound * 1_000_000).rounded() / 1000
            }
        }
        return RouterTrafficReport.bucketBounds.last.map { ($0 * 1_000_000).rounded() / 1000 }
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
