import Foundation
import Glibc
import SwerveErrors
@testable import SwerveRedis
import SwerveTestSupport
import Testing

/// The client through real Sentinels: a master, a replica and three sentinels, failed over by
/// hand (the old master still answers) and by killing the master.
@Suite(.timeLimit(.minutes(1))) struct RedisThroughSentinels {
    /// Retries `body` until it succeeds (a failover takes a few seconds), or fails after 20 s.
    func eventually<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(20)
        while true {
            do { return try await body() } catch {
                if ContinuousClock.now > deadline { throw TestFailure("\(what) never succeeded: \(error)") }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// The port of the server `client` is connected to, as the server says.
    func connectedPort(_ client: RedisClient) async throws -> Int? {
        try await client.send("CONFIG", "GET", "port").array?.last?.string.flatMap { Int($0) }
    }

    @Test func theClientFindsTheMasterAndFollowsAFailoverWhileTheOldMasterStillAnswers() async throws {
        let group = try await RedisSentinelGroup()
        var configuration = try RedisConfiguration(url: group.url)
        configuration.masterCheckInterval = .milliseconds(200)
        let client = RedisClient(configuration: configuration, logger: TestEnvironment.logger)
        defer { client.close() }
        #expect(try await client.send("SET", "k", "before") == .simpleString("OK"))
        #expect(try await connectedPort(client) == group.master.port)

        // A failover by hand: the old master is demoted to a replica but keeps answering.
        _ = try redisCommand(port: group.sentinelPorts[0], ["SENTINEL", "FAILOVER", RedisSentinelGroup.masterName])
        try await eventually("the sentinels name the replica") {
            guard group.reportedMasterPort() == group.replica.port else { throw TestFailure("not yet") }
        }
        // Until the sentinels reconfigure the old master it may still take writes (what Redis's
        // min-replicas-to-write guards against); within a master check the client has moved.
        try await eventually("the client moves to the new master") {
            guard try await connectedPort(client) == group.replica.port else { throw TestFailure("still on the old master") }
        }
        #expect(try await client.send("SET", "k", "after") == .simpleString("OK"))
        #expect(try await client.send("ROLE").array?.first?.string == "master")
    }

    @Test func commandsAndSubscriptionsComeBackAfterTheMasterIsKilled() async throws {
        let group = try await RedisSentinelGroup()
        // The first sentinel is down: the others answer.
        group.killSentinel(group.sentinelPorts[0])
        let configuration = try RedisConfiguration(url: group.url)
        let client = RedisClient(configuration: configuration, logger: TestEnvironment.logger)
        defer { client.close() }
        #expect(try await client.send("SET", "k", "v") == .simpleString("OK"))

        let subscriber = RedisSubscriber(configuration: configuration, logger: TestEnvironment.logger)
        let received = try await subscriber.subscribe(to: ["news"]) { subscription async throws -> [String] in
            var iterator = subscription.makeAsyncIterator()
            #expect(await iterator.next() == .subscribed)
            group.master.kill()
            try await eventually("the replica promoted") {
                guard group.reportedMasterPort() == group.replica.port else { throw TestFailure("not yet") }
            }
            _ = try await eventually("a write on the new master") { try await client.send("SET", "k", "w") }
            #expect(try await connectedPort(client) == group.replica.port)
            // Publish until the subscriber, moved to the new master, hears it.
            let publisher = Task {
                while !Task.isCancelled {
                    _ = try? await client.send("PUBLISH", "news", "promoted")
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            defer { publisher.cancel() }
            var events: [String] = []
            while let event = await iterator.next() {
                switch event {
                case .message(let message):
                    events.append("message \(String(decoding: message.payload, as: UTF8.self))")
                    return events
                case .disconnected: events.append("disconnected")
                case .mayHaveMissedMessages: events.append("gap")
                case .subscribed: events.append("subscribed")
                }
            }
            return events
        }
        #expect(received.last == "message promoted")
        #expect(received.first == "disconnected" && received.contains("gap") && received.last == "message promoted",
                "it lost the old master, said a message may be missed, and heard the new one: \(received)")
    }
}
