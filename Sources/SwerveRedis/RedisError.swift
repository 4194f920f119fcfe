/// An error from the Redis client, with a message a user can act on.
///
/// Errors are compared by ``code``; the ``message`` is for people and says what failed,
/// where, and (when it can) what to do about it — for example
/// `cannot connect to Redis at 127.0.0.1:6379: Connection refused`.
public struct RedisError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added; switch with a default.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The configuration (a URL, a password source, a timeout) is invalid.
        public static let invalidConfiguration = Code("invalidConfiguration")
        /// A connection could not be established (refused, unreachable, DNS, connect timeout).
        public static let connectFailed = Code("connectFailed")
        /// The server refused the credentials (AUTH) or the database (SELECT).
        public static let authenticationFailed = Code("authenticationFailed")
        /// No reply arrived within the command timeout; the connection was dropped.
        public static let timedOut = Code("timedOut")
        /// The connection broke while a command was in flight; it may or may not have run.
        public static let connectionLost = Code("connectionLost")
        /// The server is known to be unreachable and the next reconnect attempt is not due yet:
        /// the command was not sent.
        public static let unavailable = Code("unavailable")
        /// The server answered the command with an error reply (`WRONGTYPE`, `NOSCRIPT`, …).
        public static let server = Code("server")
        /// The reply did not have the shape the caller expected.
        public static let unexpectedReply = Code("unexpectedReply")
        /// The client or subscriber was closed; nothing more can be sent through it.
        public static let closed = Code("closed")
    }

    public var code: Code
    /// A complete sentence for a person: what failed and why.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// True when the command certainly did not reach the server, so retrying it cannot apply
    /// it twice.
    public var commandWasNotSent: Bool {
        code == .unavailable || code == .connectFailed || code == .authenticationFailed
            || code == .closed || code == .invalidConfiguration
    }
}
