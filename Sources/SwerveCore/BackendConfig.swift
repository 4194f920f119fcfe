/// How a backend runs: how many replicas, how much each takes at once, how it shuts down,
/// where routers send it traffic, and how fast a rolling update may go.
public struct BackendConfig: Sendable, Hashable, Codable {
    /// The target replica count (≥ 0); not used when ``autoscaling`` is set.
    public var numReplicas: Int
    /// When set, the leader chooses the replica count from the load (``Autoscaler``); a spec
    /// gives either this or `numReplicas`.
    public var autoscaling: AutoscalingConfig?
    /// Requests a router may have in flight on one replica (≥ 1).
    public var maxConcurrentQueries: Int
    /// Handed to replicas as is; changing it alone reconfigures them in place.
    public var userConfig: JSONValue?
    /// From the drain request to the force-kill (≥ 0); includes the wait loop.
    public var gracefulShutdownTimeoutS: Double
    /// How long a draining replica keeps accepting stragglers from routers that have not yet
    /// seen it leave (≥ 0).
    public var gracefulShutdownWaitLoopS: Double
    /// The path prefix routers serve this backend under (starts with `/`, unique), if any.
    public var routePrefix: String?
    /// How many replicas above the target a rolling update may run.
    public var maxSurge: ReplicaBudget
    /// How many replicas below the target a rolling update may leave unavailable.
    public var maxUnavailable: ReplicaBudget
    /// How long a router waits while nothing moves between it and a replica carrying a request
    /// (no byte of the response, none of the request's body): then the replica's slot is freed
    /// and the client gets `504` (or, once the response began, a cut connection).
    public var upstreamTimeoutS: Double
    /// Whether a router sends an idempotent request (GET, HEAD, OPTIONS, TRACE, PUT, DELETE)
    /// whose replica's connection broke before it answered to another replica (RFC 9110
    /// §9.2.2). Turn it off for a backend whose "idempotent" endpoints are not.
    public var retryIdempotentRequests: Bool

    public init(
        numReplicas: Int = 1,
        maxConcurrentQueries: Int = 100,
        userConfig: JSONValue? = nil,
        gracefulShutdownTimeoutS: Double = 20,
        gracefulShutdownWaitLoopS: Double = 2,
        routePrefix: String? = nil,
        maxSurge: ReplicaBudget = .percent(25),
        maxUnavailable: ReplicaBudget = .percent(25),
        upstreamTimeoutS: Double = 60,
        retryIdempotentRequests: Bool = true,
        autoscaling: AutoscalingConfig? = nil
    ) {
        self.numReplicas = numReplicas
        self.autoscaling = autoscaling
        self.maxConcurrentQueries = maxConcurrentQueries
        self.userConfig = userConfig
        self.gracefulShutdownTimeoutS = gracefulShutdownTimeoutS
        self.gracefulShutdownWaitLoopS = gracefulShutdownWaitLoopS
        self.routePrefix = routePrefix
        self.maxSurge = maxSurge
        self.maxUnavailable = maxUnavailable
        self.upstreamTimeoutS = upstreamTimeoutS
        self.retryIdempotentRequests = retryIdempotentRequests
    }

    private enum CodingKeys: String, CodingKey {
        case numReplicas, maxConcurrentQueries, userConfig, gracefulShutdownTimeoutS, gracefulShutdownWaitLoopS
        case routePrefix, maxSurge, maxUnavailable, upstreamTimeoutS, retryIdempotentRequests, autoscaling
    }

    /// Missing fields take their defaults, so a spec may give only what it changes.
    public init(from decoder: any Decoder) throws {
        let defaults = BackendConfig()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        autoscaling = try c.decodeIfPresent(AutoscalingConfig.self, forKey: .autoscaling)
        if autoscaling != nil, c.contains(.numReplicas) {
            throw DecodingError.dataCorruptedError(forKey: .numReplicas, in: c,
                                                   debugDescription: "a backend has either numReplicas or autoscaling, not both: remove one")
        }
        numReplicas = try c.decodeIfPresent(Int.self, forKey: .numReplicas) ?? defaults.numReplicas
        maxConcurrentQueries = try c.decodeIfPresent(Int.self, forKey: .maxConcurrentQueries) ?? defaults.maxConcurrentQueries
        userConfig = try c.decodeIfPresent(JSONValue.self, forKey: .userConfig)
        gracefulShutdownTimeoutS = try c.decodeIfPresent(Double.self, forKey: .gracefulShutdownTimeoutS) ?? defaults.gracefulShutdownTimeoutS
        gracefulShutdownWaitLoopS = try c.decodeIfPresent(Double.self, forKey: .gracefulShutdownWaitLoopS) ?? defaults.gracefulShutdownWaitLoopS
        routePrefix = try c.decodeIfPresent(String.self, forKey: .routePrefix)
        maxSurge = try c.decodeIfPresent(ReplicaBudget.self, forKey: .maxSurge) ?? defaults.maxSurge
        maxUnavailable = try c.decodeIfPresent(ReplicaBudget.self, forKey: .maxUnavailable) ?? defaults.maxUnavailable
        upstreamTimeoutS = try c.decodeIfPresent(Double.self, forKey: .upstreamTimeoutS) ?? defaults.upstreamTimeoutS
        retryIdempotentRequests = try c.decodeIfPresent(Bool.self, forKey: .retryIdempotentRequests) ?? defaults.retryIdempotentRequests
    }

    /// An autoscaled config is written without `numReplicas`, so it reads back as it was given.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if let autoscaling {
            try c.encode(autoscaling, forKey: .autoscaling)
        } else {
            try c.encode(numReplicas, forKey: .numReplicas)
        }
        try c.encode(maxConcurrentQueries, forKey: .maxConcurrentQueries)
        try c.encodeIfPresent(userConfig, forKey: .userConfig)
        try c.encode(gracefulShutdownTimeoutS, forKey: .gracefulShutdownTimeoutS)
        try c.encode(gracefulShutdownWaitLoopS, forKey: .gracefulShutdownWaitLoopS)
        try c.encodeIfPresent(routePrefix, forKey: .routePrefix)
        try c.encode(maxSurge, forKey: .maxSurge)
        try c.encode(maxUnavailable, forKey: .maxUnavailable)
        try c.encode(upstreamTimeoutS, forKey: .upstreamTimeoutS)
        try c.encode(retryIdempotentRequests, forKey: .retryIdempotentRequests)
    }

    /// Every problem, each naming its field under `prefix`.
    public func problems(prefix: String = "config") -> [ValidationProblem] {
        var v = Validator()
        if let autoscaling {
            v.add(autoscaling.problems(prefix: "\(prefix).autoscaling"))
        } else {
            v.check(numReplicas, in: Limits.replicasPerBackend, "\(prefix).numReplicas")
        }
        v.check(maxConcurrentQueries, in: Limits.maxConcurrentQueries, "\(prefix).maxConcurrentQueries")
        v.check(finite: gracefulShutdownTimeoutS, in: Limits.shutdownSeconds, "\(prefix).gracefulShutdownTimeoutS")
        v.check(finite: gracefulShutdownWaitLoopS, in: Limits.shutdownSeconds, "\(prefix).gracefulShutdownWaitLoopS")
        v.check(finite: upstreamTimeoutS, in: Limits.upstreamTimeoutSeconds, "\(prefix).upstreamTimeoutS")
        if let route = routePrefix {
            v.check(route.hasPrefix("/"), "\(prefix).routePrefix", "must start with \"/\", got \"\(route.prefix(Limits.routePrefixLength))\"")
            v.check(length: route, atMost: Limits.routePrefixLength, "\(prefix).routePrefix")
            v.check(!route.contains(where: { $0 == " " || $0 == "?" || $0 == "#" || $0.isNewline || ($0.asciiValue.map { $0 < 0x20 || $0 == 0x7F } ?? false) }),
                    "\(prefix).routePrefix", "must not contain spaces, control characters, \"?\" or \"#\", got \"\(route.prefix(Limits.routePrefixLength))\"")
        }
        if let userConfig {
            v.check(encodedSize: userConfig, atMost: Limits.userConfigBytes, "\(prefix).userConfig")
            let depth = JSONNesting.depth(of: userConfig)
            v.check(depth <= Limits.userConfigNesting, "\(prefix).userConfig", "must nest at most \(Limits.userConfigNesting) levels of arrays and objects, got \(depth)")
        }
        v.add(maxSurge.problems(field: "\(prefix).maxSurge"))
        v.add(maxUnavailable.problems(field: "\(prefix).maxUnavailable"))
        v.check(!(maxSurge.isZero && maxUnavailable.isZero), "\(prefix).maxUnavailable", "maxSurge and maxUnavailable cannot both be 0: a rolling update could never make progress")
        return v.problems
    }

    /// The most replicas this config may run: `numReplicas`, or the autoscaling bound.
    public var mostReplicas: Int { autoscaling?.maxReplicas ?? numReplicas }

    /// What routers are told of this config.
    public var routed: RoutedBackendConfig {
        RoutedBackendConfig(routePrefix: routePrefix, maxConcurrentQueries: maxConcurrentQueries,
                            upstreamTimeoutS: upstreamTimeoutS, retryIdempotentRequests: retryIdempotentRequests,
                            loadReportIntervalS: autoscaling?.metricsIntervalS)
    }

    /// The surge and unavailability a rolling update to `target` replicas may use: surge rounds
    /// up and unavailability down, as in Kubernetes; if both come to 0, surge is 1.
    func rollingBudget(target: Int) -> (surge: Int, unavailable: Int) {
        var surge = maxSurge.count(of: target, roundingUp: true)
        let unavailable = maxUnavailable.count(of: target, roundingUp: false)
        if surge == 0 && unavailable == 0 { surge = 1 }
        return (surge, unavailable)
    }
}

/// A replica count given absolutely (`2`) or as a percentage of the target (`"25%"`).
public enum ReplicaBudget: Sendable, Hashable, Codable, CustomStringConvertible {
    case count(Int)
    case percent(Int)

    var isZero: Bool {
        switch self {
        case .count(let n): return n == 0
        case .percent(let p): return p == 0
        }
    }

    /// The count this budget allows for `target` replicas; saturating, so even values no
    /// validation let through cannot trap.
    func count(of target: Int, roundingUp: Bool) -> Int {
        switch self {
        case .count(let n): return n
        case .percent(let p):
            let product = target.multipliedSaturated(by: p)
            return roundingUp ? product.addingSaturated(99) / 100 : product / 100
        }
    }

    func problems(field: String) -> [ValidationProblem] {
        var v = Validator()
        switch self {
        case .count(let n): v.check(n, in: Limits.budgetCount, field)
        case .percent(let p):
            v.check(Limits.budgetPercent.contains(p), field, "must be between 0% and 100%, got \(p)%")
        }
        return v.problems
    }

    public var description: String {
        switch self {
        case .count(let n): return "\(n)"
        case .percent(let p): return "\(p)%"
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let n = try? container.decode(Int.self) {
            self = .count(n)
            return
        }
        let text = try container.decode(String.self)
        guard text.hasSuffix("%"), let p = Int(text.dropLast()) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected a count such as 2 or a percentage such as \"25%\", got \"\(text)\"")
        }
        self = .percent(p)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .count(let n): try container.encode(n)
        case .percent(let p): try container.encode("\(p)%")
        }
    }
}

/// The fields an update request changes; nil leaves a field as it is. `userConfig` and
/// `routePrefix` use ``FieldUpdate`` so that "set to nothing" differs from "leave alone".
public struct BackendConfigPatch: Sendable, Hashable, Codable {
    public var numReplicas: Int?
    public var maxConcurrentQueries: Int?
    public var userConfig: FieldUpdate<JSONValue>?
    public var gracefulShutdownTimeoutS: Double?
    public var gracefulShutdownWaitLoopS: Double?
    public var routePrefix: FieldUpdate<String>?
    public var maxSurge: ReplicaBudget?
    public var maxUnavailable: ReplicaBudget?

    public init(
        numReplicas: Int? = nil, maxConcurrentQueries: Int? = nil, userConfig: FieldUpdate<JSONValue>? = nil,
        gracefulShutdownTimeoutS: Double? = nil, gracefulShutdownWaitLoopS: Double? = nil,
        routePrefix: FieldUpdate<String>? = nil, maxSurge: ReplicaBudget? = nil, maxUnavailable: ReplicaBudget? = nil
    ) {
        self.numReplicas = numReplicas
        self.maxConcurrentQueries = maxConcurrentQueries
        self.userConfig = userConfig
        self.gracefulShutdownTimeoutS = gracefulShutdownTimeoutS
        self.gracefulShutdownWaitLoopS = gracefulShutdownWaitLoopS
        self.routePrefix = routePrefix
        self.maxSurge = maxSurge
        self.maxUnavailable = maxUnavailable
    }

    /// The problems of the fields this patch sets, judged on their own (a route clash or an
    /// unknown tag needs the stored config: the leader finds those).
    public func problems(prefix: String = "config") -> [ValidationProblem] {
        var given: Set<String> = []
        if numReplicas != nil { given.insert("numReplicas") }
        if maxConcurrentQueries != nil { given.insert("maxConcurrentQueries") }
        if userConfig != nil { given.insert("userConfig") }
        if gracefulShutdownTimeoutS != nil { given.insert("gracefulShutdownTimeoutS") }
        if gracefulShutdownWaitLoopS != nil { given.insert("gracefulShutdownWaitLoopS") }
        if routePrefix != nil { given.insert("routePrefix") }
        if maxSurge != nil { given.insert("maxSurge") }
        if maxUnavailable != nil { given.insert("maxUnavailable") }
        return applied(to: BackendConfig()).problems(prefix: prefix).filter { given.contains(String($0.field.dropFirst(prefix.count + 1))) }
    }

    /// `config` with the given fields replaced.
    public func applied(to config: BackendConfig) -> BackendConfig {
        var merged = config
        if let numReplicas { merged.numReplicas = numReplicas }
        if let maxConcurrentQueries { merged.maxConcurrentQueries = maxConcurrentQueries }
        if let userConfig { merged.userConfig = userConfig.value }
        if let gracefulShutdownTimeoutS { merged.gracefulShutdownTimeoutS = gracefulShutdownTimeoutS }
        if let gracefulShutdownWaitLoopS { merged.gracefulShutdownWaitLoopS = gracefulShutdownWaitLoopS }
        if let routePrefix { merged.routePrefix = routePrefix.value }
        if let maxSurge { merged.maxSurge = maxSurge }
        if let maxUnavailable { merged.maxUnavailable = maxUnavailable }
        return merged
    }
}

/// A new value for an optional field: `.set(value)` or `.clear`.
public enum FieldUpdate<Value: Sendable & Hashable & Codable>: Sendable, Hashable, Codable {
    case set(Value)
    case clear

    var value: Value? {
        if case .set(let value) = self { return value }
        return nil
    }
}
