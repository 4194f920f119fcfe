/// One message published on a channel the subscription listens to.
public struct RedisPubSubMessage: Sendable, Hashable {
    public var channel: String
    /// The pattern that matched, for `PSUBSCRIBE` subscriptions; nil for plain channels.
    public var pattern: String?
    public var payload: [UInt8]

    public init(channel: String, pattern: String? = nil, payload: [UInt8]) {
        self.channel = channel
        self.pattern = pattern
        self.payload = payload
    }

    /// The payload decoded as UTF-8.
    public var text: String { String(decoding: payload, as: UTF8.self) }
}

/// What a subscription delivers, in order.
///
/// The first event is always `.subscribed`, once Redis has acknowledged every channel and
/// pattern: read the state that the messages update *then*, not before (a message published
/// before the acknowledgement is lost). After that: messages, and — whenever messages may have
/// been lost — `.disconnected` when the connection breaks and `.mayHaveMissedMessages` once it
/// is subscribed again, which is the consumer's cue to re-read that state.
public enum RedisSubscriptionEvent: Sendable, Hashable {
    /// Every channel and pattern is subscribed, for the first time.
    case subscribed
    case message(RedisPubSubMessage)
    /// The connection broke or could not be made; messages published now are being missed.
    /// The subscription keeps reconnecting with backoff.
    case disconnected(RedisError)
    /// Subscribed again after a disconnect, or the consumer fell behind and messages were
    /// dropped: anything may have been missed, so re-read the state.
    case mayHaveMissedMessages(reason: String)
}
