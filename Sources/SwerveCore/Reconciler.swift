/// Settings of the reconciler that are not part of any backend's config.
public struct ReconcilerSettings: Sendable, Hashable {
    /// A placed replica that is not ready after this long is replaced.
    public var startTimeoutS: Double
    /// After min(`maxFailedStarts`, `failedStartsPerReplica` × target) failed starts a backend
    /// is marked failed.
    public var maxFailedStarts: Int
    public var failedStartsPerReplica: Int
    /// How many goal outcomes the checkpoint keeps for replay after a failover.
    public var goalOutcomeHistory: Int

    public init(startTimeoutS: Double = 60, maxFailedStarts: Int = 20, failedStartsPerReplica: Int = 3, goalOutcomeHistory: Int = 256) {
        self.startTimeoutS = startTimeoutS
        self.maxFailedStarts = maxFailedStarts
        self.failedStartsPerReplica = failedStartsPerReplica
        self.goalOutcomeHistory = goalOutcomeHistory
    }

    func failedStartLimit(target: Int) -> Int {
        max(1, min(maxFailedStarts, failedStartsPerReplica.multipliedSaturated(by: max(target, 1))))
    }
}

/// The pure heart of Swerve: given what the leader knows and what it just observed, decide the
/// new state and what to do.
///
/// `reconcile` is level-based and idempotent: run twice with the same observations, the
/// second run returns no action. It reads no clock, does no I/O and draws randomness only from
/// `observations.randomSeed`.
public enum Reconciler {
    public static func reconcile(
        _ state: BackendState,
        _ observations: Observations,
        settings: ReconcilerSettings = ReconcilerSettings()
    ) -> (state: BackendState, actions: [Action]) {
        var step = ReconcileStep(state: state, observations: observations, settings: settings)
        step.applyRequests()
        step.applyReplicaObservations()
        step.autoscaleBackends()
        step.scaleBackends()
        step.requestStops()
        step.placePendingReplicas()
        step.pushUserConfigs()
        step.forgetStoppedReplicas()
        step.settleGoals()
        return step.finish()
    }
}

/// One reconcile step in progress: the state being changed and the actions collected, by kind,
/// so they can be emitted in the order the protocol needs.
struct ReconcileStep {
    var state: BackendState
    let observations: Observations
    let settings: ReconcilerSettings
    var random: SeededRandom

    var changed = false
    var configsChanged = false
    var routingChanged = false
    var kills: [Action] = []
    var drains: [Action] = []
    var assignments: [Action] = []
    var pushes: [Action] = []
    var forgets: [Action] = []
    var goalOutcomes: [GoalOutcome] = []
    /// Live nodes being drained: their replicas are replaced elsewhere (usually none).
    let drainingNodes: Set<String>

    init(state: BackendState, observations: Observations, settings: ReconcilerSettings) {
        self.state = state
        self.observations = observations
        self.settings = settings
        self.random = SeededRandom(seed: observations.randomSeed)
        var draining: Set<String> = []
        for (id, node) in observations.nodes where node.alive && node.draining { draining.insert(id) }
        self.drainingNodes = draining
    }

    var now: Timestamp { observations.now }

    /// Write-ahead order: checkpoint; then what routers must stop using before anything is
    /// drained or killed; then drains, kills, starts, pushes, clean-ups; goal outcomes last.
    mutating func finish() -> (state: BackendState, actions: [Action]) {
        if configsChanged { state.configsVersion += 1 }
        if routingChanged { state.routingVersion += 1 }
        if !goalOutcomes.isEmpty {
            state.recentGoalOutcomes += goalOutcomes
            let excess = state.recentGoalOutcomes.count - settings.goalOutcomeHistory
            if excess > 0 { state.recentGoalOutcomes.removeFirst(excess) }
        }
        guard changed || configsChanged || routingChanged || !goalOutcomes.isEmpty else { return (state, []) }
        var actions: [Action] = [.writeCheckpoint(state)]
        if configsChanged { actions.append(.publishBackendConfigs(state.backendConfigsView)) }
        if routingChanged { actions.append(.publishRoutingView(state.routingView)) }
        actions += drains + kills + assignments + pushes + forgets
        actions += goalOutcomes.map { outcome in
            outcome.failure.map { .failGoal(outcome.goal, reason: $0) } ?? .completeGoal(outcome.goal)
        }
        return (state, actions)
    }

    // MARK: Goals

    mutating func complete(_ goal: GoalID) {
        goalOutcomes.append(GoalOutcome(goal: goal))
    }

    mutating func fail(_ goal: GoalID, _ reason: String) {
        goalOutcomes.append(GoalOutcome(goal: goal, failure: reason))
    }

    /// A goal is settled when its backend converged (complete) or failed; a delete's when the
    /// backend is gone (see `forgetStoppedReplicas`).
    mutating func settleGoals() {
        for index in state.backends.indices where !state.backends[index].goals.isEmpty && !state.backends[index].deleting {
            let backend = state.backends[index]
            if let failure = backend.failure {
                for goal in backend.goals { fail(goal, "backend \(backend.tag) failed: \(failure)") }
                state.backends[index].goals = []
                changed = true
            } else if backend.hasConverged {
                for goal in backend.goals { complete(goal) }
                state.backends[index].goals = []
                changed = true
            }
        }
    }
}

extension BackendRecord {
    /// Exactly the target number of replicas, all RUNNING at the current version and user
    /// config, and nothing else (nothing pending, starting or stopping).
    var hasConverged: Bool {
        replicas.count == target && replicas.allSatisfy {
            $0.state == .running && $0.version == version && $0.userConfigVersion == userConfigVersion
        }
    }
}
