public import SwerveCore

/// `swerve:{C}:router:{ID}:traffic` — what one router answered, per backend, since it
/// started: cumulative counts, so a reader's rate is the difference between two reports of
/// the same router (its id is random per process: a restarted router reports as a new one).
///
/// Guarantees (checked by ``problems``, which readers apply): at most ``maxBackends`` backends,
/// one count per bucket of ``bucketBounds`` plus one above the last, every count within
/// 0…``maxCount``.
public struct RouterTrafficReport: ProtocolDocument {
    public static let currentSchemaVersion = 1
    /// Latency bucket upper bounds, in seconds (the router's histogram's).
    public static let bucketBounds: [Double] = [0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5]
    public static let maxBackends = 10_000
    /// The largest count a report may hold (2^50, a million requests a second for 35 years):
    /// sums over a thousand routers' buckets cannot overflow.
    public static let maxCount = 1 << 50

    public struct Backend: Sendable, Hashable, Codable {
        public var requests: Int
        /// Answers with a 5xx status (the router's own 502/503/504 included).
        public var errors: Int
        /// Requests by latency: `buckets[i]` took at most `bucketBounds[i]` (and more than the
        /// bound before); the last counts those above every bound.
        public var buckets: [Int]

        public init(requests: Int, errors: Int, buckets: [Int]) {
            self.requests = requests
            self.errors = errors
            self.buckets = buckets
        }
    }

    public var schemaVersion = Self.currentSchemaVersion
    public var router: String
    /// When the counts were taken, by the router's clock.
    public var at: Timestamp
    public var backends: [String: Backend]

    public init(router: String, at: Timestamp, backends: [String: Backend]) {
        self.router = router
        self.at = at
        self.backends = backends
    }

    /// What is wrong with a report read from Redis, nil when nothing is.
    public var problems: String? {
        if backends.count > Self.maxBackends { return "\(backends.count) backends, more than \(Self.maxBackends)" }
        for (tag, backend) in backends {
            if backend.buckets.count != Self.bucketBounds.count + 1 {
                return "backend \(tag.prefix(100)): \(backend.buckets.count) latency buckets, not \(Self.bucketBounds.count + 1)"
            }
            let counts = [backend.requests, backend.errors] + backend.buckets
            if counts.contains(where: { $0 < 0 || $0 > Self.maxCount }) {
                return "backend \(tag.prefix(100)): a count below 0 or above \(Self.maxCount)"
            }
        }
        return nil
    }
}
