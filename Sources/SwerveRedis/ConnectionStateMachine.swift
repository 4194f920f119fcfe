import SwerveErrors
/// Decides, for one command connection, whether to use the connection, (re)connect, or fail
/// fast — the reconnect-with-backoff policy as a pure value. No I/O, no clock reads: every
/// event carries `now`, read from a monotonic clock by the caller.
///
/// States:
/// - `idle`: never connected, or disconnected with the next attempt due now;
/// - `connected`;
/// - `backingOff`: the last attempt failed; commands fail at once (``RedisError/Code/unavailable``)
///   until `retryAt`, so a caller never hangs on a server that is known to be away;
/// - `closed`: everything fails with ``RedisError/Code/closed``.
///
/// After a connection that worked is lost, the first reconnect is attempted at once (the server
/// may already be back, as after a failover); each failed attempt then doubles the wait up to
/// the backoff's maximum.
struct ConnectionStateMachine: Sendable {
    enum State: Sendable, Equatable {
        case idle
        case connected
        case backingOff(retryAt: ContinuousClock.Instant, failures: Int, lastError: RedisError)
        case closed
    }

    enum CommandAction: Sendable, Equatable {
        /// Send on the open connection.
        case send
        /// Open a connection first, then send; report the outcome with `connectSucceeded` or `connectFailed`.
        case connectThenSend
        /// Do not send; fail the command with this error.
        case fail(RedisError)
    }

    private(set) var state: State = .idle
    let backoff: ReconnectBackoff
    let serverDescription: String

    init(backoff: ReconnectBackoff, serverDescription: String) {
        self.backoff = backoff
        self.serverDescription = serverDescription
    }

    /// Commands are waiting to be sent.
    mutating func commandsArrived(now: ContinuousClock.Instant) -> CommandAction {
        switch state {
        case .connected:
            return .send
        case .idle:
            return .connectThenSend
        case .backingOff(let retryAt, _, let lastError):
            if now >= retryAt { return .connectThenSend }
            let wait = retryAt - now
            return .fail(RedisError(.unavailable, "Redis at \(serverDescription) is unreachable (\(lastError.message)); not sent, next reconnect attempt in \(wait.milliseconds) ms"))
        case .closed:
            return .fail(RedisError(.closed, "the Redis client for \(serverDescription) is closed"))
        }
    }

    mutating func connectSucceeded() {
        guard state != .closed else { return }
        state = .connected
    }

    /// A connect attempt failed; `random` in 0...1 feeds the backoff's jitter.
    mutating func connectFailed(_ error: RedisError, now: ContinuousClock.Instant, random: Double) {
        let failures: Int
        switch state {
        case .backingOff(_, let previous, _): failures = previous + 1
        case .closed: return
        default: failures = 1
        }
        state = .backingOff(retryAt: now + backoff.delay(afterFailures: failures, random: random), failures: failures, lastError: error)
    }

    /// The open connection broke (I/O error, EOF, timeout). The next command reconnects at once.
    mutating func connectionLost() {
        guard state != .closed else { return }
        state = .idle
    }

    mutating func closeRequested() {
        state = .closed
    }
}

extension Duration {
    /// Whole milliseconds, rounded up, for messages.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    }

    var timeval: (seconds: Int, microseconds: Int) {
        let (seconds, attoseconds) = components
        return (Int(seconds), Int(attoseconds / 1_000_000_000_000))
    }
}
