/// What the controller saw since the last step.
///
/// `nodes` is the full current list. `replicas` is sparse: it must hold an entry for every
/// replica whose keys say something new — ready, drained, exited, or a heartbeat that expired
/// (`endpoint == nil` for a RUNNING replica) — and may hold entries for any others (what is
/// true now for them; unchanged facts change nothing). So a controller may pass everything it
/// read, or only what changed; either way a step is idempotent: run twice with the same
/// observations, the second run does nothing. Only the reported replicas are visited, which
/// keeps an idle step over 10,000 replicas well under a millisecond.
public struct Observations: Sendable {
    /// Wall-clock time of the observation.
    public var now: Timestamp
    /// New requests from the stream, in stream order (already-applied ids are skipped).
    public var requests: [Request]
    /// Requests the controller refuses to apply (unreadable or quarantined), in stream order;
    /// their goals fail and the cursor moves past them.
    public var refusedRequests: [RefusedRequest]
    /// Every registered node; a node missing here or not alive is gone.
    public var nodes: [String: NodeInfo]
    /// Per replica tag: what its keys say now, for (at least) every replica with news. A
    /// RUNNING replica reported without an `endpoint` has lost its heartbeat.
    public var replicas: [String: ReplicaObservation]
    /// Seeds the generator that names new replicas.
    public var randomSeed: UInt64
    /// Per autoscaled backend: its load from the routers' reports. A backend missing here
    /// keeps its count (nothing was observed); one with no report has a load of 0.
    public var loads: [String: BackendLoad]

    public init(now: Timestamp, requests: [Request] = [], refusedRequests: [RefusedRequest] = [], nodes: [String: NodeInfo] = [:],
                replicas: [String: ReplicaObservation] = [:], randomSeed: UInt64 = 0, loads: [String: BackendLoad] = [:]) {
        self.loads = loads
        self.now = now
        self.requests = requests
        self.refusedRequests = refusedRequests
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

    public static func ready(_ address: HostPort, pid: Int32? = nil) -> ReplicaObservation {
        ReplicaObservation(endpoint: ReplicaEndpoint(address: address, pid: pid))
    }
}
