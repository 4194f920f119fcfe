import SwerveErrors
@testable import SwerveRedis
import SwerveTestSupport
import Testing

/// Reads events until one satisfies `predicate`, returning the ones before it and it.
func events(
    from iterator: inout RedisSubscription.AsyncIterator,
    until predicate: (RedisSubscriptionEvent) -> Bool
) async throws -> [RedisSubscriptionEvent] {
    var seen: [RedisSubscriptionEvent] = []
    while let event = await iterator.next() {
        seen.append(event)
        if predicate(event) { return seen }
    }
    throw TestFailure("the subscription ended before the expected event; saw \(seen)")
}

@Suite(.timeLimit(.minutes(1))) struct RedisSubscriberAgainstARealServer {
    @Test func subscribedComesFirstThenMessagesInOrder() async throws {
        let channel = TestEnvironment.uniquePrefix() + "ch"
        let publisher = try TestEnvironment.sharedClient()
        let subscriber = RedisSubscriber(configuration: try RedisConfiguration(url: TestEnvironment.sharedRedisURL()), logger: TestEnvironment.logger)
        let received = try await subscriber.subscribe(to: [channel]) { subscription async throws in
            var iterator = subscription.makeAsyncIterator()
            #expect(await iterator.next() == .subscribed)
            for index in 0..<1000 { try await publisher.send("PUBLISH", channel, "\(index)") }
            var payloads: [String] = []
            while payloads.count < 1000, case .message(let message)? = await iterator.next() {
                payloads.append(message.text)
            }
            return payloads
        }
        #expect(received == (0..<1000).map(String.init))
    }

    @Test func patternsAndChannelsTogether() async throws {
        let prefix = TestEnvironment.uniquePrefix()
        let publisher = try TestEnvironment.sharedClient()
        let subscriber = RedisSubscriber(configuration: try RedisConfiguration(url: TestEnvironment.sharedRedisURL()), logger: TestEnvironment.logger)
        try await subscriber.subscribe(to: [prefix + "plain"], patterns: [prefix + "node:*"]) { subscription in
            var iterator = subscription.makeAsyncIterator()
            #expect(await iterator.next() == .subscribed)
            try await publisher.send("PUBLISH", prefix + "node:7", [0, 42, 0] as [UInt8])
            try await publisher.send("PUBLISH", prefix + "plain", "p")
            #expect(await iterator.next() == .message(RedisPubSubMessage(channel: prefix + "node:7", pattern: prefix + "node:*", payload: [0, 42, 0])))
            #expect(await iterator.next() == .message(RedisPubSubMessage(channel: prefix + "plain", payload: Array("p".utf8))))
        }
    }

    @Test func returningFromTheBodyClosesTheConnection() async throws {
        let channel = TestEnvironment.uniquePrefix() + "close"
        let client = try TestEnvironment.sharedClient()
        let subscriber = RedisSubscriber(configuration: try RedisConfiguration(url: TestEnvironment.sharedRedisURL()), logger: TestEnvironment.logger)
        try await subscriber.subscribe(to: [channel]) { subscription async throws in
            var iterator = subscription.makeAsyncIterator()
            #expect(await iterator.next() == .subscribed)
            #expect(try await client.send("PUBSUB", "NUMSUB", channel).array?.last == .integer(1))
        }
        #expect(try await client.send("PUBSUB", "NUMSUB", channel).array?.last == .integer(0))
    }
}

@Suite(.timeLimit(.minutes(1))) struct RedisOutage {
    /// The server is SIGKILLed mid-test and restarted on the same port: commands fail fast
    /// while it is away and succeed after; the subscriber resubscribes and reports the gap.
    @Test func commandsFailFastDuringAnOutageAndTheSubscriberReportsTheGap() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        var configuration = try RedisConfiguration(url: server.url)
        configuration.reconnectBackoff = ReconnectBackoff(initial: .milliseconds(20), maximum: .milliseconds(200))
        configuration.commandTimeout = .seconds(10)
        let client = RedisClient(configuration: configuration, logger: TestEnvironment.logger)
        let subscriber = RedisSubscriber(configuration: configuration, logger: TestEnvironment.logger, healthCheckInterval: .milliseconds(200))

        try await subscriber.subscribe(to: ["news"]) { subscription in
            var iterator = subscription.makeAsyncIterator()
            #expect(await iterator.next() == .subscribed)
            try await client.send("PUBLISH", "news", "before")
            #expect(await iterator.next() == .message(RedisPubSubMessage(channel: "news", payload: Array("before".utf8))))

            server.kill()

            // During the outage: every command fails, quickly and clearly; none waits out the
            // 10 s command timeout.
            let started = ContinuousClock.now
            var codes: Set<String> = []
            for _ in 0..<50 {
                do throws(RedisError) {
                    try await client.send("PING")
                    Issue.record("PING succeeded while the server was down")
                } catch {
                    codes.insert(error.code.description)
                    #expect(error.message.contains("127.0.0.1:\(server.port)"), "\(error.message)")
                }
            }
            #expect(ContinuousClock.now - started < .seconds(5))
            #expect(codes.isSubset(of: ["connectionLost", "connectFailed", "unavailable"]), "\(codes)")
            #expect(codes.contains("unavailable"), "later commands are refused without a connect attempt")

            let lost = try await events(from: &iterator) { if case .disconnected = $0 { true } else { false } }
            #expect(lost.count == 1)

            try await server.start()

            // After: the client reconnects by itself once its backoff allows.
            var reconnected = false
            for _ in 0..<500 where !reconnected {
                if (try? await client.send("PING")) == .simpleString("PONG") { reconnected = true } else { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(reconnected)

            let gap = try await events(from: &iterator) { if case .mayHaveMissedMessages = $0 { true } else { false } }
            #expect(gap.allSatisfy { if case .message = $0 { false } else { true } }, "no message before the gap notice: \(gap)")
            try await client.send("PUBLISH", "news", "after")
            #expect(await iterator.next() == .message(RedisPubSubMessage(channel: "news", payload: Array("after".utf8))))
        }
    }

    @Test func aSubscriberStartedWhileRedisIsDownSubscribesOnceItIsUp() async throws {
        let server = try RedisServerProcess()
        var configuration = try RedisConfiguration(url: server.url)
        configuration.reconnectBackoff = ReconnectBackoff(initial: .milliseconds(20), maximum: .milliseconds(100))
        let subscriber = RedisSubscriber(configuration: configuration, logger: TestEnvironment.logger)
        try await subscriber.subscribe(to: ["late"]) { subscription in
            var iterator = subscription.makeAsyncIterator()
            guard case .disconnected(let error)? = await iterator.next() else {
                Issue.record("expected disconnected first")
                return
            }
            #expect(error.code == .connectFailed)
            try await server.start()
            let seen = try await events(from: &iterator) { $0 == .subscribed }
            #expect(seen == [.subscribed], "never subscribed before, so nothing to report as missed")
        }
    }
}
