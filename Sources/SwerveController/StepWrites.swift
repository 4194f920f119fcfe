import SwerveCore
import SwerveProtocol

/// What one step writes, in order: its actions as fenced calls, with the changed status right
/// after the checkpoint (or first, when the step has no checkpoint), then the step's events;
/// and where each ``ControllerFailpoint`` a step reaches sits. Pure: built from the step's
/// decisions, carried out by ``ControllerTerm``.
struct StepWrites {
    private(set) var calls: [FencedCall] = []
    /// Each failpoint this step reaches fires after the call at this index.
    private(set) var failpoints: [ControllerFailpoint: Int] = [:]

    /// - Parameters:
    ///   - status: the status to write, nil when it did not change.
    ///   - appliedRequest: the checkpoint records a newly applied request (where
    ///     ``ControllerFailpoint/afterRequest`` sits).
    ///   - events: written right after the checkpoint (and the status).
    ///   - checkpoints: what the stored checkpoint holds; a checkpoint writes only what differs,
    ///     and the ledger then describes it.
    ///   - routing: how the routing view goes out (whole or as a delta).
    init(_ actions: [Action], status: [String: BackendStatus]?, appliedRequest: Bool, events: [EventEntry], epoch: Int64, keys: ClusterKeys,
         checkpoints: inout CheckpointLedger, routing: inout RoutingPublisher) {
        var wroteStatus = false, wroteEvents = false
        for action in actions {
            switch action {
            case .writeCheckpoint(let state):
                // The user configs this step pushes are recorded with its checkpoint: a leader
                // that loads it pushes those again (this one may die before it does).
                let pushing = actions.compactMap { action -> String? in
                    if case .pushUserConfig(let replica, _) = action { return replica.tag }
                    return nil
                }
                calls.append(.writeCheckpoint(checkpoints.write(state, pushing: pushing), lastApplied: state.lastAppliedRequest, epoch: epoch, keys: keys))
                failpoints[.afterCheckpoint] = calls.count - 1
                if appliedRequest { failpoints[.afterRequest] = calls.count - 1 }
                if let status {
                    calls.append(.writeStatus(status, keys: keys))
                    wroteStatus = true
                }
                if !events.isEmpty {
                    calls.append(.appendEvents(events, keys: keys))
                    wroteEvents = true
                }
            case .publishBackendConfigs(let view):
                calls.append(.publishSnapshot(configs: view, epoch: epoch, keys: keys))
            case .publishRoutingView(let view):
                switch routing.publish(view) {
                case .whole(let view): calls.append(.publishSnapshot(routing: view, epoch: epoch, keys: keys))
                case .delta(let delta): calls.append(.publishRoutingDelta(delta, epoch: epoch, keys: keys))
                }
            case .assign(let assignment):
                calls.append(.assign(assignment, keys: keys))
                failpoints[.afterAssign] = calls.count - 1
            case .drain(let replica, let deadline):
                calls.append(.drain(replica, DrainRequest(tag: replica.tag, deadline: deadline, force: false), keys: keys))
            case .forceKill(let replica):
                // Never placed: there is no process to kill.
                guard !replica.node.isEmpty else { continue }
                calls.append(.drain(replica, DrainRequest(tag: replica.tag, deadline: 0, force: true), keys: keys))
            case .pushUserConfig(let replica, let userConfig):
                calls.append(.pushUserConfig(replica, userConfig, keys: keys))
            case .forget(let replica):
                calls.append(.forget(replica, keys: keys))
            case .completeGoal(let goal):
                if failpoints[.beforeGoalOutcomes] == nil { failpoints[.beforeGoalOutcomes] = calls.count - 1 }
                calls.append(.settleGoal(GoalOutcome(goal: goal), keys: keys))
            case .failGoal(let goal, let reason):
                if failpoints[.beforeGoalOutcomes] == nil { failpoints[.beforeGoalOutcomes] = calls.count - 1 }
                calls.append(.settleGoal(GoalOutcome(goal: goal, failure: reason), keys: keys))
            }
        }
        // No checkpoint this step (the state did not change), but events to record (a term's
        // `LeaderElected`): they go first, on their own.
        if !events.isEmpty, !wroteEvents {
            calls.insert(.appendEvents(events, keys: keys), at: 0)
            failpoints = failpoints.mapValues { $0 + 1 }
        }
        // No checkpoint this step, but the status differs from what this term last wrote (its
        // first step): it goes first, on its own.
        if let status, !wroteStatus {
            calls.insert(.writeStatus(status, keys: keys), at: 0)
            failpoints = failpoints.mapValues { $0 + 1 }
        }
        // "After the checkpoint" needs something after it; "before goal outcomes" something before them.
        if failpoints[.afterCheckpoint] == calls.count - 1 { failpoints[.afterCheckpoint] = nil }
        if failpoints[.beforeGoalOutcomes] == -1 { failpoints[.beforeGoalOutcomes] = nil }
    }

    /// The first (in call order) failpoint this step reaches that `isArmed`, with the calls up
    /// to and including its position and the calls after it; nil when none is armed.
    func split(where isArmed: (ControllerFailpoint) -> Bool) -> (through: [FencedCall], point: ControllerFailpoint, after: [FencedCall])? {
        guard let (point, index) = failpoints.sorted(by: { $0.value < $1.value }).first(where: { isArmed($0.key) }) else { return nil }
        return (Array(calls[...index]), point, Array(calls[(index + 1)...]))
    }
}
