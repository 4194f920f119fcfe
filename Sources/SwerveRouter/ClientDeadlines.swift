import NIOCore
import SwerveCore

/// When a client connection has waited too long, and whether its request head grew too large.
/// Pure: the ``ClientGuard`` feeds it bytes, heads and finished requests with the time, and
/// asks it when to look again.
///
/// Phases: a connection starts reading a head (the header timeout runs from the accept, so a
/// client that connects and sends nothing is closed as a slow one); once the head arrived the
/// request is the exchange's business (the upstream timeout bounds it); when the response
/// ended the connection is idle until the first byte of the next request, which starts a new
/// head timeout.
struct ClientDeadlines: Equatable {
    enum Phase: Equatable {
        /// Kept alive between requests since `since`.
        case idle(since: NIODeadline)
        /// The first byte of a head came at `since` (or the connection opened then); `bytes` so far.
        case readingHead(since: NIODeadline, bytes: Int)
        /// A request is being proxied.
        case inRequest
    }

    /// Which limit a connection ran into.
    enum Expiry: String, Equatable {
        /// No request began within the idle timeout.
        case idle = "idle_timeout"
        /// A request head did not arrive in full within the header timeout.
        case header = "header_timeout"
    }

    let idleTimeout: TimeAmount
    let headerTimeout: TimeAmount
    let maxHeadBytes: Int
    private(set) var phase: Phase

    init(opened now: NIODeadline, idleTimeout: TimeAmount, headerTimeout: TimeAmount, maxHeadBytes: Int) {
        self.idleTimeout = idleTimeout
        self.headerTimeout = headerTimeout
        self.maxHeadBytes = maxHeadBytes
        phase = .readingHead(since: now, bytes: 0)
    }

    /// `count` bytes came from the client; returns whether a new head began (worth a timer).
    mutating func received(_ count: Int, at now: NIODeadline) -> Bool {
        switch phase {
        case .idle:
            phase = .readingHead(since: now, bytes: count)
            return true
        case .readingHead(let since, let bytes):
            phase = .readingHead(since: since, bytes: bytes.addingSaturated(count))
            return false
        case .inRequest:
            return false // a body, or a pipelined request behind this one
        }
    }

    mutating func headReceived() {
        phase = .inRequest
    }

    mutating func requestFinished(at now: NIODeadline) {
        phase = .idle(since: now)
    }

    /// Whether more bytes than the limit came without a complete head.
    var headTooLarge: Bool {
        if case .readingHead(_, let bytes) = phase { return bytes > maxHeadBytes }
        return false
    }

    /// The limit passed by `now`, if any.
    func expired(at now: NIODeadline) -> Expiry? {
        switch phase {
        case .idle(let since): return since + idleTimeout <= now ? .idle : nil
        case .readingHead(let since, _): return since + headerTimeout <= now ? .header : nil
        case .inRequest: return nil
        }
    }

    /// When to look again, nil while a request is proxied. Never after the deadline; for an
    /// idle connection first a header timeout after it went idle, so that a keep-alive
    /// client's next request finds a timer already armed early enough and needs no new one.
    func wakeUp(after now: NIODeadline) -> NIODeadline? {
        switch phase {
        case .idle(let since):
            let early = since + min(idleTimeout, headerTimeout)
            return early > now ? early : since + idleTimeout
        case .readingHead(let since, _):
            return since + headerTimeout
        case .inRequest:
            return nil
        }
    }
}
