/// A host as the leader sees it: what it has and whether its heartbeat is current.
public struct NodeInfo: Sendable, Hashable, Codable {
    public var id: String
    public var total: Resources
    public var alive: Bool

    public init(id: String, total: Resources, alive: Bool = true) {
        self.id = id
        self.total = total
        self.alive = alive
    }
}

/// What the controller saw since the last step. Level-based: `replicas` holds what is true
/// *now* for each replica it has keys for, so running a step twice with the same observations
/// changes nothing.
public struct Observations: Sendable {
    /// Wall-clock time of the observation.
    public var now: Timestamp
    /// New requests from the stream, in stream order (already-applied ids are skipped).
    public var requests: [Request]
    /// Every registered node; a node missing here or not alive is gone.
    public var nodes: [String: NodeInfo]
    /// Per replica tag: what its keys say now. A RUNNING replica with no entry, or with no
    /// `endpoint`, has lost its heartbeat.
    public var replicas: [String: ReplicaObservation]
    /// Seeds the generator that names new replicas.
    public var randomSeed: UInt64

    public init(now: Timestamp, requests: [Request] = [], nodes: [String: NodeInfo] = [:],
                replicas: [String: ReplicaObservation] = [:], randomSeed: UInt64 = 0) {
        self.now = now
        self.requests = requests
        self.nodes = nodes
        self.replicas = replicas
        self.randomSeed = randomSeed
    }
}

/// What a replica's keys say.
public struct ReplicaObservation: Sendable, Hashable {
    /// Set while its ready key (with heartbeat TTL) exists.
    public var endpoint: ReplicaEndpoint?
    /// Its drained key exists.
    public var drained: Bool
    /// Its node agent recorded that the process exited (code or signal).
    public var exit: String?

    public init(endpoint: ReplicaEndpoint? = nil, drained: Bool = false, exit: String? = nil) {
        self.endpoint = endpoint
        self.drained = drained
        self.exit = exit
    }

    public static func ready(_ address: String, pid: Int32? = nil) -> ReplicaObservation {
        ReplicaObservation(endpoint: ReplicaEndpoint(address: address, pid: pid))
    }
}
