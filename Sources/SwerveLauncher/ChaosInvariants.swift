public import SwerveCore

/// What a chaos run checks once the cluster is quiet again. Pure: each check takes what was
/// read from Redis and the processes, and returns its violations, each a sentence naming what
/// broke (empty: it held).
public enum ChaosInvariants {
    /// At most one controller acted per epoch, and no write of an older epoch landed after one
    /// of a newer epoch (a fenced write that got through would show as an epoch going back).
    /// `actions`: the events stream's `(epoch, controller)` pairs in stream order.
    public static func oneControllerPerEpoch(_ actions: [(epoch: Int64, controller: String)]) -> [String] {
        var violations: [String] = []
        var actors: [Int64: Set<String>] = [:]
        var highest: Int64 = .min
        for (index, action) in actions.enumerated() {
            actors[action.epoch, default: []].insert(action.controller)
            if action.epoch < highest {
                violations.append("event \(index + 1) was written under epoch \(action.epoch) after one under epoch \(highest): a deposed leader's write landed")
            }
            highest = max(highest, action.epoch)
        }
        for (epoch, controllers) in actors.sorted(by: { $0.key < $1.key }) where controllers.count > 1 {
            violations.append("epoch \(epoch) was acted on by \(controllers.count) controllers: \(controllers.sorted().joined(separator: ", "))")
        }
        return violations
    }

    /// Every election announced a new, higher epoch, each won by one controller.
    public static func electionsIncrease(_ elections: [(epoch: Int64, controller: String)]) -> [String] {
        var violations: [String] = []
        for (previous, next) in zip(elections, elections.dropFirst()) where next.epoch <= previous.epoch {
            violations.append("\(next.controller) was elected under epoch \(next.epoch) after \(previous.controller) under epoch \(previous.epoch)")
        }
        return violations
    }

    /// Every backend has exactly its target of RUNNING replicas at its current version, and no
    /// other replica (nothing starting, draining or outdated is left).
    public static func replicasConverged(_ state: BackendState) -> [String] {
        var violations: [String] = []
        for backend in state.backends.sorted(by: { $0.tag < $1.tag }) {
            let current = backend.replicas.filter { $0.state == .running && $0.version == backend.version }
            if current.count != backend.target || backend.replicas.count != current.count {
                let others = backend.replicas.filter { !($0.state == .running && $0.version == backend.version) }
                    .map { "\($0.tag) \($0.state.rawValue)\($0.version == backend.version ? "" : " at an old version")" }
                violations.append("\(backend.tag): \(current.count) of \(backend.target) replicas running at version \(backend.version)"
                                  + (others.isEmpty ? "" : "; also \(others.joined(separator: ", "))"))
            }
        }
        if !state.retiredReplicas.isEmpty {
            violations.append("replicas of deleted backends are still recorded: \(state.retiredReplicas.map(\.tag).sorted().joined(separator: ", "))")
        }
        return violations
    }

    /// Every worker process is the one its replica record names (tag and pid), and every
    /// RUNNING replica has its process: no orphans, no ghosts.
    public static func workersMatchReplicas(_ workers: [(tag: String, pid: Int32)], _ state: BackendState) -> [String] {
        var violations: [String] = []
        let replicas = Dictionary(state.backends.flatMap(\.replicas).map { ($0.tag, $0) }, uniquingKeysWith: { a, _ in a })
        for worker in workers.sorted(by: { $0.tag < $1.tag }) {
            guard let replica = replicas[worker.tag], replica.state.occupiesNode else {
                violations.append("orphan: worker pid \(worker.pid) runs \(worker.tag), which no live replica record owns")
                continue
            }
            if let pid = replica.endpoint?.pid, pid != worker.pid {
                violations.append("orphan: worker pid \(worker.pid) runs \(worker.tag), whose record names pid \(pid)")
            }
        }
        let running = Set(workers.map(\.pid))
        for replica in replicas.values.sorted(by: { $0.tag < $1.tag }) where replica.state == .running {
            if let pid = replica.endpoint?.pid, !running.contains(pid) {
                violations.append("\(replica.tag) is RUNNING with pid \(pid), but no such worker process exists")
            }
        }
        return violations
    }

    /// Every request the harness submitted is in the stream and was applied exactly once, and
    /// every goal settled (completed, or failed with a reason).
    public static func requestsAndGoals(submitted: Int, inStream: Int, applied: Int, goals: [String: GoalOutcome?]) -> [String] {
        var violations: [String] = []
        if inStream != submitted { violations.append("\(submitted) requests submitted but \(inStream) in the request stream") }
        if applied != submitted { violations.append("\(submitted) requests submitted but the checkpoint counts \(applied) applied") }
        for (goal, outcome) in goals.sorted(by: { $0.key < $1.key }) {
            if outcome == nil {
                violations.append("goal \(goal) never settled")
            } else if let failure = outcome?.failure, failure.isEmpty {
                violations.append("goal \(goal) failed without a reason")
            }
        }
        return violations
    }
}
