import Logging
import SwerveCore
import SwerveErrors
import SwerveProtocol
import SwerveRedis

/// Reports this router's load on autoscaled backends to Redis, for the leader's autoscaler:
/// every report interval (the shortest of the backends' `metricsIntervalS`), and at once when
/// a request waits for a backend that runs no replica (then it also wakes the leader).
///
/// One transaction per report, O(autoscaled backends): the router's hash
/// (``ClusterKeys/routerLoad(_:)``) rewritten whole with an expiry of three intervals, and its
/// id added to ``ClusterKeys/routerLoads``. A router that dies stops counting when its hash
/// expires. With no autoscaled backend, nothing is written. Failures only log (once per
/// outage): serving never depends on reporting.
struct LoadReporter: Sendable {
    let keys: ClusterKeys
    let client: RedisClient
    let state: ProxyState
    /// This router's id in the reports (random per process: a restarted router is a new one).
    let routerID: String
    let logger: Logger

    private enum Reason: Sendable {
        case interval
        case demand(backend: String)
    }

    func run() async {
        let (reasons, continuation) = AsyncStream.makeStream(of: Reason.self, bufferingPolicy: .bufferingNewest(16))
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    let interval = state.table.backends.values.compactMap(\.loadReportInterval).min() ?? .milliseconds(250)
                    try? await Task.sleep(for: interval)
                    continuation.yield(.interval)
                }
                continuation.finish()
            }
            group.addTask {
                for await backend in state.demands { continuation.yield(.demand(backend: backend)) }
            }
            var reportedSomething = false
            var failing = false
            for await reason in reasons {
                guard !Task.isCancelled else { break }
                let load = state.load()
                // Nothing autoscaled now, and nothing reported before that could linger.
                if load.isEmpty && !reportedSomething { continue }
                let interval = state.table.backends.values.compactMap(\.loadReportInterval).min() ?? .milliseconds(250)
                var commands = Self.report(load, keys: keys, routerID: routerID, interval: interval)
                if case .demand(let backend) = reason {
                    commands.append(RedisCommand("PUBLISH", keys.wake, DocumentCodec.encode(WakeUp(event: .demand, subject: backend))))
                }
                do {
                    let replies = try await client.pipeline(commands)
                    if let refusal = replies.first(where: { $0.errorMessage != nil })?.errorMessage {
                        throw RedisError(.server, "Redis refused the load report: \(refusal)")
                    }
                    reportedSomething = !load.isEmpty
                    if failing { logger.info("load reports written again") }
                    failing = false
                } catch {
                    if !failing { logger.warning("cannot write the load report; the leader's autoscaler sees this router as idle until it can", metadata: ["error": "\(error)"]) }
                    failing = true
                }
            }
            group.cancelAll()
        }
    }

    /// The report's commands: one transaction replacing the router's hash (a backend no longer
    /// autoscaled drops out of it) and naming the router in the set.
    static func report(_ load: [String: Int], keys: ClusterKeys, routerID: String, interval: Duration) -> [RedisCommand] {
        let key = keys.routerLoad(routerID)
        var commands = [RedisCommand("MULTI"), RedisCommand("DEL", key)]
        if !load.isEmpty {
            var fields: [any RedisArgumentConvertible] = [key]
            for (backend, count) in load.sorted(by: { $0.key < $1.key }) { fields += [backend, String(count)] }
            commands.append(RedisCommand("HSET", arguments: fields))
            commands.append(RedisCommand("PEXPIRE", key, String(ClusterKeys.loadReportTTL(interval: interval).wholeMilliseconds)))
            commands.append(RedisCommand("SADD", keys.routerLoads, routerID))
        }
        commands.append(RedisCommand("EXEC"))
        return commands
    }
}
