public import Logging
import SwerveErrors

/// Subscribes to Redis channels and patterns, each subscription on a connection and thread of
/// its own.
///
/// ```swift
/// let subscriber = RedisSubscriber(configuration: configuration, logger: logger)
/// try await subscriber.subscribe(to: ["swerve:{prod}:replicas"]) { subscription in
///     for await event in subscription {
///         switch event {
///         case .subscribed, .mayHaveMissedMessages: reloadSnapshot()
///         case .message(let message): apply(message)
///         case .disconnected: markStale()
///         }
///     }
/// }
/// ```
///
/// Guarantees: events arrive in the order Redis sent them; `.subscribed` comes first and only
/// after Redis acknowledged every channel and pattern; after any reconnect the subscription
/// resubscribes by itself and says `.mayHaveMissedMessages` before any new message; a quiet
/// connection is checked with `PING` every ``healthCheckInterval`` and replaced if Redis does
/// not answer within another interval; the consumer's buffer is bounded by ``bufferLimit``
/// (overflow is reported as `.mayHaveMissedMessages`, never silent). The subscription never
/// ends by itself: it retries with backoff until the body returns or its task is cancelled.
public struct RedisSubscriber: Sendable {
    public var configuration: RedisConfiguration
    public var healthCheckInterval: Duration
    public var bufferLimit: Int
    private let logger: Logger

    public init(configuration: RedisConfiguration, logger: Logger, healthCheckInterval: Duration = .seconds(1), bufferLimit: Int = 10_000) {
        precondition(healthCheckInterval >= .milliseconds(10), "healthCheckInterval must be at least 10 ms")
        precondition(bufferLimit > 0, "bufferLimit must be positive")
        self.configuration = configuration
        self.healthCheckInterval = healthCheckInterval
        self.bufferLimit = bufferLimit
        self.logger = logger
    }

    /// Subscribes to `channels` (SUBSCRIBE) and `patterns` (PSUBSCRIBE), runs `body` with the
    /// subscription, and closes the connection when `body` returns or throws. Returns only after
    /// the connection is closed.
    public func subscribe<Result>(
        to channels: [String],
        patterns: [String] = [],
        isolation: isolated (any Actor)? = #isolation,
        _ body: (RedisSubscription) async throws -> Result
    ) async throws -> Result {
        guard !channels.isEmpty || !patterns.isEmpty else {
            throw RedisError(.invalidConfiguration, "subscribe needs at least one channel or pattern")
        }
        let control = try SubscriptionControl()
        let (stream, continuation) = AsyncStream.makeStream(of: RedisSubscriptionEvent.self, bufferingPolicy: .bufferingOldest(bufferLimit))
        continuation.onTermination = { _ in control.requestStop() }
        let worker = SubscriptionThread(
            configuration: configuration, channels: channels, patterns: patterns,
            healthCheckInterval: healthCheckInterval, control: control, continuation: continuation, logger: logger
        )
        startDedicatedThread(name: "swerve-redis-sub") { worker.run() }

        let result: Result
        do {
            result = try await body(RedisSubscription(stream: stream))
        } catch {
            control.requestStop()
            await control.waitForExit()
            throw error
        }
        control.requestStop()
        await control.waitForExit()
        return result
    }
}

/// The events of one subscription, as an async sequence; see ``RedisSubscriptionEvent``.
public struct RedisSubscription: AsyncSequence, Sendable {
    public typealias Element = RedisSubscriptionEvent
    let stream: AsyncStream<RedisSubscriptionEvent>

    public func makeAsyncIterator() -> AsyncStream<RedisSubscriptionEvent>.Iterator {
        stream.makeAsyncIterator()
    }
}
