import SwerveCore
@testable import SwerveDashboard
import SwerveProtocol
import Testing

/// Rates and percentiles from the routers' cumulative reports: pure.
@Suite struct TrafficWindowRules {
    /// A backend's counts: `requests`, of which `errors` 5xx, all in the bucket at `bucket`.
    func backend(_ requests: Int, errors: Int = 0, bucket: Int = 2) -> RouterTrafficReport.Backend {
        var buckets = Array(repeating: 0, count: RouterTrafficReport.bucketBounds.count + 1)
        buckets[bucket] = requests
        return RouterTrafficReport.Backend(requests: requests, errors: errors, buckets: buckets)
    }

    func report(_ router: String, at: Int64, _ backends: [String: RouterTrafficReport.Backend]) -> RouterTrafficReport {
        RouterTrafficReport(router: router, at: Timestamp(milliseconds: at), backends: backends)
    }

    @Test func aRateNeedsTwoReportsOfARouterAndRoutersAddUp() {
        var window = TrafficWindow()
        #expect(window.take([report("r1", at: 1_000, ["api": backend(100)])]).isEmpty, "one report: no rate yet")
        let traffic = window.take([report("r1", at: 3_000, ["api": backend(300, errors: 10)]), report("r2", at: 50_000, ["api": backend(7)])])
        #expect(traffic["api"]?.requestsPerSecond == 100 && traffic["api"]?.errorsPerSecond == 5, "r1: 200 in 2 s; r2 counts from its next report")
        #expect(traffic["api"]?.p50Ms == 1 && traffic["api"]?.p99Ms == 1, "every request in the 1 ms bucket")
        var slow = backend(57)
        slow.buckets[2] = 7
        slow.buckets[RouterTrafficReport.bucketBounds.count] = 50
        let both = window.take([report("r1", at: 4_000, ["api": backend(400)]), report("r2", at: 51_000, ["api": slow])])
        #expect(both["api"]?.requestsPerSecond == 150, "100/s through r1 and 50/s through r2, each over its own clock")
        #expect(both["api"]?.p50Ms == 1 && both["api"]?.p99Ms == 5000, "a third above the last bound: p99 shows that bound")
    }

    @Test func theSameReportReadAgainKeepsTheRateAndAGoneRouterStopsCounting() {
        var window = TrafficWindow()
        _ = window.take([report("r1", at: 1_000, ["api": backend(0)])])
        let first = window.take([report("r1", at: 2_000, ["api": backend(50)])])
        #expect(window.take([report("r1", at: 2_000, ["api": backend(50)])]) == first, "no new report: the last rate stands")
        #expect(window.take([]).isEmpty, "its report expired: it counts no more")
        #expect(window.take([report("r1", at: 9_000, ["api": backend(60)])]).isEmpty, "and starts over from its next report")
    }

    @Test func countsThatGoBackAreZeroNotNegative() {
        var window = TrafficWindow()
        _ = window.take([report("r1", at: 1_000, ["api": backend(500)])])
        let traffic = window.take([report("r1", at: 2_000, ["api": backend(20)])])
        #expect(traffic["api"]?.requestsPerSecond == 0 && traffic["api"]?.p50Ms == nil)
    }

    @Test func aReportIsCheckedBeforeItIsUsed() {
        var wrongBuckets = backend(1)
        wrongBuckets.buckets.removeLast()
        #expect(report("r1", at: 1, ["api": wrongBuckets]).problems?.contains("latency buckets") == true)
        #expect(report("r1", at: 1, ["api": RouterTrafficReport.Backend(requests: -1, errors: 0, buckets: backend(0).buckets)]).problems?.contains("below 0") == true)
        #expect(report("r1", at: 1, ["api": RouterTrafficReport.Backend(requests: Int.max, errors: 0, buckets: backend(0).buckets)]).problems != nil,
                "a count that could overflow a sum over routers")
        #expect(report("r1", at: 1, ["api": backend(3)]).problems == nil)
    }
}
