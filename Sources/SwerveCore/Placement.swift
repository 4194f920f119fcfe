/// Placing SHOULD_START replicas on nodes.
extension ReconcileStep {
    /// Places every pending replica where its resources fit (on live nodes neither cordoned nor
    /// draining), spreading each backend's replicas
    /// across nodes (fewest of that backend first, then most free CPU, then node id). A replica
    /// that fits nowhere stays pending with a reason naming what is missing; it never fails
    /// its backend.
    mutating func placePendingReplicas() {
        var anyPending = false
        for b in state.backends.indices where !state.backends[b].deleting && state.backends[b].anyReplica(in: .shouldStart) {
            anyPending = true
            break
        }
        guard anyPending else { return }
        let freeByNode = freeResources()
        let nodeOrder = freeByNode.keys.sorted()
        let position = Dictionary(uniqueKeysWithValues: nodeOrder.enumerated().map { ($1, $0) })
        var free = nodeOrder.map { freeByNode[$0]! }

        for b in state.backends.indices where !state.backends[b].deleting && state.backends[b].anyReplica(in: .shouldStart) {
            let backend = state.backends[b]
            let need = backend.replicaConfig.resources
            var perNode = [Int](repeating: 0, count: nodeOrder.count)
            for r in backend.replicas.indices where backend.replicas[r].state.occupiesNode {
                if let node = backend.replicas[r].node, let p = position[node] { perNode[p] += 1 }
            }
            // Fewest of this backend first, then most free CPU, then node id (the order). Free
            // resources only shrink while this backend places, so a node that cannot take one
            // of its replicas never will in this pass: it leaves the queue.
            var queue = PlacementQueue(free.indices.filter { free[$0].fits(need) }.map {
                PlacementQueue.Entry(position: $0, perNode: perNode[$0], freeCPU: free[$0].cpu)
            })
            for r in backend.replicas.indices where backend.replicas[r].state == .shouldStart {
                var chosen: Int?
                while let best = queue.popBest() {
                    if free[best.position].fits(need) { chosen = best.position; break }
                }
                guard let p = chosen else {
                    let reason = Self.unplaceableReason(need: need, free: freeByNode.merging(zip(nodeOrder, free), uniquingKeysWith: { $1 }), nodeOrder: nodeOrder)
                    if state.backends[b].replicas[r].pendingReason != reason {
                        state.backends[b].replicas[r].pendingReason = reason
                        changed = true
                    }
                    continue
                }
                let node = nodeOrder[p]
                state.backends[b].replicas[r].placed(on: node, at: now, userConfigVersion: backend.userConfigVersion)
                free[p].subtract(need, times: 1)
                perNode[p] += 1
                if free[p].fits(need) { queue.insert(PlacementQueue.Entry(position: p, perNode: perNode[p], freeCPU: free[p].cpu)) }
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

    /// What each live node has free: its total less what placed replicas hold. Replicas are
    /// counted per node per backend first (reading fields in place, copying no record), then
    /// each backend's resources are subtracted once per node.
    private func freeResources() -> [String: Resources] {
        var free: [String: Resources] = [:]
        for (id, node) in observations.nodes where node.acceptsReplicas { free[id] = node.total }
        var perNode: [String: Int] = [:]
        for b in state.backends.indices {
            perNode.removeAll(keepingCapacity: true)
            for r in state.backends[b].replicas.indices where state.backends[b].replicas[r].state.occupiesNode {
                if let node = state.backends[b].replicas[r].node { perNode[node, default: 0] += 1 }
            }
            let need = state.backends[b].replicaConfig.resources
            for (node, count) in perNode where free[node] != nil { free[node]!.subtract(need, times: count) }
        }
        // A retired replica holds what its tag's current config asks, if the tag still exists.
        for r in state.retiredReplicas.indices where state.retiredReplicas[r].state.occupiesNode {
            guard let node = state.retiredReplicas[r].node, free[node] != nil,
                  let need = state.backend(state.retiredReplicas[r].backend)?.replicaConfig.resources else { continue }
            free[node]!.subtract(need, times: 1)
        }
        return free
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
