import Foundation
import SwerveCore
import SwerveErrors
import SwerveProtocol
import SwerveRedis

/// A client that writes what no well-behaved client would, straight into the request stream
/// (no client-side checks): values out of range, unknown backends, a typo'd scale to 10^11,
/// malformed JSON, unknown fields, a newer schema version, an entry without a goal. The
/// leader must refuse or fail every one with a reason (its goal fails saying why) and go on
/// applying the valid ones exactly once.
actor HostileClient {
    let redis: RedisClient
    let keys: ClusterKeys
    private var goals: [String] = []
    private var entries = 0

    init(redis: RedisClient, keys: ClusterKeys) {
        self.redis = redis
        self.keys = keys
    }

    /// What it wrote, and what went wrong with how the leader handled it.
    struct Report: Sendable {
        var entries: Int
        var failedGoals: Int
        var violations: [String]
    }

    /// Each hostile entry: its fields (a `goal` field, when present, is replaced by a fresh id).
    static let entries: [[(String, String)]] = [
        [("schemaVersion", "1"), ("goal", ""), ("request", #"{"updateBackendConfig":{"tag":"chaos","patch":{"numReplicas":100000000000}}}"#)],
        [("schemaVersion", "1"), ("goal", ""), ("request", #"{"updateBackendConfig":{"tag":"chaos","patch":{"maxConcurrentQueries":-5}}}"#)],
        [("schemaVersion", "1"), ("goal", ""), ("request", #"{"updateBackendConfig":{"tag":"no-such-backend","patch":{"numReplicas":2}}}"#)],
        [("schemaVersion", "1"), ("goal", ""), ("request", #"{"createBackend":{"tag":"x","config":{"gracefulShutdownTimeoutS":1e308},"replicaConfig":{"workload":{"builtin":{"name":"echo","options":{}}},"resources":{"cpu":-1}}}}"#)],
        [("schemaVersion", "1"), ("goal", ""), ("request", ##"{"createBackend":{"tag":"#bad tag","config":{},"replicaConfig":{}}}"##)],
        [("schemaVersion", "1"), ("goal", ""), ("request", #"{"deleteBackend":{"tag":""#)],
        [("schemaVersion", "1"), ("goal", ""), ("request", #"{"launchMissiles":{}}"#)],
        [("schemaVersion", "99"), ("goal", ""), ("request", #"{"deleteBackend":{"tag":"chaos","force":true}}"#)],
        [("schemaVersion", "1"), ("request", #"{"deleteBackend":{"tag":"chaos","force":true}}"#)],
        [("garbage", String(repeating: "\u{1}", count: 300))],
    ]

    /// Writes the next hostile entry. Called from the fault loop, like the harness's valid
    /// requests, so never while Redis restarts: an entry whose write failed is not in the stream.
    func writeOne() async throws {
        var fields = Self.entries[entries % Self.entries.count]
        var goal: String?
        if let slot = fields.firstIndex(where: { $0.0 == "goal" }) {
            goal = "hostile-" + UUID().uuidString
            fields[slot].1 = goal!
        }
        let command = RedisCommand("XADD", arguments: [keys.requests, "*"] + fields.flatMap { [$0.0, $0.1] as [any RedisArgumentConvertible] })
        do {
            _ = try await redis.send(command)
        } catch {
            // Unreachable: nothing was sent. Anything else: it may be in the stream.
            if Self.notSent(error) { return }
            throw error
        }
        entries += 1
        if let goal { goals.append(goal) }
    }

    private static func notSent(_ error: any Error) -> Bool {
        guard let error = error as? RedisError else { return false }
        return error.code == .unavailable || error.code == .connectFailed
    }

    /// Waits (up to 30 s) for every goal it gave to settle, and says how each ended.
    func report() async -> Report {
        var violations: [String] = []
        var failed = 0
        let deadline = ContinuousClock.now + .seconds(30)
        for goal in goals {
            var outcome: GoalOutcomeDocument?
            while outcome == nil, ContinuousClock.now < deadline {
                if let bytes = try? await redis.send("GET", keys.goal(goal)).bytes {
                    outcome = try? DocumentCodec.decode(GoalOutcomeDocument.self, from: bytes, source: keys.goal(goal))
                }
                if outcome == nil { try? await Task.sleep(for: .milliseconds(100)) }
            }
            guard let outcome else {
                violations.append("hostile request \(goal) never settled")
                continue
            }
            if let failure = outcome.failure, !failure.isEmpty {
                failed += 1
            } else {
                violations.append("hostile request \(goal) was applied: \(outcome.failure ?? "completed")")
            }
        }
        return Report(entries: entries, failedGoals: failed, violations: violations)
    }
}
