import Foundation
public import Logging
public import SwerveCore
import SwerveErrors
public import SwerveProtocol
public import SwerveRedis

/// What clients (the `swerve` commands, or any Swift program) use: append requests, wait for
/// their goals, read status. Never needs to know which controller leads; requests queue safely
/// while none does.
public struct ClusterClient: Sendable {
    public let keys: ClusterKeys
    let client: RedisClient
    let logger: Logger

    public init(keys: ClusterKeys, client: RedisClient, logger: Logger) {
        self.keys = keys
        self.client = client
        self.logger = logger
    }

    /// Validates `operation` (every problem, each naming its field) and appends it to the request
    /// stream with a new goal id, which it returns. Nothing is written when it is invalid.
    public func submit(_ operation: Request.Operation) async throws -> GoalID {
        if let problems = Self.problems(of: operation) { throw problems }
        let goal = UUID().uuidString.lowercased()
        // The wake-up is a hint (the leader also reads on its tick); the append must have landed.
        let replies = try await client.pipeline(Self.appendCommands(RequestEntry(goal: goal, operation: operation), keys: keys))
        _ = try replies[0].throwingServerError(for: "XADD")
        return goal
    }

    /// How a request is appended, unchecked: the entry, then the wake-up that tells the leader.
    public static func appendCommands(_ entry: RequestEntry, keys: ClusterKeys) -> [RedisCommand] {
        [RedisCommand("XADD", arguments: [keys.requests, "*"] + entry.fields().flatMap { [$0.name, $0.value] as [any RedisArgumentConvertible] }),
         RedisCommand("PUBLISH", keys.wake, DocumentCodec.encode(WakeUp(event: .request, subject: entry.goal)))]
    }

    /// The problems the leader would find in `operation` without knowing the cluster (route
    /// clashes and unknown tags are found by the leader).
    public static func problems(of operation: Request.Operation) -> ValidationError? {
        let problems = operation.problems()
        return problems.isEmpty ? nil : ValidationError(problems)
    }

    /// Waits until `goal` settles, calling `progress` with its backend's status whenever it
    /// changes. The outcome is read from its key on every goal message and every 250 ms, so it
    /// cannot be missed whenever it was written.
    /// - Throws: ``ClientError`` `.noLeader` when no controller led for longer than
    ///   `leaderless` (nil: wait however long it takes); the request stays queued.
    public func wait(for goal: GoalID, backend: String?, leaderless: Duration? = nil,
                     progress: @escaping @Sendable (BackendStatus?) -> Void) async throws -> GoalOutcome {
        let subscriber = RedisSubscriber(configuration: client.configuration, logger: logger)
        let (checks, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        return try await subscriber.subscribe(to: [keys.goals]) { subscription in
            try await withThrowingTaskGroup(of: GoalOutcome?.self) { group in
                group.addTask {
                    for await _ in subscription { continuation.yield() }
                    return nil
                }
                group.addTask {
                    while !Task.isCancelled {
                        continuation.yield()
                        try await Task.sleep(for: .milliseconds(250))
                    }
                    return nil
                }
                group.addTask {
                    var last: BackendStatus?? = .none
                    var leaderlessSince: ContinuousClock.Instant?
                    for await _ in checks {
                        // The outcome, and whether anyone leads (when that matters), in one round trip.
                        var reads = [RedisCommand("GET", keys.goal(goal))]
                        if leaderless != nil { reads.append(RedisCommand("EXISTS", keys.leader)) }
                        let replies = try await client.pipeline(reads)
                        if let bytes = replies[0].bytes {
                            return try DocumentCodec.decode(GoalOutcomeDocument.self, from: bytes, source: keys.goal(goal)).outcome
                        }
                        if let leaderless {
                            if replies[1].integer == 1 {
                                leaderlessSince = nil
                            } else if let since = leaderlessSince {
                                if ContinuousClock.now - since > leaderless {
                                    throw ClientError(.noLeader, "no controller has led cluster \(keys.cluster) for \(leaderless); goal \(goal) stays queued and is applied when one leads (start a controller, or check `swerve leader`)")
                                }
                            } else {
                                leaderlessSince = .now
                            }
                        }
                        if let backend {
                            let current = try await status()[backend]
                            if last.map({ $0 != current }) ?? true {
                                progress(current)
                                last = .some(current)
                            }
                        }
                    }
                    return nil
                }
                while let result = try await group.next() {
                    if let outcome = result {
                        group.cancelAll()
                        return outcome
                    }
                }
                throw RedisError(.closed, "stopped waiting for goal \(goal)")
            }
        }
    }

    /// Every backend's status, as the leader last wrote it.
    public func status() async throws -> [String: BackendStatus] {
        guard let bytes = try await client.send("GET", keys.status).bytes else { return [:] }
        return try DocumentCodec.decode(StatusDocument.self, from: bytes, source: keys.status).backends
    }
}
