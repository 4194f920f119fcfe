/// Applying client requests: the seed's semantics, with its defects fixed.
extension ReconcileStep {
    /// Applies new requests and refuses refused ones, merged in stream order; each moves the
    /// cursor, so a bad entry is seen once and a run of them cannot stall the stream.
    mutating func applyRequests() {
        var refused = observations.refusedRequests.makeIterator()
        var nextRefused = refused.next()
        var requests = observations.requests.makeIterator()
        var nextRequest = requests.next()
        while nextRequest != nil || nextRefused != nil {
            let id: RequestID
            if let request = nextRequest, nextRefused.map({ request.id < $0.id }) ?? true {
                id = request.id
                if isNew(id) { apply(request) }
                nextRequest = requests.next()
            } else if let refusal = nextRefused {
                id = refusal.id
                if isNew(id), let goal = refusal.goal { fail(goal, refusal.reason) }
                nextRefused = refused.next()
            } else {
                break
            }
            guard isNew(id) else { continue }
            state.lastAppliedRequest = id
            state.requestsApplied += 1
            changed = true
        }
    }

    private func isNew(_ id: RequestID) -> Bool {
        state.lastAppliedRequest.map { id > $0 } ?? true
    }

    private mutating func apply(_ request: Request) {
        let problems = request.operation.problems()
        guard problems.isEmpty else {
            fail(request.goal, ValidationError(problems).description)
            return
        }
        switch request.operation {
        case .createBackend(let tag, let config, let replicaConfig):
            createBackend(tag: tag, config: config, replicaConfig: replicaConfig, goal: request.goal)
        case .updateBackendConfig(let tag, let patch):
            updateBackendConfig(tag: tag, patch: patch, goal: request.goal)
        case .deleteBackend(let tag, let force):
            deleteBackend(tag: tag, force: force, goal: request.goal)
        }
    }

    private mutating func createBackend(tag: String, config: BackendConfig, replicaConfig: ReplicaConfig, goal: GoalID) {
        let (found, index) = state.index(of: tag)
        var problems = routeProblems(config.routePrefix, for: tag)
        if !found { problems += backendCountProblems() }
        problems += replicaTotalProblems(numReplicas: config.mostReplicas, for: tag)
        if !problems.isEmpty {
            fail(goal, ValidationError(problems).description)
            return
        }
        guard found else {
            state.backends.insert(newBackend(tag, config, replicaConfig, goal), at: index)
            configsChanged = true
            return
        }
        let existing = state.backends[index]
        if existing.deleting {
            // Re-created while its old replicas still stop: they finish as retired replicas,
            // the new incarnation starts beside them.
            retire(existing)
            for superseded in existing.goals { complete(superseded) }
            state.backends[index] = newBackend(tag, config, replicaConfig, goal)
            configsChanged = true
            return
        }
        if existing.config == config && existing.replicaConfig == replicaConfig {
            join(goal, backendAt: index)
            return
        }
        change(backendAt: index, config: config, replicaConfig: replicaConfig, goal: goal)
    }

    private mutating func updateBackendConfig(tag: String, patch: BackendConfigPatch, goal: GoalID) {
        let (found, index) = state.index(of: tag)
        guard found, !state.backends[index].deleting else {
            fail(goal, "no backend named \"\(tag)\"")
            return
        }
        let existing = state.backends[index]
        if let autoscaling = existing.config.autoscaling, patch.numReplicas != nil {
            fail(goal, ValidationError([ValidationProblem(field: "config.numReplicas", message:
                "backend \"\(tag)\" is autoscaled (\(autoscaling.minReplicas)…\(autoscaling.maxReplicas) replicas, now \(existing.target)): its count follows its load; change config.autoscaling's minReplicas or maxReplicas with `swerve apply`")]).description)
            return
        }
        let merged = patch.applied(to: existing.config)
        let problems = merged.problems() + routeProblems(merged.routePrefix, for: tag)
            + replicaTotalProblems(numReplicas: merged.mostReplicas, for: tag)
        if !problems.isEmpty {
            fail(goal, ValidationError(problems).description)
            return
        }
        if merged == existing.config {
            join(goal, backendAt: index)
            return
        }
        change(backendAt: index, config: merged, replicaConfig: existing.replicaConfig, goal: goal)
    }

    private mutating func deleteBackend(tag: String, force: Bool, goal: GoalID) {
        let (found, index) = state.index(of: tag)
        guard found else {
            complete(goal) // deleting what does not exist is done already
            return
        }
        if state.backends[index].deleting {
            state.backends[index].forceDelete = state.backends[index].forceDelete || force
            state.backends[index].goals.append(goal)
            return
        }
        for superseded in state.backends[index].goals { complete(superseded) }
        state.backends[index].goals = [goal]
        state.backends[index].deleting = true
        state.backends[index].forceDelete = force
        configsChanged = true
        if state.backends[index].replicas.contains(where: { $0.state == .running }) { routingChanged = true }
    }

    // MARK: Helpers

    /// Moves an earlier incarnation's replicas aside. Any still alive (deleted and re-created
    /// in the same step) leave the routing view and drain now, under the old config's timeout.
    private mutating func retire(_ backend: BackendRecord) {
        let timeout = backend.forceDelete ? 0 : backend.config.gracefulShutdownTimeoutS
        for var replica in backend.replicas {
            if replica.state == .running { routingChanged = true }
            if replica.state.isAlive {
                replica.stopChosen(reason: "backend re-created")
                if replica.state == .shouldStop {
                    if timeout == 0 {
                        kills.append(.forceKill(replica.reference))
                        replica.stopped(reason: "backend re-created")
                    } else {
                        let deadline = now.adding(seconds: timeout)
                        replica.drainRequested(deadline: deadline)
                        drains.append(.drain(replica.reference, deadline: deadline))
                    }
                }
            }
            state.retiredReplicas.append(replica)
        }
    }

    private mutating func newBackend(_ tag: String, _ config: BackendConfig, _ replicaConfig: ReplicaConfig, _ goal: GoalID) -> BackendRecord {
        defer { state.nextGeneration += 1 }
        return BackendRecord(tag: tag, config: config, replicaConfig: replicaConfig, generation: state.nextGeneration, goal: goal)
    }

    /// The same request again changes nothing: its goal settles with the backend's current one
    /// (or at once when nothing is pending).
    private mutating func join(_ goal: GoalID, backendAt index: Int) {
        if state.backends[index].goals.isEmpty && state.backends[index].failure == nil {
            complete(goal)
        } else {
            state.backends[index].goals.append(goal)
        }
    }

    /// A real change: the new goal supersedes (completes) the pending ones, the failure count
    /// starts over, and routers hear of changed routes or limits.
    private mutating func change(backendAt index: Int, config: BackendConfig, replicaConfig: ReplicaConfig, goal: GoalID) {
        var backend = state.backends[index]
        for superseded in backend.goals { complete(superseded) }
        if backend.config.routed != config.routed {
            configsChanged = true
        }
        backend.goals = [goal]
        if let autoscaling = config.autoscaling {
            // Becoming autoscaled keeps the count it runs (within the new bounds); an
            // autoscaled backend's rolling update or new bounds keep the decided count.
            if backend.autoscaling == nil || backend.config.autoscaling == nil {
                backend.autoscaling = AutoscalingState(desired: autoscaling.startingCount(running: backend.target))
            }
        } else {
            backend.autoscaling = nil
        }
        backend.config = config
        if backend.replicaConfig != replicaConfig {
            backend.replicaConfig = replicaConfig
            backend.version = replicaConfig.version
        }
        backend.userConfigVersion = BackendRecord.digest(config.userConfig)
        backend.failedStarts = 0
        backend.failure = nil
        state.backends[index] = backend
    }

    /// A new backend must fit under ``Limits/backends`` (deleting ones still count: their
    /// replicas still run).
    private func backendCountProblems() -> [ValidationProblem] {
        guard state.backends.count >= Limits.backends else { return [] }
        return [ValidationProblem(field: "tag", message: "the cluster has \(state.backends.count) backends, the most it keeps is \(Limits.backends); delete one first")]
    }

    /// The live backends' most replicas (their targets, or an autoscaled backend's
    /// `maxReplicas`), with `tag`'s set to `numReplicas`, must stay under
    /// ``Limits/replicasInCluster``. Lowering a target is always allowed (a cluster above the
    /// limit, say after it was lowered, can still shrink).
    private func replicaTotalProblems(numReplicas: Int, for tag: String) -> [ValidationProblem] {
        if let current = state.backend(tag), !current.deleting, numReplicas <= current.config.mostReplicas { return [] }
        var total = numReplicas
        for backend in state.backends where backend.tag != tag && !backend.deleting {
            total = total.addingSaturated(backend.config.mostReplicas)
        }
        guard total > Limits.replicasInCluster else { return [] }
        return [ValidationProblem(field: "config.numReplicas", message: "\(numReplicas) would bring the cluster to \(total) replicas, the most it runs is \(Limits.replicasInCluster)")]
    }

    /// A route prefix must be unique among live backends.
    private func routeProblems(_ route: String?, for tag: String) -> [ValidationProblem] {
        guard let route else { return [] }
        if let owner = state.backends.first(where: { $0.tag != tag && !$0.deleting && $0.config.routePrefix == route }) {
            return [ValidationProblem(field: "config.routePrefix", message: "\"\(route)\" is already the route of backend \"\(owner.tag)\"")]
        }
        return []
    }
}
