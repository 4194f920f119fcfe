/// Scaling and rolling updates: which replicas to add, which to stop.
extension ReconcileStep {
    mutating func scaleBackends() {
        for b in state.backends.indices {
            if state.backends[b].deleting {
                for r in state.backends[b].replicas.indices where state.backends[b].replicas[r].state.isAlive {
                    chooseToStop(backendAt: b, replicaAt: r, reason: "backend deleted")
                }
            } else {
                scale(backendAt: b)
            }
        }
    }

    /// Converges one backend's alive replicas toward its target at its current version.
    ///
    /// Without outdated replicas this is plain scaling. With them it is a rolling update: never
    /// more than target + surge alive, never fewer than target − unavailable RUNNING (once they
    /// were there), as in Kubernetes' RollingUpdate. A failed backend adds nothing and, during a
    /// rolling update, keeps its outdated running replicas: they are all that serves.
    private mutating func scale(backendAt b: Int) {
        // Fast path, allocation-free: at the target, all current, nothing to do.
        let target = state.backends[b].target
        var aliveCount = 0
        var anyOutdated = false
        for r in state.backends[b].replicas.indices where state.backends[b].replicas[r].state.isAlive {
            aliveCount += 1
            if isOutdated(state.backends[b].replicas[r], of: state.backends[b]) { anyOutdated = true }
        }
        if !anyOutdated && aliveCount == target { return }

        let backend = state.backends[b]
        let canAdd = backend.failure == nil
        let alive = backend.replicas.indices.filter { backend.replicas[$0].state.isAlive }
        let current = alive.filter { !isOutdated(backend.replicas[$0], of: backend) }
        let outdated = alive.filter { isOutdated(backend.replicas[$0], of: backend) }

        if outdated.isEmpty {
            if current.count > target {
                for r in scaleDownOrder(current, in: backend).prefix(current.count - target) {
                    chooseToStop(backendAt: b, replicaAt: r, reason: "scaled down to \(target)")
                }
            } else if current.count < target && canAdd {
                addReplicas(target - current.count, backendAt: b)
            }
            return
        }

        let (surge, unavailable) = backend.config.rollingBudget(target: target)
        // Outdated replicas that are not running serve nothing: replace them at once.
        for r in outdated where backend.replicas[r].state != .running {
            chooseToStop(backendAt: b, replicaAt: r,
                         reason: backend.replicas[r].version == backend.version ? "node \(backend.replicas[r].node ?? "?") is draining" : "outdated version")
            aliveCount -= 1
        }
        // More current replicas than the target (the target went down mid-update).
        var currentCount = current.count
        if currentCount > target {
            for r in scaleDownOrder(current, in: backend).prefix(currentCount - target) {
                chooseToStop(backendAt: b, replicaAt: r, reason: "scaled down to \(target)")
            }
            aliveCount -= currentCount - target
            currentCount = target
        }
        guard canAdd else { return }
        // Stop outdated running replicas only as far as availability allows.
        let running = alive.filter { backend.replicas[$0].state == .running }.count
        let outdatedRunning = outdated.filter { backend.replicas[$0].state == .running }
        let stoppable = max(0, min(outdatedRunning.count, running - max(0, target - unavailable)))
        for r in outdatedRunning.prefix(stoppable) {
            let onDrainingNode = backend.replicas[r].version == backend.version
            chooseToStop(backendAt: b, replicaAt: r,
                         reason: onDrainingNode ? "node \(backend.replicas[r].node ?? "?") is draining" : "replaced by version \(backend.version)")
        }
        aliveCount -= stoppable
        // Start current replicas as far as the surge allows.
        let toAdd = min(target - currentCount, target + surge - aliveCount)
        if toAdd > 0 { addReplicas(toAdd, backendAt: b) }
    }

    /// A replica to replace: of an older version, or on a draining node (a node drain is a
    /// rolling update that moves replicas instead of changing them).
    private func isOutdated(_ replica: ReplicaRecord, of backend: BackendRecord) -> Bool {
        if replica.version != backend.version { return true }
        guard !drainingNodes.isEmpty, let node = replica.node else { return false }
        return drainingNodes.contains(node)
    }

    /// The seed's order — SHOULD_START, then STARTING, then RUNNING — newest first within each.
    private func scaleDownOrder(_ indices: [Int], in backend: BackendRecord) -> [Int] {
        let rank: [ReplicaState: Int] = [.shouldStart: 0, .starting: 1, .running: 2]
        return indices.sorted { a, b in
            let (ra, rb) = (rank[backend.replicas[a].state] ?? 3, rank[backend.replicas[b].state] ?? 3)
            return ra != rb ? ra < rb : a > b
        }
    }

    private mutating func addReplicas(_ count: Int, backendAt b: Int) {
        let tag = state.backends[b].tag
        let version = state.backends[b].version
        for _ in 0..<count {
            let suffix = String(random.next() & 0xFFFF_FFFF_FFFF, radix: 36)
            state.backends[b].replicas.append(ReplicaRecord(tag: "\(tag)#\(suffix)", backend: tag, version: version))
        }
        changed = true
    }

    /// Running and starting replicas get a changed user config in place, without a restart.
    mutating func pushUserConfigs() {
        for b in state.backends.indices where !state.backends[b].deleting {
            let wanted = state.backends[b].userConfigVersion
            guard state.backends[b].anyReplicaNeedsUserConfig else { continue }
            for r in state.backends[b].replicas.indices
            where (state.backends[b].replicas[r].state == .running || state.backends[b].replicas[r].state == .starting)
                && state.backends[b].replicas[r].userConfigVersion != wanted {
                state.backends[b].replicas[r].userConfigVersion = wanted
                pushes.append(.pushUserConfig(state.backends[b].replicas[r].reference, userConfig: state.backends[b].config.userConfig))
                changed = true
            }
        }
    }
}

/// Autoscaling: each autoscaled backend's count follows its load (``Autoscaler``).
extension ReconcileStep {
    mutating func autoscaleBackends() {
        for b in state.backends.indices where !state.backends[b].deleting {
            guard let config = state.backends[b].config.autoscaling, let current = state.backends[b].autoscaling else { continue }
            let next = Autoscaler.decide(config, current, load: observations.loads[state.backends[b].tag], now: observations.now)
            if next != current { state.backends[b].autoscaling = next }
        }
    }
}
