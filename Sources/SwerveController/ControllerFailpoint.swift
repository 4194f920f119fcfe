/// The controller's failpoints (see ``Failpoints``): where a test may crash it, or fail its
/// step, between two of a step's writes.
public enum ControllerFailpoint: String, CaseIterable, Sendable {
    /// After a step's checkpoint was written, before any of its other actions (only in steps
    /// that have other actions).
    case afterCheckpoint = "controller.after-checkpoint"
    /// After a step assigned its replicas to nodes, before what follows them (user-config
    /// pushes, clean-ups, goal outcomes) and before the routing view that will include them.
    case afterAssign = "controller.after-assign"
    /// After the checkpoint that records a newly applied request, before anything else.
    case afterRequest = "controller.after-request"
    /// After a step recorded its request attempt, before it applies a request; give the goal
    /// after a colon to fire only for that request (`controller.applying-request:g-1=crash`).
    case applyingRequest = "controller.applying-request"
    /// After everything a step does but announcing its goal outcomes.
    case beforeGoalOutcomes = "controller.before-goal-outcomes"

    /// Every name, for ``Failpoints/parse(_:known:)``.
    public static var names: [String] { allCases.map(\.rawValue) }
}
