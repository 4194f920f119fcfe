import SwerveErrors
/// The life of one subscription connection, as a pure value: which events to deliver, when to
/// ping, when to give up on a connection, how long to back off. No I/O, no clock: the
/// ``SubscriptionThread`` reports what happened and performs the returned actions.
///
/// States: `connecting` (no connection; `failures` consecutive attempts failed), `subscribing`
/// (connected, waiting for `pendingAcks` acknowledgements; messages that arrive meanwhile are
/// held so that the `.subscribed` / `.mayHaveMissedMessages` event comes first), `subscribed`
/// (`awaitingPong` after a health-check `PING`), and `stopped`.
struct SubscriptionStateMachine: Sendable {
    enum State: Sendable, Equatable {
        case connecting(failures: Int)
        case subscribing(pendingAcks: Int, held: [RedisPubSubMessage], awaitingPong: Bool)
        case subscribed(awaitingPong: Bool)
        case stopped
    }

    enum Action: Sendable, Equatable {
        case deliver(RedisSubscriptionEvent)
        /// Send `PING` to check that a quiet connection is alive.
        case sendPing
        /// Close this connection and reconnect at once.
        case dropConnection(RedisError)
        /// Wait this long before the next connect attempt.
        case backOff(Duration)
    }

    private(set) var state: State = .connecting(failures: 0)
    /// Set once the first subscription was acknowledged; later ones report a possible gap.
    private(set) var everSubscribed = false
    /// Why messages may have been missed, reported with the next acknowledgement.
    private var gapReason: String?
    /// `.disconnected` was delivered for the current outage; it is said once per outage.
    private var disconnectReported = false
    let backoff: ReconnectBackoff
    let subscriptionCount: Int

    init(backoff: ReconnectBackoff, subscriptionCount: Int) {
        precondition(subscriptionCount > 0, "a subscription needs at least one channel or pattern")
        self.backoff = backoff
        self.subscriptionCount = subscriptionCount
    }

    /// A connection was opened and the SUBSCRIBE / PSUBSCRIBE commands were sent on it.
    mutating func connected() {
        guard state != .stopped else { return }
        state = .subscribing(pendingAcks: subscriptionCount, held: [], awaitingPong: false)
    }

    /// A connect attempt failed. `random` (0...1) feeds the backoff's jitter.
    mutating func connectFailed(_ error: RedisError, random: Double) -> [Action] {
        guard case .connecting(let failures) = state else { return [] }
        state = .connecting(failures: failures + 1)
        var actions: [Action] = []
        if !disconnectReported {
            // First failure of an outage: tell the consumer it is not receiving.
            disconnectReported = true
            actions.append(.deliver(.disconnected(error)))
            if everSubscribed, gapReason == nil { gapReason = error.message }
        }
        actions.append(.backOff(backoff.delay(afterFailures: failures + 1, random: random)))
        return actions
    }

    /// The connection broke (I/O error, EOF, or a health check unanswered).
    mutating func connectionLost(_ error: RedisError) -> [Action] {
        switch state {
        case .stopped, .connecting:
            return []
        case .subscribing, .subscribed:
            state = .connecting(failures: 0)
            if everSubscribed, gapReason == nil { gapReason = error.message }
            guard !disconnectReported else { return [] }
            disconnectReported = true
            return [.deliver(.disconnected(error))]
        }
    }

    /// Replies read from the connection, in order.
    mutating func repliesReceived(_ replies: [RedisReply]) -> [Action] {
        var actions: [Action] = []
        for reply in replies {
            actions += replyReceived(reply)
            if case .connecting = state { break }
        }
        return actions
    }

    private mutating func replyReceived(_ reply: RedisReply) -> [Action] {
        guard let parts = reply.array, let kind = parts.first?.string?.lowercased() else {
            return lose("unexpected reply on a subscription connection: \(reply)")
        }
        switch (kind, state) {
        case ("subscribe", .subscribing(let pending, let held, let awaitingPong)),
             ("psubscribe", .subscribing(let pending, let held, let awaitingPong)):
            guard pending > 1 else {
                state = .subscribed(awaitingPong: awaitingPong)
                let first: RedisSubscriptionEvent
                if everSubscribed {
                    first = .mayHaveMissedMessages(reason: "resubscribed after: \(gapReason ?? "a reconnect")")
                } else {
                    first = .subscribed
                }
                everSubscribed = true
                gapReason = nil
                disconnectReported = false
                return [.deliver(first)] + held.map { .deliver(.message($0)) }
            }
            state = .subscribing(pendingAcks: pending - 1, held: held, awaitingPong: awaitingPong)
            return []
        case ("message", _), ("pmessage", _):
            guard let message = Self.message(kind: kind, parts) else {
                return lose("malformed \(kind) on a subscription connection: \(reply)")
            }
            switch state {
            case .subscribing(let pending, var held, let awaitingPong):
                held.append(message)
                state = .subscribing(pendingAcks: pending, held: held, awaitingPong: awaitingPong)
                return []
            case .subscribed:
                return [.deliver(.message(message))]
            default:
                return []
            }
        case ("pong", .subscribed):
            state = .subscribed(awaitingPong: false)
            return []
        case ("pong", .subscribing(let pending, let held, _)):
            state = .subscribing(pendingAcks: pending, held: held, awaitingPong: false)
            return []
        default:
            return lose("unexpected \(kind) reply on a subscription connection: \(reply)")
        }
    }

    /// Nothing arrived for a whole health-check interval.
    mutating func idleIntervalPassed() -> [Action] {
        switch state {
        case .subscribed(awaitingPong: false):
            state = .subscribed(awaitingPong: true)
            return [.sendPing]
        case .subscribing(let pending, let held, false):
            state = .subscribing(pendingAcks: pending, held: held, awaitingPong: true)
            return [.sendPing]
        case .subscribed(awaitingPong: true), .subscribing(_, _, true):
            return lose("Redis did not answer a health-check PING within the interval")
        case .connecting, .stopped:
            return []
        }
    }

    mutating func stopRequested() {
        state = .stopped
    }

    private mutating func lose(_ reason: String) -> [Action] {
        let error = RedisError(.connectionLost, reason)
        return [.dropConnection(error)] + connectionLost(error)
    }

    private static func message(kind: String, _ parts: [RedisReply]) -> RedisPubSubMessage? {
        if kind == "message", parts.count == 3, let channel = parts[1].string, let payload = parts[2].bytes {
            return RedisPubSubMessage(channel: channel, payload: payload)
        }
        if kind == "pmessage", parts.count == 4, let pattern = parts[1].string, let channel = parts[2].string, let payload = parts[3].bytes {
            return RedisPubSubMessage(channel: channel, pattern: pattern, payload: payload)
        }
        return nil
    }
}
