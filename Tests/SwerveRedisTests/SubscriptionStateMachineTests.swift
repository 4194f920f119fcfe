import SwerveErrors
@testable import SwerveRedis
import SwerveTestSupport
import Testing

@Suite struct SubscriptionStateMachineRules {
    let lost = RedisError(.connectionLost, "connection to Redis at h:1 lost while reading: the server closed it")

    func machine(subscriptions: Int = 2) -> SubscriptionStateMachine {
        SubscriptionStateMachine(backoff: ReconnectBackoff(initial: .milliseconds(100), maximum: .seconds(1), jitter: 0), subscriptionCount: subscriptions)
    }

    func ack(_ kind: String = "subscribe", _ name: String = "c", _ count: Int64 = 1) -> RedisReply {
        .array([.bulkString(Array(kind.utf8)), .bulkString(Array(name.utf8)), .integer(count)])
    }

    func message(_ channel: String, _ payload: String) -> RedisReply {
        .array([.bulkString(Array("message".utf8)), .bulkString(Array(channel.utf8)), .bulkString(Array(payload.utf8))])
    }

    @Test func subscribedOnlyAfterEveryAcknowledgement() {
        var machine = machine()
        machine.connected()
        #expect(machine.repliesReceived([ack("subscribe", "a")]) == [])
        #expect(machine.repliesReceived([ack("psubscribe", "p*", 2)]) == [.deliver(.subscribed)])
    }

    @Test func messagesBeforeTheLastAcknowledgementAreHeldAndFollowIt() {
        var machine = machine()
        machine.connected()
        let actions = machine.repliesReceived([ack(), message("a", "1"), ack("subscribe", "b", 2), message("a", "2")])
        #expect(actions == [
            .deliver(.subscribed),
            .deliver(.message(RedisPubSubMessage(channel: "a", payload: Array("1".utf8)))),
            .deliver(.message(RedisPubSubMessage(channel: "a", payload: Array("2".utf8)))),
        ])
    }

    @Test func patternMessagesCarryTheirPattern() {
        var machine = machine(subscriptions: 1)
        machine.connected()
        _ = machine.repliesReceived([ack("psubscribe", "n:*")])
        let pmessage = RedisReply.array([.bulkString(Array("pmessage".utf8)), .bulkString(Array("n:*".utf8)), .bulkString(Array("n:1".utf8)), .bulkString([0, 1])])
        #expect(machine.repliesReceived([pmessage]) == [.deliver(.message(RedisPubSubMessage(channel: "n:1", pattern: "n:*", payload: [0, 1])))])
    }

    @Test func aLostConnectionSaysDisconnectedThenMayHaveMissedOnResubscribe() {
        var machine = machine(subscriptions: 1)
        machine.connected()
        _ = machine.repliesReceived([ack()])
        #expect(machine.connectionLost(lost) == [.deliver(.disconnected(lost))])
        machine.connected()
        let actions = machine.repliesReceived([ack()])
        guard case .deliver(.mayHaveMissedMessages(let reason)) = actions.first else {
            Issue.record("expected mayHaveMissedMessages, got \(actions)")
            return
        }
        #expect(reason.contains("the server closed it"))
    }

    @Test func failedReconnectsBackOffAndReportDisconnectedOncePerStreak() {
        var machine = machine(subscriptions: 1)
        let refused = RedisError(.connectFailed, "refused")
        #expect(machine.connectFailed(refused, random: 0) == [.deliver(.disconnected(refused)), .backOff(.milliseconds(100))])
        #expect(machine.connectFailed(refused, random: 0) == [.backOff(.milliseconds(200))])
        machine.connected()
        #expect(machine.repliesReceived([ack()]) == [.deliver(.subscribed)], "never subscribed before, so nothing was missed")
    }

    @Test func disconnectedIsSaidOncePerOutageEvenWhenReconnectsFail() {
        var machine = machine(subscriptions: 1)
        machine.connected()
        _ = machine.repliesReceived([ack()])
        #expect(machine.connectionLost(lost) == [.deliver(.disconnected(lost))])
        let refused = RedisError(.connectFailed, "refused")
        #expect(machine.connectFailed(refused, random: 0) == [.backOff(.milliseconds(100))])
        machine.connected()
        guard case .deliver(.mayHaveMissedMessages)? = machine.repliesReceived([ack()]).first else {
            Issue.record("expected the gap notice")
            return
        }
        #expect(machine.connectionLost(lost) == [.deliver(.disconnected(lost))], "a new outage is said again")
    }

    @Test func aLostConnectionDuringSubscribingIsAlsoAGap() {
        var machine = machine(subscriptions: 1)
        machine.connected()
        _ = machine.repliesReceived([ack()])
        _ = machine.connectionLost(lost)
        machine.connected()
        #expect(machine.connectionLost(lost) == [], "still the same outage")
        machine.connected()
        guard case .deliver(.mayHaveMissedMessages)? = machine.repliesReceived([ack()]).first else {
            Issue.record("expected the gap notice")
            return
        }
    }

    @Test func aQuietConnectionIsPingedAndDroppedWhenThePongNeverComes() {
        var machine = machine(subscriptions: 1)
        machine.connected()
        _ = machine.repliesReceived([ack()])
        #expect(machine.idleIntervalPassed() == [.sendPing])
        let actions = machine.idleIntervalPassed()
        guard case .dropConnection(let error) = actions.first else {
            Issue.record("expected the connection to be dropped, got \(actions)")
            return
        }
        #expect(error.message.contains("PING"))
        #expect(actions.dropFirst().first == .deliver(.disconnected(error)))
    }

    @Test func aPongKeepsTheConnection() {
        var machine = machine(subscriptions: 1)
        machine.connected()
        _ = machine.repliesReceived([ack()])
        _ = machine.idleIntervalPassed()
        #expect(machine.repliesReceived([.array([.bulkString(Array("pong".utf8)), .bulkString([])])]) == [])
        #expect(machine.idleIntervalPassed() == [.sendPing])
    }

    @Test func anUnexpectedReplyDropsTheConnection() {
        var machine = machine(subscriptions: 1)
        machine.connected()
        let actions = machine.repliesReceived([.error("ERR unknown command")])
        guard case .dropConnection = actions.first else {
            Issue.record("expected drop, got \(actions)")
            return
        }
    }
}

@Suite struct SubscriptionDelivery {
    @Test func aFullBufferIsReportedBeforeTheNextEvent() async {
        let (stream, continuation) = AsyncStream.makeStream(of: RedisSubscriptionEvent.self, bufferingPolicy: .bufferingOldest(2))
        var delivery = Delivery(continuation: continuation)
        let messages = (0..<5).map { RedisSubscriptionEvent.message(RedisPubSubMessage(channel: "c", payload: [UInt8($0)])) }
        for message in messages { delivery.deliver(message) }
        var iterator = stream.makeAsyncIterator()
        #expect(await iterator.next() == messages[0])
        #expect(await iterator.next() == messages[1])
        delivery.deliver(.message(RedisPubSubMessage(channel: "c", payload: [9])))
        continuation.finish()
        guard case .mayHaveMissedMessages(let reason) = await iterator.next() else {
            Issue.record("expected a missed-messages notice")
            return
        }
        #expect(reason.contains("3 events were dropped"))
        #expect(await iterator.next() == .message(RedisPubSubMessage(channel: "c", payload: [9])))
    }
}
