import SwerveCore
import SwerveProtocol

/// What a node agent read from Redis about its replicas.
struct NodeView: Sendable, Equatable {
    /// Valid assignments, by tag.
    var assigned: [String: AssignmentDocument] = [:]
    /// Assignments that could not be read, by tag, with the reason.
    var malformed: [String: String] = [:]
    /// Drain requests of this node's replicas, by tag.
    var drains: [String: DrainRequest] = [:]
}

/// A worker process this agent started and has not yet reaped.
struct RunningWorker: Sendable, Equatable {
    var tag: String
    var pid: Int32
    var killSent: Bool = false
}

enum NodeAction: Sendable, Equatable {
    case start(AssignmentDocument)
    /// SIGKILL to the worker's process group.
    case kill(tag: String, pid: Int32, reason: String)
    case reportMalformed(tag: String, reason: String)
}

/// Decides what a node agent does, as a pure function of what it read, what runs and the time.
///
/// - An assigned replica with no worker, no drain request, that never ran here before, is
///   started (once: the agent restarts nothing by itself — the leader decides).
/// - A worker whose assignment is gone, whose drain is forced, or whose drain deadline has
///   passed is killed (its whole process group).
/// - While the agent shuts down (`shutdownDeadline` set) it starts nothing, and once the
///   deadline passed it kills every worker still running.
/// - A malformed assignment is reported once and does not affect the other replicas.
enum NodeConvergence {
    static func actions(view: NodeView, running: [String: RunningWorker], ranBefore: Set<String>,
                        reported: Set<String>, now: Timestamp, shutdownDeadline: Timestamp?) -> [NodeAction] {
        var actions: [NodeAction] = []
        for tag in view.malformed.keys.sorted() where !reported.contains(tag) {
            actions.append(.reportMalformed(tag: tag, reason: view.malformed[tag]!))
        }
        for tag in running.keys.sorted() {
            let worker = running[tag]!
            guard !worker.killSent else { continue }
            if let deadline = shutdownDeadline, now >= deadline {
                actions.append(.kill(tag: tag, pid: worker.pid, reason: "it did not drain before the shutdown timeout"))
            } else if view.assigned[tag] == nil && view.malformed[tag] == nil {
                actions.append(.kill(tag: tag, pid: worker.pid, reason: "its assignment was removed"))
            } else if let drain = view.drains[tag], drain.force {
                actions.append(.kill(tag: tag, pid: worker.pid, reason: "force-kill requested"))
            } else if let drain = view.drains[tag], now >= drain.deadline {
                actions.append(.kill(tag: tag, pid: worker.pid, reason: "its drain deadline passed"))
            }
        }
        guard shutdownDeadline == nil else { return actions }
        for tag in view.assigned.keys.sorted()
        where running[tag] == nil && !ranBefore.contains(tag) && view.drains[tag] == nil {
            actions.append(.start(view.assigned[tag]!))
        }
        return actions
    }
}
