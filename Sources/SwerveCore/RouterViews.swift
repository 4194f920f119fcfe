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

/// One backend in the configs view: its route and its per-replica concurrency limit.
public struct RoutedBackendConfig: Sendable, Hashable, Codable {
    public var routePrefix: String?
    public var maxConcurrentQueries: Int

    public init(routePrefix: String?, maxConcurrentQueries: Int) {
        self.routePrefix = routePrefix
        self.maxConcurrentQueries = maxConcurrentQueries
    }
}
