/// What the observations say happened to one replica.
enum ReplicaEvent: Equatable {
    case reportedReady(ReplicaEndpoint)
    case endpointChanged(ReplicaEndpoint)
    /// Its process exited, its node is gone or its heartbeat expired. `kill`: its process may
    /// still exist and must be killed. `failedStart`: it never became ready.
    case died(reason: String, kill: Bool, failedStart: Bool)
    case startTimedOut
    case finishedStopping(reason: String)
    case drainDeadlinePassed
}

/// Reading observations and carrying out stops.
extension ReconcileStep {
    /// The event, if any, that `observed` (nil: no news) and the node's liveness show for
    /// `replica` at `now`.
    static func event(for replica: borrowing ReplicaRecord, observed: ReplicaObservation?, nodeAlive: Bool, now: Timestamp, startTimeoutS: Double) -> ReplicaEvent? {
        guard let node = replica.node else { return nil }
        switch replica.state {
        case .starting:
            if let exit = observed?.exit { return .died(reason: "exited before it was ready: \(exit)", kill: false, failedStart: true) }
            if !nodeAlive { return .died(reason: "node \(node) is gone", kill: false, failedStart: true) }
            if let endpoint = observed?.endpoint { return .reportedReady(endpoint) }
            if let startedAt = replica.startedAt, now >= startedAt.adding(seconds: startTimeoutS) { return .startTimedOut }
            return nil
        case .running:
            if let exit = observed?.exit { return .died(reason: "exited: \(exit)", kill: false, failedStart: false) }
            if !nodeAlive { return .died(reason: "node \(node) is gone", kill: false, failedStart: false) }
            guard let observed else { return nil }
            guard let endpoint = observed.endpoint else { return .died(reason: "heartbeat expired", kill: true, failedStart: false) }
            return endpoint == replica.endpoint ? nil : .endpointChanged(endpoint)
        case .stopping:
            if observed?.drained == true { return .finishedStopping(reason: "drained") }
            if let exit = observed?.exit { return .finishedStopping(reason: "exited: \(exit)") }
            if !nodeAlive { return .finishedStopping(reason: "node \(node) is gone") }
            if let deadline = replica.drainDeadline, now >= deadline { return .drainDeadlinePassed }
            return nil
        case .shouldStart, .shouldStop, .stopped:
            return nil
        }
    }

    /// Visits only what can have news: the reported replicas; every placed replica when the
    /// set of live nodes changed; and STARTING / STOPPING replicas, whose deadlines pass with time.
    mutating func applyReplicaObservations() {
        let live = observations.nodes.values.filter(\.alive).map(\.id).sorted()
        let nodesChanged = live != state.liveNodes
        if nodesChanged {
            state.liveNodes = live
            changed = true
        }
        // Visit reported replicas in state order, not the dictionary's (which Swift randomizes
        // per process), so the actions of a step are the same in every run.
        var reported: [(backend: Int, replica: Int, observed: ReplicaObservation)] = []
        // A few reports are found by searching their backends; many, through one index (a
        // search each would be quadratic in a large backend).
        let positions = observations.replicas.count > 16 ? state.replicaPositions() : nil
        for (tag, observed) in observations.replicas {
            let position = positions.map { $0[tag] } ?? state.locate(tag)
            guard let (b, r) = position else { continue }
            reported.append((b ?? Int.max, r, observed))
        }
        reported.sort { ($0.backend, $0.replica) < ($1.backend, $1.replica) }
        for item in reported {
            visit(backend: item.backend == Int.max ? nil : item.backend, replica: item.replica, observed: item.observed)
        }
        for b in state.backends.indices {
            for r in state.backends[b].replicas.indices {
                let replicaState = state.backends[b].replicas[r].state
                if nodesChanged ? replicaState.occupiesNode : (replicaState == .starting || replicaState == .stopping) {
                    visit(backend: b, replica: r, observed: nil)
                }
            }
        }
        for r in state.retiredReplicas.indices where state.retiredReplicas[r].state == .stopping || (nodesChanged && state.retiredReplicas[r].state.occupiesNode) {
            visit(backend: nil, replica: r, observed: nil)
        }
    }

    private func nodeAlive(_ node: String?) -> Bool {
        guard let node else { return false }
        return observations.nodes[node]?.alive == true
    }

    private mutating func visit(backend b: Int?, replica r: Int, observed: ReplicaObservation?) {
        if let b {
            guard let event = Self.event(for: state.backends[b].replicas[r], observed: observed, nodeAlive: nodeAlive(state.backends[b].replicas[r].node),
                                         now: now, startTimeoutS: settings.startTimeoutS) else { return }
            var replica = state.backends[b].replicas[r]
            let outcome = apply(event, to: &replica)
            state.backends[b].replicas[r] = replica
            if outcome.failedStart { recordFailedStart(backendAt: b, reason: outcome.reason) }
        } else {
            guard let event = Self.event(for: state.retiredReplicas[r], observed: observed, nodeAlive: nodeAlive(state.retiredReplicas[r].node),
                                         now: now, startTimeoutS: settings.startTimeoutS) else { return }
            var replica = state.retiredReplicas[r]
            _ = apply(event, to: &replica)
            state.retiredReplicas[r] = replica
        }
    }

    /// Applies one event; reports whether it was a failed start, and why.
    private mutating func apply(_ event: ReplicaEvent, to replica: inout ReplicaRecord) -> (failedStart: Bool, reason: String) {
        changed = true
        switch event {
        case .reportedReady(let endpoint):
            replica.reportedReady(endpoint)
            routingChanged = true
        case .endpointChanged(let endpoint):
            replica.reportedReady(endpoint: endpoint)
            routingChanged = true
        case .died(let reason, let kill, let failedStart):
            if replica.state == .running { routingChanged = true }
            if kill { kills.append(.forceKill(replica.reference)) }
            replica.stopped(reason: reason)
            return (failedStart, reason)
        case .startTimedOut:
            let reason = "not ready within \(formatNumber(settings.startTimeoutS)) s"
            kills.append(.forceKill(replica.reference))
            replica.stopped(reason: reason)
            return (true, reason)
        case .finishedStopping(let reason):
            replica.stopped(reason: reason)
        case .drainDeadlinePassed:
            kills.append(.forceKill(replica.reference))
            replica.stopped(reason: "killed: drain deadline passed")
        }
        return (false, "")
    }

    private mutating func recordFailedStart(backendAt index: Int, reason: String) {
        state.backends[index].failedStarts += 1
        let backend = state.backends[index]
        let limit = settings.failedStartLimit(target: backend.target)
        if backend.failure == nil, backend.failedStarts >= limit {
            state.backends[index].failure = "\(backend.failedStarts) replicas failed to start; the last \(reason)"
        }
    }

    /// SHOULD_STOP replicas are drained (or killed, for a forced delete or a zero timeout).
    /// They left the routing view when they were chosen, so this comes after it in the actions.
    mutating func requestStops() {
        for b in state.backends.indices where state.backends[b].anyReplica(in: .shouldStop) {
            let force = state.backends[b].forceDelete
            let timeout = force ? 0 : state.backends[b].config.gracefulShutdownTimeoutS
            for r in state.backends[b].replicas.indices where state.backends[b].replicas[r].state == .shouldStop {
                var replica = state.backends[b].replicas[r]
                stop(&replica, timeoutS: timeout)
                state.backends[b].replicas[r] = replica
            }
        }
        for r in state.retiredReplicas.indices where state.retiredReplicas[r].state == .shouldStop {
            var replica = state.retiredReplicas[r]
            stop(&replica, timeoutS: 0)
            state.retiredReplicas[r] = replica
        }
    }

    private mutating func stop(_ replica: inout ReplicaRecord, timeoutS: Double) {
        changed = true
        if timeoutS == 0 {
            kills.append(.forceKill(replica.reference))
            replica.stopped(reason: replica.stopReason ?? "killed")
        } else {
            let deadline = now.adding(seconds: timeoutS)
            replica.drainRequested(deadline: deadline)
            drains.append(.drain(replica.reference, deadline: deadline))
        }
    }

    /// Chooses a replica to stop. A running one leaves the routing view in this same step.
    mutating func chooseToStop(backendAt b: Int, replicaAt r: Int, reason: String) {
        if state.backends[b].replicas[r].state == .running { routingChanged = true }
        state.backends[b].replicas[r].stopChosen(reason: reason)
        changed = true
    }

    /// Drops STOPPED records (cleaning their keys), and deleted backends with no replica left.
    mutating func forgetStoppedReplicas() {
        for b in state.backends.indices where state.backends[b].anyReplica(in: .stopped) {
            for replica in state.backends[b].replicas where replica.state == .stopped && replica.node != nil {
                forgets.append(.forget(replica.reference))
            }
            state.backends[b].replicas.removeAll { $0.state == .stopped }
            changed = true
        }
        if state.retiredReplicas.contains(where: { $0.state == .stopped }) {
            for replica in state.retiredReplicas where replica.state == .stopped && replica.node != nil {
                forgets.append(.forget(replica.reference))
            }
            state.retiredReplicas.removeAll { $0.state == .stopped }
            changed = true
        }
        var emptiedDeletes = false
        for b in state.backends.indices where state.backends[b].deleting && state.backends[b].replicas.isEmpty {
            for goal in state.backends[b].goals { complete(goal) }
            emptiedDeletes = true
        }
        if emptiedDeletes {
            state.backends.removeAll { $0.deleting && $0.replicas.isEmpty }
            changed = true
        }
    }
}

extension ReplicaRecord {
    var reference: ReplicaReference {
        ReplicaReference(tag: tag, backend: backend, node: node ?? "")
    }

    /// RUNNING and re-reported at a new address (its worker restarted its listener).
    mutating func reportedReady(endpoint: ReplicaEndpoint) {
        precondition(state == .running)
        self.endpoint = endpoint
    }
}
