import SwerveClient
import SwerveCore
import SwerveErrors
import SwerveRedis

/// Every request the harness submitted, and their goals.
actor RequestLedger {
    let client: ClusterClient
    private(set) var goals: [GoalID] = []

    init(client: ClusterClient) {
        self.client = client
    }

    /// Submits `operation`, retrying while Redis cannot be reached (then nothing was sent).
    /// Any other failure is thrown: the request may or may not be in the stream.
    func submit(_ operation: Request.Operation) async throws -> GoalID {
        while true {
            do {
                let goal = try await client.submit(operation)
                goals.append(goal)
                return goal
            } catch let error as RedisError where error.code == .unavailable || error.code == .connectFailed {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Each goal's outcome; nil for one not settled (or not readable).
    func outcomes() async -> [String: GoalOutcome?] {
        var outcomes: [String: GoalOutcome?] = [:]
        for goal in goals {
            let outcome = (try? await client.goalOutcome(goal)) ?? nil
            outcomes[goal] = .some(outcome)
        }
        return outcomes
    }

    func allSettled() async -> Bool {
        await outcomes().values.allSatisfy { $0 != nil }
    }
}
