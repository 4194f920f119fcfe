import Foundation
import SwerveCore
import SwerveRedis

/// Whether a step waits for Redis replicas to hold its checkpoint before it acts on it, so that
/// a failover (asynchronous replication may lose the master's last writes) never loses a
/// checkpoint whose actions were carried out: workers started, drained or killed, goals
/// announced, snapshots published.
///
/// A step writes what it decided (the checkpoint, the status, the events) first, with — when
/// ``required`` is above 0 — `WAIT required timeout` in the same round trip on the same
/// connection (Redis counts the replicas that acknowledged every earlier write of that
/// connection), and carries out its actions only when enough did. Otherwise the step fails without acting, and the leader
/// reloads before the next — as after any failed step. A step with nothing to act on does not
/// wait. Pure apart from ``decide(client:)``.
struct ReplicaAcknowledgement: Sendable, Equatable {
    /// The operator's choice (`--min-replica-acks`); nil: decided at each load.
    let configured: Int?
    let timeout: Duration
    /// Replicas each acting step waits for now.
    private(set) var required = 0

    init(configured: Int?, timeout: Duration) {
        self.configured = configured
        self.timeout = timeout
        required = configured ?? 0
    }

    /// The writes that record a step's decisions, and those that act on them, in order. The
    /// recording writes lead a step (``StepWrites``): checkpoint, status, events.
    static func split(_ calls: [FencedCall]) -> (record: [FencedCall], act: [FencedCall]) {
        let recording: Set<String> = ["writeCheckpoint", "writeStatus", "appendEvents", "recordRequestAttempt"]
        let count = calls.prefix { recording.contains($0.name) }.count
        return (Array(calls.prefix(count)), Array(calls.dropFirst(count)))
    }

    /// When not configured: 1 if the master has replicas now (`INFO replication`'s
    /// `connected_slaves`), else 0. Returns whether it changed.
    @discardableResult
    mutating func decide(client: RedisClient) async throws -> Bool {
        guard configured == nil else { return false }
        let info = try await client.send("INFO", "replication").string ?? ""
        let replicas = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("connected_slaves:") }
            .flatMap { Int($0.dropFirst("connected_slaves:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
        let before = required
        required = replicas > 0 ? 1 : 0
        return required != before
    }

    /// The `WAIT` to send after the recording writes, in their round trip.
    var command: RedisCommand { RedisCommand("WAIT", required, timeout.wholeMilliseconds) }

    /// Throws when `WAIT` answered fewer than ``required`` replicas.
    func check(_ reply: RedisReply?) throws {
        let acknowledged = reply?.integer ?? 0
        guard acknowledged >= Int64(required) else {
            throw ReplicaAcknowledgementError(
                "only \(acknowledged) of \(required) Redis replicas acknowledged the checkpoint within \(timeout.wholeMilliseconds) ms: "
                    + "not acting on it (a failover could lose it); the step runs again once a reload succeeds")
        }
    }
}

/// A step that did not act because Redis replicas did not acknowledge its checkpoint.
struct ReplicaAcknowledgementError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
