/// Everything the leader knows: the content of the checkpoint.
///
/// Backends are kept sorted by tag, so every step visits them in the same order and a
/// checkpoint encodes the same way every time.
public struct BackendState: Sendable, Hashable, Codable {
    public internal(set) var backends: [BackendRecord]
    /// Replicas of deleted incarnations that are still stopping.
    public internal(set) var retiredReplicas: [ReplicaRecord]
    /// The last request applied; requests at or before it are never applied again.
    public internal(set) var lastAppliedRequest: RequestID?
    /// How many requests were applied, ever: each exactly once, so it equals the number of
    /// requests up to ``lastAppliedRequest`` (what crash tests check, and a metric).
    public internal(set) var requestsApplied: Int
    /// The most recent goal outcomes, replayed after a failover in case the old leader wrote
    /// its checkpoint but died before announcing them.
    public internal(set) var recentGoalOutcomes: [GoalOutcome]
    public internal(set) var configsVersion: Int
    public internal(set) var routingVersion: Int
    public internal(set) var nextGeneration: Int
    /// The live nodes at the last step, sorted: replicas are checked against the nodes again
    /// only when this set changes.
    public internal(set) var liveNodes: [String]

    public init() {
        backends = []
        retiredReplicas = []
        lastAppliedRequest = nil
        requestsApplied = 0
        recentGoalOutcomes = []
        configsVersion = 0
        routingVersion = 0
        nextGeneration = 1
        liveNodes = []
    }

    /// Where every replica is, by tag: its backend's index (nil if retired) and its index.
    /// O(replicas), once: for finding many replicas, where ``locate(_:)`` (a search through
    /// the backend's replicas) would make a step quadratic in a large backend.
    func replicaPositions() -> [String: (backend: Int?, replica: Int)] {
        var positions: [String: (backend: Int?, replica: Int)] = [:]
        positions.reserveCapacity(retiredReplicas.count + backends.reduce(0) { $0 + $1.replicas.count })
        for (b, backend) in backends.enumerated() {
            for (r, replica) in backend.replicas.enumerated() { positions[replica.tag] = (b, r) }
        }
        for (r, replica) in retiredReplicas.enumerated() { positions[replica.tag] = (nil, r) }
        return positions
    }

    /// Where the replica with `tag` is: its backend's index (or nil if retired) and its index.
    func locate(_ tag: String) -> (backend: Int?, replica: Int)? {
        if let hash = tag.firstIndex(of: "#") {
            let (found, b) = index(of: String(tag[..<hash]))
            if found, let r = backends[b].replicas.firstIndex(where: { $0.tag == tag }) { return (b, r) }
        }
        if let r = retiredReplicas.firstIndex(where: { $0.tag == tag }) { return (nil, r) }
        return nil
    }

    /// The index of the backend with `tag`, or where it would be inserted.
    func index(of tag: String) -> (found: Bool, index: Int) {
        var low = 0
        var high = backends.count
        while low < high {
            let middle = (low + high) / 2
            if backends[middle].tag < tag { low = middle + 1 } else { high = middle }
        }
        return (low < backends.count && backends[low].tag == tag, low)
    }

    public func backend(_ tag: String) -> BackendRecord? {
        let (found, index) = index(of: tag)
        return found ? backends[index] : nil
    }

    /// The tags of replicas in `states` that are placed on a node, live backends' first, then
    /// retired ones. Reads fields in place: no record is copied (this runs on every tick).
    /// Every node some replica record (retired ones included) still names.
    public var occupiedNodes: Set<String> {
        var nodes = Set<String>()
        for backend in backends { for replica in backend.replicas { if let node = replica.node { nodes.insert(node) } } }
        for replica in retiredReplicas { if let node = replica.node { nodes.insert(node) } }
        return nodes
    }

    public func replicaTags(placedIn states: Set<ReplicaState>) -> [String] {
        var tags: [String] = []
        for b in backends.indices {
            for r in backends[b].replicas.indices where states.contains(backends[b].replicas[r].state) && backends[b].replicas[r].node != nil {
                tags.append(backends[b].replicas[r].tag)
            }
        }
        for r in retiredReplicas.indices where states.contains(retiredReplicas[r].state) && retiredReplicas[r].node != nil {
            tags.append(retiredReplicas[r].tag)
        }
        return tags
    }


    /// The routers' view of this state: running replicas per backend.
    public var routingView: RoutingView {
        var view: [String: [RoutedReplica]] = [:]
        view.reserveCapacity(backends.count)
        for b in backends.indices where !backends[b].deleting {
            var running: [RoutedReplica] = []
            running.reserveCapacity(backends[b].replicas.count)
            for r in backends[b].replicas.indices where backends[b].replicas[r].state == .running {
                guard let address = backends[b].replicas[r].endpoint?.address, let node = backends[b].replicas[r].node else { continue }
                running.append(RoutedReplica(tag: backends[b].replicas[r].tag, address: address, node: node))
            }
            view[backends[b].tag] = running
        }
        return RoutingView(version: routingVersion, backends: view)
    }

    /// The routers' view of backend configs: routes, limits and retry rules.
    public var backendConfigsView: BackendConfigsView {
        var view: [String: RoutedBackendConfig] = [:]
        for backend in backends where !backend.deleting {
            view[backend.tag] = backend.config.routed
        }
        return BackendConfigsView(version: configsVersion, backends: view)
    }
}
