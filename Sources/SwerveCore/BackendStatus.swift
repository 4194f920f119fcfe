/// A backend's status for people and `swerve status`, with a reason that says what is going on.
public struct BackendStatus: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable {
        /// Converging toward a change a goal waits for, or an autoscaled backend toward the
        /// count its autoscaler decided.
        case updating
        /// Exactly its target, running at the current version.
        case healthy
        /// Fewer running than its target with no change pending (replicas died or cannot be placed).
        case unhealthy
        /// Too many replicas failed to start; nothing is added until its config changes.
        case failed
        /// Draining its replicas before it is removed.
        case deleting
    }

    public var kind: Kind
    /// e.g. "3/5 running, 1 starting, 1 pending (needs 1 CPU; largest free is 0.5 on node a)".
    public var reason: String
    public var running: Int
    public var target: Int
}

extension BackendRecord {
    public var status: BackendStatus {
        var running = 0, starting = 0, pending = 0, stopping = 0, outdated = 0
        var pendingReason: String?
        for replica in replicas {
            switch replica.state {
            case .running: running += 1
            case .starting: starting += 1
            case .shouldStart:
                pending += 1
                pendingReason = pendingReason ?? replica.pendingReason
            case .shouldStop, .stopping: stopping += 1
            case .stopped: break
            }
            if replica.state.isAlive && replica.version != version { outdated += 1 }
        }
        let target = self.target
        var parts = ["\(running)/\(target) running"]
        if starting > 0 { parts.append("\(starting) starting") }
        if pending > 0 { parts.append("\(pending) pending" + (pendingReason.map { " (\($0))" } ?? "")) }
        if stopping > 0 { parts.append("\(stopping) stopping") }
        if outdated > 0 { parts.append("\(outdated) at an old version") }
        let counts = parts.joined(separator: ", ")

        let kind: BackendStatus.Kind
        var reason = counts
        if deleting {
            kind = .deleting
        } else if let failure {
            kind = .failed
            reason = "\(failure) (\(counts))"
        } else if hasConverged {
            kind = .healthy
        } else if !goals.isEmpty {
            kind = .updating
        } else if config.autoscaling != nil, let decided = autoscaling {
            // The autoscaler moved the target: converging to it is an update nobody asked
            // for by a request, not a fault (a crashed replica's replacement shows here too).
            kind = .updating
            reason = "autoscaled to \(decided.desired): \(counts)"
        } else {
            kind = .unhealthy
        }
        return BackendStatus(kind: kind, reason: reason, running: running, target: target)
    }
}
