import FoundationEssentials

/// Every bound Swerve puts on what a user can ask for, in one place.
///
/// The client checks a request against them before it writes it, and the leader checks it
/// again when it applies it: an entry in the request stream may come from any program, so the
/// leader trusts none. A value outside its bound fails the request with an error naming the
/// field, the value and the bound; nothing stored changes. With every value bounded, the
/// reconciler's arithmetic cannot overflow and a step allocates at most
/// ``replicasInCluster`` replica records. docs/PROTOCOL.md ("Limits") lists them for users.
public enum Limits {
    /// Backends in a cluster (deleting ones included until their replicas stopped).
    public static let backends = 1_000
    /// `numReplicas` of one backend.
    public static let replicasPerBackend = 0...10_000
    /// The sum of `numReplicas` over every live backend.
    public static let replicasInCluster = 100_000
    /// `maxConcurrentQueries`: requests a router keeps in flight on one replica.
    public static let maxConcurrentQueries = 1...100_000
    /// `maxSurge` and `maxUnavailable` given as a count.
    public static let budgetCount = 0...10_000
    /// `maxSurge` and `maxUnavailable` given as a percentage.
    public static let budgetPercent = 0...100
    /// `gracefulShutdownTimeoutS` and `gracefulShutdownWaitLoopS`, in seconds (an hour).
    public static let shutdownSeconds: ClosedRange<Double> = 0...3_600
    /// `upstreamTimeoutS`, in seconds (a day: long polls and streams stay possible).
    public static let upstreamTimeoutSeconds: ClosedRange<Double> = 0.01...86_400
    /// Levels of arrays and objects in any JSON a process reads from Redis or a user (a
    /// document, an entry, a checkpoint): deeper is refused before decoding (``JSONNesting``).
    public static let jsonNesting = 64
    /// Levels of arrays and objects in a `userConfig`: it is embedded a few levels deep in
    /// requests, checkpoints and replica configs, which must stay under ``jsonNesting``.
    public static let userConfigNesting = 32
    /// Seconds an autoscaling decision may wait (`upscaleDelayS`, `downscaleDelayS`).
    public static let autoscalingDelaySeconds: ClosedRange<Double> = 0...86_400
    /// Seconds the load is averaged over (`lookBackPeriodS`).
    public static let lookBackSeconds: ClosedRange<Double> = 0.1...3_600
    /// Seconds between a router's load reports (`metricsIntervalS`).
    public static let metricsIntervalSeconds: ClosedRange<Double> = 0.05...60
    /// How far one autoscaling decision may go (`upscalingFactor`, `downscalingFactor`).
    public static let scalingFactor: ClosedRange<Double> = 0...100
    /// Characters in a backend tag.
    public static let tagLength = 100
    /// Characters in a route prefix.
    public static let routePrefixLength = 256
    /// Bytes of a backend's `userConfig`, encoded as JSON.
    public static let userConfigBytes = 64 * 1024
    /// Bytes of a built-in handler's options, encoded as JSON.
    public static let builtinOptionsBytes = 64 * 1024
    /// Arguments of a command workload.
    public static let commandArguments = 256
    /// Environment variables of a command workload.
    public static let environmentVariables = 256
    /// Bytes of a command's arguments and environment together (names, values).
    public static let commandBytes = 64 * 1024
    /// Characters in a health path.
    public static let healthPathLength = 256
    /// `resources.cpu` of one replica.
    public static let cpu: ClosedRange<Double> = 0...1_024
    /// `resources.memoryBytes` of one replica (64 TiB).
    public static let memoryBytes: ClosedRange<Int64> = 0...(64 << 40)
    /// Each amount in `resources.custom`.
    public static let customAmount: ClosedRange<Double> = 0...1_000_000
    /// Names in `resources.custom`.
    public static let customResources = 32
    /// Characters in a custom resource's name.
    public static let customResourceNameLength = 64
    /// Characters in a goal id (clients use UUIDs: 36).
    public static let goalLength = 128
}

extension Validator {
    /// Checks that `value` lies in `range`: "must be between 1 and 100000, got 0".
    mutating func check<Value: Comparable>(_ value: Value, in range: ClosedRange<Value>, _ field: String) {
        check(range.contains(value), field, "must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
    }

    /// Checks a floating-point `value` (seconds, CPUs, amounts): finite and in `range` (NaN and
    /// ±∞ are refused by name).
    mutating func check(finite value: Double, in range: ClosedRange<Double>, _ field: String) {
        check(value.isFinite && range.contains(value), field,
              "must be a finite number between \(formatNumber(range.lowerBound)) and \(formatNumber(range.upperBound)), got \(value)")
    }

    /// Checks that `text` has at most `limit` characters.
    mutating func check(length text: String, atMost limit: Int, _ field: String) {
        let count = text.count
        check(count <= limit, field, "must be at most \(limit) characters, got \(count)")
    }

    /// Checks that `value`, encoded as JSON, takes at most `limit` bytes.
    mutating func check(encodedSize value: some Encodable, atMost limit: Int, _ field: String) {
        let size = (try? JSONEncoder().encode(value).count) ?? Int.max
        check(size <= limit, field, "must take at most \(limit) bytes as JSON, got \(size)")
    }
}

extension FixedWidthInteger where Self: SignedInteger {
    /// `self + other`, or `max`/`min` where it would overflow.
    public func addingSaturated(_ other: Self) -> Self {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }

    /// `self × other`, or `max`/`min` where it would overflow.
    public func multipliedSaturated(by other: Self) -> Self {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? ((self < 0) == (other < 0) ? .max : .min) : product
    }
}
