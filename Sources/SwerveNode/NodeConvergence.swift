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
    /// Running workers kept although no assignment lists them: Redis lost the writes that
    /// assigned them (see ``NodeConvergence/storeLostWrites(lastRead:read:)``).
    var keptAfterLoss: Set<String> = []
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
/// - A worker kept after a loss of Redis's data is not killed for a missing assignment (a drain
///   or force-kill still applies): killing every worker because the store forgot them would turn
///   a store failure into an outage.
enum NodeConvergence {
    /// Whether the assignments' version says Redis lost writes: it only ever grows while the
    /// node lives (the leader deletes it only with a node gone for an hour), so one that went
    /// back, or vanished, since the last read came from a store restored from an older file,
    /// restarted empty, or a replica promoted before it had them.
    static func storeLostWrites(lastRead: Int64?, read: Int64?) -> Bool {
        guard let lastRead else { return false }
        guard let read else { return true }
        return read < lastRead
    }

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
            } else if view.assigned[tag] == nil && view.malformed[tag] == nil && !view.keptAfterLoss.contains(tag) {
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
