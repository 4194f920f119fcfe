/// How an autoscaled backend's replica count follows its load: the `autoscaling` section of a
/// backend's config (names as Ray Serve's, in camelCase). A backend has either
/// `numReplicas` or this.
///
/// The leader keeps `targetOngoingRequests` requests (in flight plus queued, as routers report
/// them) per replica on average over `lookBackPeriodS`, within `minReplicas…maxReplicas`; a
/// change up waits `upscaleDelayS`, a change down `downscaleDelayS`, and each decision moves
/// only a `…Factor` of the way. Defaults are tighter than Ray Serve's (whose loop runs every
/// 10 s): a report here costs a router one Redis command per interval.
public struct AutoscalingConfig: Sendable, Hashable, Codable {
    /// The fewest replicas (0 lets an idle backend stop every replica).
    public var minReplicas: Int
    /// The most replicas (≥ 1 and ≥ `minReplicas`).
    public var maxReplicas: Int
    /// How many replicas a new backend starts with (within the bounds); `minReplicas` if unset.
    public var initialReplicas: Int?
    /// Requests in flight plus queued that each replica should carry on average (> 0).
    public var targetOngoingRequests: Double
    /// How long the load must call for more replicas before they are added.
    public var upscaleDelayS: Double
    /// How long the load must call for fewer replicas before any is stopped.
    public var downscaleDelayS: Double
    /// The window the load is averaged over.
    public var lookBackPeriodS: Double
    /// How often routers report their load (≤ `lookBackPeriodS`).
    public var metricsIntervalS: Double
    /// How much of the way to the load's count an upscale goes (1: all of it).
    public var upscalingFactor: Double
    /// How much of the way to the load's count a downscale goes (1: all of it).
    public var downscalingFactor: Double

    public init(minReplicas: Int = 1, maxReplicas: Int = 10, initialReplicas: Int? = nil, targetOngoingRequests: Double = 2,
                upscaleDelayS: Double = 1, downscaleDelayS: Double = 60, lookBackPeriodS: Double = 5, metricsIntervalS: Double = 0.25,
                upscalingFactor: Double = 1, downscalingFactor: Double = 1) {
        self.minReplicas = minReplicas
        self.maxReplicas = maxReplicas
        self.initialReplicas = initialReplicas
        self.targetOngoingRequests = targetOngoingRequests
        self.upscaleDelayS = upscaleDelayS
        self.downscaleDelayS = downscaleDelayS
        self.lookBackPeriodS = lookBackPeriodS
        self.metricsIntervalS = metricsIntervalS
        self.upscalingFactor = upscalingFactor
        self.downscalingFactor = downscalingFactor
    }

    private enum CodingKeys: String, CodingKey, CaseIterable {
        case minReplicas, maxReplicas, initialReplicas, targetOngoingRequests, upscaleDelayS, downscaleDelayS
        case lookBackPeriodS, metricsIntervalS, upscalingFactor, downscalingFactor
    }

    /// Missing fields take their defaults.
    public init(from decoder: any Decoder) throws {
        let d = AutoscalingConfig()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        minReplicas = try c.decodeIfPresent(Int.self, forKey: .minReplicas) ?? d.minReplicas
        maxReplicas = try c.decodeIfPresent(Int.self, forKey: .maxReplicas) ?? d.maxReplicas
        initialReplicas = try c.decodeIfPresent(Int.self, forKey: .initialReplicas)
        targetOngoingRequests = try c.decodeIfPresent(Double.self, forKey: .targetOngoingRequests) ?? d.targetOngoingRequests
        upscaleDelayS = try c.decodeIfPresent(Double.self, forKey: .upscaleDelayS) ?? d.upscaleDelayS
        downscaleDelayS = try c.decodeIfPresent(Double.self, forKey: .downscaleDelayS) ?? d.downscaleDelayS
        lookBackPeriodS = try c.decodeIfPresent(Double.self, forKey: .lookBackPeriodS) ?? d.lookBackPeriodS
        metricsIntervalS = try c.decodeIfPresent(Double.self, forKey: .metricsIntervalS) ?? d.metricsIntervalS
        upscalingFactor = try c.decodeIfPresent(Double.self, forKey: .upscalingFactor) ?? d.upscalingFactor
        downscalingFactor = try c.decodeIfPresent(Double.self, forKey: .downscalingFactor) ?? d.downscalingFactor
    }

    /// The fields a spec may give (for the spec parser's "unknown field" check).
    public static let fields = CodingKeys.allCases.map(\.stringValue)

    /// Every problem, each naming its field under `prefix`.
    public func problems(prefix: String = "config.autoscaling") -> [ValidationProblem] {
        var v = Validator()
        v.check(minReplicas, in: Limits.replicasPerBackend, "\(prefix).minReplicas")
        v.check(maxReplicas, in: 1...Limits.replicasPerBackend.upperBound, "\(prefix).maxReplicas")
        v.check(maxReplicas >= minReplicas, "\(prefix).maxReplicas", "must be at least minReplicas (\(minReplicas)), got \(maxReplicas)")
        if let initialReplicas {
            v.check(initialReplicas >= minReplicas && initialReplicas <= maxReplicas, "\(prefix).initialReplicas",
                    "must be between minReplicas and maxReplicas (\(minReplicas)…\(maxReplicas)), got \(initialReplicas)")
        }
        v.check(targetOngoingRequests > 0, "\(prefix).targetOngoingRequests", "must be greater than 0, got \(targetOngoingRequests)")
        v.check(finite: targetOngoingRequests, in: 0...Double(Limits.maxConcurrentQueries.upperBound), "\(prefix).targetOngoingRequests")
        v.check(finite: upscaleDelayS, in: Limits.autoscalingDelaySeconds, "\(prefix).upscaleDelayS")
        v.check(finite: downscaleDelayS, in: Limits.autoscalingDelaySeconds, "\(prefix).downscaleDelayS")
        v.check(finite: lookBackPeriodS, in: Limits.lookBackSeconds, "\(prefix).lookBackPeriodS")
        v.check(finite: metricsIntervalS, in: Limits.metricsIntervalSeconds, "\(prefix).metricsIntervalS")
        if metricsIntervalS.isFinite, lookBackPeriodS.isFinite {
            v.check(metricsIntervalS <= lookBackPeriodS, "\(prefix).metricsIntervalS",
                    "must be at most lookBackPeriodS (\(formatNumber(lookBackPeriodS))), got \(formatNumber(metricsIntervalS)): a window needs reports in it")
        }
        for (factor, name) in [(upscalingFactor, "upscalingFactor"), (downscalingFactor, "downscalingFactor")] {
            v.check(factor > 0, "\(prefix).\(name)", "must be greater than 0, got \(factor)")
            v.check(finite: factor, in: Limits.scalingFactor, "\(prefix).\(name)")
        }
        return v.problems
    }

    /// The count a backend starts with when it becomes autoscaled: `initialReplicas` for a new
    /// backend, otherwise what it runs now, brought within the bounds.
    func startingCount(running: Int?) -> Int {
        if let running { return min(max(running, minReplicas), maxReplicas) }
        return initialReplicas ?? minReplicas
    }
}
