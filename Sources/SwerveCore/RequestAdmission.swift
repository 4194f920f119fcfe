/// What the leader records before it applies requests: the range of the batch it is about to
/// apply, and how many times a leader has started applying the batch's first request. Kept in
/// Redis (fenced) so that it outlives a leader that crashes while applying.
public struct RequestAttempt: Sendable, Hashable, Codable {
    /// The first request of the batch; `attempts` counts attempts at it.
    public var first: RequestID
    /// The last request of the batch that was first attempted; until the cursor passes it,
    /// requests are applied one at a time.
    public var last: RequestID
    public var attempts: Int

    public init(first: RequestID, last: RequestID, attempts: Int) {
        self.first = first
        self.last = last
        self.attempts = attempts
    }
}

/// Which of the pending requests a step may apply, so that a request that crashes leaders is
/// not applied forever.
///
/// Before a step applies requests, the leader writes a ``RequestAttempt`` naming them. The
/// checkpoint that applies them moves the cursor past `last`, which makes the record stale. A
/// record that is not stale when a step starts therefore means an attempt did not finish: a
/// leader crashed (or its step failed) while applying that batch. Then requests up to `last`
/// are applied one per step, each attempt counted; a request attempted ``maxAttempts`` times
/// is quarantined: refused with the reason, and the stream moves on.
///
/// Guarantees: pure; the cursor never skips a request (what it lets through is a prefix of the
/// pending entries, in stream order); with no failed attempt it lets everything through.
public enum RequestAdmission {
    /// Attempts after which a request is quarantined.
    public static let maxAttempts = 3

    /// What a step applies, what it refuses, and the record to write (fenced) before it
    /// applies anything (nil: nothing to write).
    public struct Decision: Sendable, Hashable {
        public var requests: [Request]
        public var refused: [RefusedRequest]
        public var record: RequestAttempt?
        /// The request quarantined this step (also the last of `refused`), if any.
        public var quarantined: RefusedRequest?
    }

    /// - Parameters:
    ///   - requests: the readable pending requests, in stream order.
    ///   - refused: the unreadable pending entries, in stream order.
    ///   - record: the stored ``RequestAttempt``, if any.
    public static func admit(requests: [Request], refused: [RefusedRequest], record: RequestAttempt?,
                             maxAttempts: Int = maxAttempts) -> Decision {
        guard let first = requests.first else { return Decision(requests: [], refused: refused, record: nil) }
        guard let record, first.id <= record.last else {
            return Decision(requests: requests, refused: refused,
                            record: RequestAttempt(first: first.id, last: requests[requests.count - 1].id, attempts: 1))
        }
        // An attempt at this range did not finish: one request at a time, counted.
        let before = refused.filter { $0.id < first.id }
        let attempted = record.first == first.id ? record.attempts : 0
        if attempted >= maxAttempts {
            let reason = "quarantined after \(attempted) attempts: leaders crashed or failed while applying request \(first.id)"
            let quarantined = RefusedRequest(id: first.id, goal: first.goal, reason: reason)
            return Decision(requests: [], refused: before + [quarantined], record: nil, quarantined: quarantined)
        }
        return Decision(requests: [first], refused: before, record: RequestAttempt(first: first.id, last: record.last, attempts: attempted + 1))
    }
}
