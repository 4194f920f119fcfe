/// Placing SHOULD_START replicas on nodes.
extension ReconcileStep {
    /// Places every pending replica where its resources fit, spreading each backend's replicas
    /// across nodes (fewest of that backend first, then most free CPU, then node id). A replica
    /// that fits nowhere stays pending with a reason naming what is missing; it never fails
    /// its backend.
    mutating func placePendingReplicas() {
        guard state.backends.contains(where: { !$0.deleting && $0.replicas.contains { $0.state == .shouldStart } }) else { return }
        var free: [String: Resources] = [:]
        for (id, node) in observations.nodes where node.alive { free[id] = node.total }
        for replica in state.allReplicas where replica.state.occupiesNode {
            guard let node = replica.node, let available = free[node] else { continue }
            free[node] = available - (resources(of: replica) ?? .zero)
        }
        let nodeOrder = free.keys.sorted()

        for b in state.backends.indices where !state.backends[b].deleting {
            let backend = state.backends[b]
            guard backend.replicas.contains(where: { $0.state == .shouldStart }) else { continue }
            let need = backend.replicaConfig.resources
            var perNode: [String: Int] = [:]
            for replica in backend.replicas where replica.state.occupiesNode {
                if let node = replica.node { perNode[node, default: 0] += 1 }
            }
            for r in backend.replicas.indices where backend.replicas[r].state == .shouldStart {
                let candidates = nodeOrder.filter { free[$0]!.fits(need) }
                let chosen = candidates.min { a, b in
                    let (ca, cb) = (perNode[a, default: 0], perNode[b, default: 0])
                    if ca != cb { return ca < cb }
                    let (fa, fb) = (free[a]!.cpu, free[b]!.cpu)
                    return fa != fb ? fa > fb : a < b
                }
                guard let node = chosen else {
                    let reason = Self.unplaceableReason(need: need, free: free, nodeOrder: nodeOrder)
                    if state.backends[b].replicas[r].pendingReason != reason {
                        state.backends[b].replicas[r].pendingReason = reason
                        changed = true
                    }
                    continue
                }
                state.backends[b].replicas[r].placed(on: node, at: now, userConfigVersion: backend.userConfigVersion)
                free[node] = free[node]! - need
                perNode[node, default: 0] += 1
                assignments.append(.assign(ReplicaAssignment(
                    replica: state.backends[b].replicas[r].reference,
                    version: backend.version,
                    replicaConfig: backend.replicaConfig,
                    userConfig: backend.config.userConfig,
                    maxConcurrentQueries: backend.config.maxConcurrentQueries,
                    gracefulShutdownWaitLoopS: backend.config.gracefulShutdownWaitLoopS
                )))
                changed = true
            }
        }
    }

    /// The resources a placed replica holds: its backend's (or, for a retired replica, the
    /// same tag's current) replica config.
    private func resources(of replica: ReplicaRecord) -> Resources? {
        state.backend(replica.backend)?.replicaConfig.resources
    }

    /// "needs 2 CPU; largest free is 1.5 on node b", or what else is missing.
    static func unplaceableReason(need: Resources, free: [String: Resources], nodeOrder: [String]) -> String {
        guard !nodeOrder.isEmpty else { return "no live node to place it on" }
        var parts: [String] = []
        for dimension in Resources.zero.missingDimensions(for: need) where need.amount(dimension) > 0 {
            // The node with the most of this dimension free (ties: first by id).
            var best = nodeOrder[0]
            for id in nodeOrder where free[id]!.amount(dimension) > free[best]!.amount(dimension) { best = id }
            let largest = free[best]!.amount(dimension)
            if need.amount(dimension) > largest + Resources.epsilon {
                parts.append("needs \(Resources.describe(dimension, need.amount(dimension))); largest free is \(Resources.describe(dimension, max(0, largest))) on node \(best)")
            }
        }
        if parts.isEmpty {
            let wanted = Resources.zero.missingDimensions(for: need).map { Resources.describe($0, need.amount($0)) }
            return "needs \(wanted.joined(separator: " and ")) on one node; no node has all of it free"
        }
        return parts.joined(separator: "; ")
    }
}
