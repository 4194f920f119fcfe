import Foundation
import Logging
import SwerveCore
import SwerveErrors
import SwerveProtocol
import SwerveRedis

/// Reports what this router answered, per backend, for the dashboard: its cumulative counts
/// (``RouterTrafficReport``) in ``ClusterKeys/routerTraffic(_:)``, rewritten when they changed
/// (checked every second) or every ``refresh`` while unchanged, so a reader can tell an idle
/// router (a rate of 0) from a gone one (its report expired). Nothing is written before the
/// first request. Failures only log, once per outage: serving never depends on reporting.
struct TrafficReporter: Sendable {
    static let interval: Duration = .seconds(1)
    static let refresh: Duration = .seconds(4)

    let keys: ClusterKeys
    let client: RedisClient
    let metrics: RouterMetrics
    /// This router's id (random per process, as in its load reports).
    let routerID: String
    let logger: Logger

    func run() async {
        var last: [String: RouterTrafficReport.Backend] = [:]
        var written = ContinuousClock.now
        var failing = false
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.interval)
            let traffic = metrics.traffic()
            guard !traffic.isEmpty, traffic != last || ContinuousClock.now - written >= Self.refresh else { continue }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let report = RouterTrafficReport(router: routerID, at: Timestamp(milliseconds: now), backends: traffic)
            do {
                let replies = try await client.pipeline(Self.commands(report, keys: keys, now: now))
                if let refusal = replies.first(where: { $0.errorMessage != nil })?.errorMessage {
                    throw RedisError(.server, "Redis refused the traffic report: \(refusal)")
                }
                last = traffic
                written = .now
                if failing { logger.info("traffic reports written again") }
                failing = false
            } catch {
                if !failing { logger.warning("cannot write the traffic report; the dashboard shows no rate for this router until it can", metadata: ["error": "\(error)"]) }
                failing = true
            }
        }
    }

    /// One transaction: the report with its expiry, the router's place in the set (scored by
    /// that expiry), and the ids of routers gone for an hour dropped from it.
    static func commands(_ report: RouterTrafficReport, keys: ClusterKeys, now: Int64) -> [RedisCommand] {
        let ttl = ClusterKeys.trafficReportTTL.wholeMilliseconds
        return [
            RedisCommand("MULTI"),
            RedisCommand("SET", keys.routerTraffic(report.router), DocumentCodec.encode(report), "PX", ttl),
            RedisCommand("ZADD", keys.routerTraffics, now + ttl, report.router),
            RedisCommand("ZREMRANGEBYSCORE", keys.routerTraffics, "-inf", now - 3_600_000),
            RedisCommand("EXEC"),
        ]
    }
}
