@testable import SwerveController
import SwerveCore
import SwerveRedis
import Testing

/// The leader's window over the routers' reports: the mean over the look-back period, how long
/// it has watched (a new leader's window is empty), and what a dead router leaves.
@Suite struct LoadWindowRules {
    let t0 = Timestamp(milliseconds: 1_700_000_000_000)

    @Test func theLoadIsTheMeanOfTheSamplesInTheLookBackPeriod() throws {
        var window = LoadWindow()
        for (second, total) in [(0.0, 10.0), (1, 20), (2, 30), (3, 40)] {
            window.record(["api": total], lookBack: ["api": 2], at: t0.adding(seconds: second))
        }
        let load = try #require(window.load("api", lookBack: 2, at: t0.adding(seconds: 3)))
        #expect(load.average == 30, "the samples at 1, 2 and 3 s")
        #expect(load.coveredS == 3 && load.waiting)
    }

    @Test func aBackendNoRouterReportsHasNoLoadAndItsWindowStillFills() throws {
        var window = LoadWindow()
        window.record([:], lookBack: ["api": 5], at: t0)
        window.record([:], lookBack: ["api": 5], at: t0.adding(seconds: 6))
        let load = try #require(window.load("api", lookBack: 5, at: t0.adding(seconds: 6)))
        #expect(load == BackendLoad(average: 0, coveredS: 6, waiting: false), "a dead router's report expired: it counts nothing")
    }

    @Test func aNewWindowHasSeenNothingAndForgetsBackendsNoLongerAutoscaled() {
        var window = LoadWindow()
        #expect(window.load("api", lookBack: 5, at: t0) == nil)
        window.record(["api": 3], lookBack: ["api": 5], at: t0)
        #expect(window.load("api", lookBack: 5, at: t0)?.coveredS == 0, "just started watching: no downscale yet")
        window.record(["api": 3], lookBack: [:], at: t0.adding(seconds: 1))
        #expect(window.load("api", lookBack: 5, at: t0.adding(seconds: 1)) == nil)
    }

    @Test func anHoursLookBackKeepsAHundredBucketsNotEverySample() throws {
        var window = LoadWindow()
        var now = t0
        for step in 0..<36_000 {
            window.record(["api": step % 2 == 0 ? 4 : 0], lookBack: ["api": 3_600], at: now)
            now = now.adding(milliseconds: 100)
        }
        let load = try #require(window.load("api", lookBack: 3_600, at: now))
        #expect(abs(load.average - 2) < 0.01, "the mean of 4, 0, 4, 0…: \(load.average)")
        #expect(window.bucketCount("api") <= LoadWindow.bucketsPerWindow + 1)
    }

    @Test func totalsThatDoNotParseCountNothing() {
        let reply = RedisReply.array(["api", "3", "web", "x", "bad", "-2", "odd"].map { .bulkString(Array($0.utf8)) })
        #expect(ControllerTerm.loadTotals(reply) == ["api": 3])
    }
}
