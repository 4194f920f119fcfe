public import SwerveErrors

/// An error from the Redis client, with a message a user can act on.
///
/// Errors are compared by ``code``; the ``message`` is for people and says what failed,
/// where, and (when it can) what to do about it — for example
/// `cannot connect to Redis at 127.0.0.1:6379: Connection refused`.
public typealias RedisError = DomainError<RedisErrorDomain>

/// The codes of ``RedisError``.
public enum RedisErrorDomain {}

extension ErrorCode where Domain == RedisErrorDomain {
    /// The configuration (a URL, a password source, a timeout) is invalid.
    public static let invalidConfiguration = Self("invalidConfiguration")
    /// A connection could not be established (refused, unreachable, DNS, connect timeout).
    public static let connectFailed = Self("connectFailed")
    /// The server refused the credentials (AUTH) or the database (SELECT).
    public static let authenticationFailed = Self("authenticationFailed")
    /// No reply arrived within the command timeout; the connection was dropped.
    public static let timedOut = Self("timedOut")
    /// The connection broke while a command was in flight; it may or may not have run.
    public static let connectionLost = Self("connectionLost")
    /// The command did nothing and may be sent again later: the server is known to be
    /// unreachable and the next reconnect attempt is not due yet (it was not sent), or the
    /// server refused it while its store fails over (`NOREPLICAS`, `READONLY`, …).
    public static let unavailable = Self("unavailable")
    /// The server answered the command with an error reply (`WRONGTYPE`, `NOSCRIPT`, …).
    public static let server = Self("server")
    /// The client or subscriber was closed; nothing more can be sent through it.
    public static let closed = Self("closed")
}
