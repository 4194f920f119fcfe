import Foundation
import Logging
import SwerveCore

/// One log line per decision a step carried out, with the backend and replica tags as
/// metadata: what an operator reads to learn why a replica started, drained or was killed.
/// The checkpoint and the snapshots are logged at debug (every step that changes anything
/// writes them).
///
/// A step that takes more than ``perKindLimit`` decisions of one kind (thousands of
/// placements when a large backend is created, a user config sent to every replica after a
/// takeover) logs that kind as one summary line instead — counts per backend and node, and
/// the first few tags — so that logs stay readable at scale. Pure: ``lines(_:now:)`` is what
/// ``log(_:now:logger:)`` writes.
enum DecisionLog {
    /// Decisions of one kind a step logs one by one; above this, one summary line.
    static let perKindLimit = 20

    /// One line to log.
    struct Line: Equatable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    static func log(_ actions: [Action], now: Timestamp, logger: Logger) {
        write(lines(actions, now: now), to: logger)
    }

    /// The lines for a step's `actions`, in the order of their kinds' first actions.
    static func lines(_ actions: [Action], now: Timestamp) -> [Line] {
        var kinds: [Kind] = []
        var byKind: [Kind: [Action]] = [:]
        for action in actions {
            let kind = Kind(action)
            if byKind[kind] == nil { kinds.append(kind) }
            byKind[kind, default: []].append(action)
        }
        var lines: [Line] = []
        for kind in kinds {
            let group = byKind[kind] ?? []
            if group.count > perKindLimit, let summary = summary(kind, group) {
                lines.append(summary)
            } else {
                lines += group.map { line($0, now: now) }
            }
        }
        return lines
    }

    /// What a decision is, for grouping.
    enum Kind: Hashable {
        case checkpoint, configs, routing, assign, drain, forceKill, pushUserConfig, forget, completeGoal, failGoal

        init(_ action: Action) {
            switch action {
            case .writeCheckpoint: self = .checkpoint
            case .publishBackendConfigs: self = .configs
            case .publishRoutingView: self = .routing
            case .assign: self = .assign
            case .drain: self = .drain
            case .forceKill: self = .forceKill
            case .pushUserConfig: self = .pushUserConfig
            case .forget: self = .forget
            case .completeGoal: self = .completeGoal
            case .failGoal: self = .failGoal
            }
        }
    }

    private static func line(_ action: Action, now: Timestamp) -> Line {
        switch action {
        case .writeCheckpoint:
            return Line(level: .debug, message: "wrote the checkpoint", metadata: [:])
        case .publishBackendConfigs(let view):
            return Line(level: .debug, message: "published backend configs", metadata: ["version": "\(view.version)"])
        case .publishRoutingView(let view):
            return Line(level: .debug, message: "published the routing view", metadata: ["version": "\(view.version)"])
        case .assign(let assignment):
            return Line(level: .info, message: "assigned \(assignment.replica.tag) to node \(assignment.replica.node)", metadata: metadata(assignment.replica))
        case .drain(let replica, let deadline):
            let seconds = String(format: "%.1f", max(0, deadline.seconds(since: now)))
            return Line(level: .info, message: "asked \(replica.tag) to drain; killed in \(seconds) s unless drained", metadata: metadata(replica))
        case .forceKill(let replica):
            return Line(level: .info, message: "killed \(replica.tag) without draining", metadata: metadata(replica))
        case .pushUserConfig(let replica, _):
            return Line(level: .info, message: "sent \(replica.tag) its user config", metadata: metadata(replica))
        case .forget(let replica):
            return Line(level: .info, message: "forgot stopped \(replica.tag)", metadata: metadata(replica))
        case .completeGoal(let goal):
            return Line(level: .info, message: "goal \(goal) completed", metadata: ["goal": "\(goal)"])
        case .failGoal(let goal, let reason):
            return Line(level: .notice, message: "goal \(goal) failed: \(reason)", metadata: ["goal": "\(goal)"])
        }
    }

    /// One line for many decisions of `kind`: how many, per backend, on how many nodes, and
    /// the first few (nil for kinds that are never many: the checkpoint and the views).
    private static func summary(_ kind: Kind, _ group: [Action]) -> Line? {
        let replicas: [ReplicaReference] = group.compactMap { action in
            switch action {
            case .assign(let assignment): return assignment.replica
            case .drain(let replica, _), .forceKill(let replica), .pushUserConfig(let replica, _), .forget(let replica): return replica
            default: return nil
            }
        }
        let verb: String
        switch kind {
        case .assign: verb = "assigned"
        case .drain: verb = "asked to drain"
        case .forceKill: verb = "killed without draining"
        case .pushUserConfig: verb = "sent their user config to"
        case .forget: verb = "forgot stopped"
        case .completeGoal, .failGoal:
            let goals = group.compactMap { action -> String? in
                switch action {
                case .completeGoal(let goal), .failGoal(let goal, _): return goal
                default: return nil
                }
            }
            let first = goals.prefix(3).joined(separator: ", ")
            return Line(level: kind == .failGoal ? .notice : .info,
                        message: "\(goals.count) goals \(kind == .failGoal ? "failed (each goal's key says why)" : "completed") (first: \(first), …)",
                        metadata: ["goals": "\(goals.count)"])
        case .checkpoint, .configs, .routing:
            return nil
        }
        var perBackend: [String: Int] = [:]
        for replica in replicas { perBackend[replica.backend, default: 0] += 1 }
        let nodes = Set(replicas.map(\.node)).count
        let backends = perBackend.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
        let first = replicas.prefix(3).map(\.tag).joined(separator: ", ")
        return Line(level: .info, message: "\(verb) \(replicas.count) replicas (\(backends)) on \(nodes) node\(nodes == 1 ? "" : "s"); first: \(first), …",
                    metadata: ["replicas": "\(replicas.count)", "nodes": "\(nodes)"])
    }

    /// The lines for a step that changed the set of live nodes: each node now counted `gone`
    /// (and what was seen of it: still in the `nodes` set, whose ids are `listed`, means its
    /// record expired) or `alive`; over ``perKindLimit`` of either in one step (a fleet
    /// starting, a rack lost), one line with the count and the first few.
    static func nodeLines(gone: [String], alive: [String], listed: Set<String>) -> [Line] {
        var lines: [Line] = []
        if gone.count > perKindLimit {
            lines.append(Line(level: .warning, message: "\(gone.count) nodes are gone (first: \(gone.prefix(5).joined(separator: ", ")), …)",
                              metadata: ["nodes": "\(gone.count)"]))
        } else {
            for id in gone {
                let evidence = listed.contains(id) ? "its record expired (it is still in the nodes set)" : "it has no record and left the nodes set"
                lines.append(Line(level: .warning, message: "node \(id) is gone: \(evidence)", metadata: ["node": id]))
            }
        }
        if alive.count > perKindLimit {
            lines.append(Line(level: .info, message: "\(alive.count) nodes are alive (first: \(alive.prefix(5).joined(separator: ", ")), …)",
                              metadata: ["nodes": "\(alive.count)"]))
        } else {
            lines += alive.map { Line(level: .info, message: "node \($0) is alive", metadata: ["node": $0]) }
        }
        return lines
    }

    static func write(_ lines: [Line], to logger: Logger) {
        for line in lines {
            logger.log(level: line.level, "\(line.message)", metadata: line.metadata.mapValues { .string($0) })
        }
    }

    private static func metadata(_ replica: ReplicaReference) -> [String: String] {
        ["backend": replica.backend, "replica": replica.tag, "node": replica.node]
    }
}
