/// The replicas routers may use: exactly the RUNNING ones, per backend. Versions only grow.
public struct RoutingView: Sendable, Hashable, Codable {
    public var version: Int
    public var backends: [String: [RoutedReplica]]

    public init(version: Int, backends: [String: [RoutedReplica]]) {
        self.version = version
        self.backends = backends
    }
}

/// One running replica in the routing view: where routers send its backend's requests.
public struct RoutedReplica: Sendable, Hashable, Codable {
    public var tag: String
    public var address: HostPort
    public var node: String

    public init(tag: String, address: HostPort, node: String) {
        self.tag = tag
        self.address = address
        self.node = node
    }
}

/// What routers need of each backend's config.
public struct BackendConfigsView: Sendable, Hashable, Codable {
    public var version: Int
    public var backends: [String: RoutedBackendConfig]

    public init(version: Int, backends: [String: RoutedBackendConfig]) {
        self.version = version
        self.backends = backends
    }
}

/// One backend in the configs view: its route, its per-replica concurrency limit, how long a
/// router waits on a silent replica and whether idempotent requests may be sent again. The
/// last two are absent from a leader older than them: routers then use the defaults.
public struct RoutedBackendConfig: Sendable, Hashable, Codable {
    public var routePrefix: String?
    public var maxConcurrentQueries: Int
    public var upstreamTimeoutS: Double?
    public var retryIdempotentRequests: Bool?
    /// Set for an autoscaled backend: routers report its load this often (seconds).
    public var loadReportIntervalS: Double?

    public init(routePrefix: String?, maxConcurrentQueries: Int, upstreamTimeoutS: Double? = nil, retryIdempotentRequests: Bool? = nil,
                loadReportIntervalS: Double? = nil) {
        self.routePrefix = routePrefix
        self.maxConcurrentQueries = maxConcurrentQueries
        self.upstreamTimeoutS = upstreamTimeoutS
        self.retryIdempotentRequests = retryIdempotentRequests
        self.loadReportIntervalS = loadReportIntervalS
    }
}
