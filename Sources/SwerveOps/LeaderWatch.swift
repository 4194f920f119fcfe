import Foundation
import SwerveClient
import SwerveProtocol
import Synchronization

/// Watches who leads, every 10 ms, for the chaos harness: each election seen (a new epoch in
/// the leader record) and the longest time no record was there.
final class LeaderWatch: Sendable {
    struct Election: Sendable { var epoch: Int64; var id: String; var at: ContinuousClock.Instant }

    private let state = Mutex<(elections: [Election], gapStarted: ContinuousClock.Instant?, longestGap: Duration)>(([], nil, .zero))
    let client: ClusterClient

    init(client: ClusterClient) {
        self.client = client
    }

    var elections: [Election] { state.withLock { $0.elections } }

    /// The longest stretch with no leader record, including one still going on.
    var longestGap: Duration {
        state.withLock { state in
            max(state.longestGap, state.gapStarted.map { ContinuousClock.now - $0 } ?? .zero)
        }
    }

    /// Polls until cancelled. A failed read (Redis restarting) counts as no news, not as no leader.
    func run() async {
        while !Task.isCancelled {
            if let result = await read() {
                let now = ContinuousClock.now
                state.withLock { state in
                    if let leader = result {
                        if let started = state.gapStarted { state.longestGap = max(state.longestGap, now - started); state.gapStarted = nil }
                        if state.elections.last?.epoch != leader.epoch { state.elections.append(Election(epoch: leader.epoch, id: leader.id, at: now)) }
                    } else if state.gapStarted == nil {
                        state.gapStarted = now
                    }
                }
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// The leader record (nil: none leads), or nil when it could not be read.
    private func read() async -> LeaderRecord?? {
        do { return .some(try await client.leader()) } catch { return .none }
    }

    /// The leader now (from the last poll): id and epoch.
    var current: Election? { state.withLock { $0.gapStarted == nil ? $0.elections.last : nil } }

    /// Waits until someone other than `previous` leads under a higher epoch; returns when that
    /// was seen, or nil after `timeout`.
    func awaitSuccessor(of previous: Election, timeout: Duration) async -> Election? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let next = state.withLock({ $0.elections.last }), next.epoch > previous.epoch { return next }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    /// Waits until some controller leads; nil after `timeout`.
    func awaitLeader(timeout: Duration) async -> Election? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let leader = current { return leader }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }
}
