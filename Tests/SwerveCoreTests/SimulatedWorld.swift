@testable import SwerveCore
import Testing

/// Plays the controller's I/O, the node agents and the workers for the pure core: actions go
/// in, the next observations come out. Replicas become ready, drain and die as scripted.
struct SimulatedWorld {
    var now = Timestamp(milliseconds: 1_700_000_000_000)
    var nodes: [String: NodeInfo]
    /// What each replica's keys say.
    var replicas: [String: ReplicaObservation] = [:]
    /// Assigned, not yet ready; becomes ready at the next `advance` unless held.
    var starting: Set<String> = []
    /// Asked to drain; drained at the next `advance` unless held.
    var draining: Set<String> = []
    var holdReadiness = false
    var holdDrains = false
    var pendingRequests: [Request] = []
    var pendingRefusals: [RefusedRequest] = []
    var nextRequest: UInt64 = 1
    var seed: UInt64 = 1
    var outcomes: [GoalID: GoalOutcome] = [:]
    var routingView: RoutingView?
    var configsView: BackendConfigsView?
    /// The checkpoint as Redis would hold it: every write applied to the last, part by part.
    var storedCheckpoint: Checkpoint.Stored?
    var checkpointLedger = CheckpointLedger()
    var actionLog: [[Action]] = []
    /// What the routers' reports say of autoscaled backends (the leader's window, played).
    var loads: [String: BackendLoad] = [:]

    init(nodes: [NodeInfo] = [NodeInfo(id: "a", total: Resources(cpu: 8, memoryBytes: 16 << 30)), NodeInfo(id: "b", total: Resources(cpu: 8, memoryBytes: 16 << 30))]) {
        self.nodes = Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, $0) })
    }

    /// Queues a request; returns its goal id.
    @discardableResult
    mutating func request(_ operation: Request.Operation, goal: GoalID? = nil) -> GoalID {
        let goal = goal ?? "goal-\(nextRequest)"
        pendingRequests.append(Request(id: RequestID(milliseconds: 1, sequence: nextRequest), goal: goal, operation: operation))
        nextRequest += 1
        return goal
    }

    /// Queues an entry the controller refuses (unreadable or quarantined); returns its id.
    @discardableResult
    mutating func refuse(goal: GoalID?, reason: String) -> RequestID {
        let id = RequestID(milliseconds: 1, sequence: nextRequest)
        pendingRefusals.append(RefusedRequest(id: id, goal: goal, reason: reason))
        nextRequest += 1
        return id
    }

    mutating func observe() -> Observations {
        defer { pendingRequests = []; pendingRefusals = []; seed &+= 1 }
        return Observations(now: now, requests: pendingRequests, refusedRequests: pendingRefusals, nodes: nodes, replicas: replicas, randomSeed: seed, loads: loads)
    }

    /// Carries out a step's actions, checking the protocol's ordering rules as it goes.
    mutating func perform(_ actions: [Action], sourceLocation: SourceLocation = #_sourceLocation) {
        actionLog.append(actions)
        if !actions.isEmpty, case .writeCheckpoint = actions[0] {} else if !actions.isEmpty {
            Issue.record("the first action is not the checkpoint: \(actions[0])", sourceLocation: sourceLocation)
        }
        for action in actions {
            switch action {
            case .writeCheckpoint(let state):
                storedCheckpoint = Checkpoint.Stored.applying(checkpointLedger.write(state), to: storedCheckpoint)
            case .publishBackendConfigs(let view):
                if let old = configsView, view.version < old.version { Issue.record("configs view went backwards", sourceLocation: sourceLocation) }
                configsView = view
            case .publishRoutingView(let view):
                if let old = routingView, view.version < old.version { Issue.record("routing view went backwards", sourceLocation: sourceLocation) }
                routingView = view
            case .assign(let assignment):
                if replicas[assignment.replica.tag]?.endpoint == nil { starting.insert(assignment.replica.tag) }
            case .drain(let replica, _):
                draining.insert(replica.tag)
            case .forceKill(let replica):
                starting.remove(replica.tag)
                draining.remove(replica.tag)
                replicas[replica.tag] = ReplicaObservation(exit: "killed by SIGKILL")
            case .forget(let replica):
                replicas[replica.tag] = nil
                starting.remove(replica.tag)
                draining.remove(replica.tag)
            case .pushUserConfig:
                break
            case .completeGoal(let goal):
                outcomes[goal] = GoalOutcome(goal: goal)
            case .failGoal(let goal, let reason):
                outcomes[goal] = GoalOutcome(goal: goal, failure: reason)
            }
        }
    }

    /// Time passes: started replicas become ready, draining ones drain.
    mutating func advance(milliseconds: Int64 = 100) {
        now = now.adding(milliseconds: milliseconds)
        if !holdReadiness {
            for tag in starting.sorted() {
                replicas[tag] = .ready(HostPort(host: "10.0.0.1", port: UInt16(20000 + abs(tag.hashValue % 10000))), pid: 100)
            }
            starting = []
        }
        if !holdDrains {
            for tag in draining.sorted() {
                var observation = replicas[tag] ?? ReplicaObservation()
                observation.drained = true
                observation.endpoint = nil
                replicas[tag] = observation
            }
            draining = []
        }
    }

    /// Simulates a process dying on its own.
    mutating func kill(_ tag: String, reason: String = "exit code 1") {
        starting.remove(tag)
        draining.remove(tag)
        replicas[tag] = ReplicaObservation(exit: reason)
    }
}

/// The core plus a world, stepped together.
struct Harness {
    var state = BackendState()
    var world = SimulatedWorld()
    var settings = ReconcilerSettings()

    /// One reconcile step; returns its actions (already performed on the world).
    @discardableResult
    mutating func step(sourceLocation: SourceLocation = #_sourceLocation) -> [Action] {
        let (next, actions) = Reconciler.reconcile(state, world.observe(), settings: settings)
        state = next
        world.perform(actions, sourceLocation: sourceLocation)
        return actions
    }

    /// Steps and advances time until nothing changes (or `limit` steps), returning all actions.
    @discardableResult
    mutating func settle(limit: Int = 50, sourceLocation: SourceLocation = #_sourceLocation) -> [Action] {
        var all: [Action] = []
        for _ in 0..<limit {
            let actions = step(sourceLocation: sourceLocation)
            all += actions
            if actions.isEmpty && world.starting.isEmpty && world.draining.isEmpty { return all }
            world.advance()
        }
        Issue.record("did not settle in \(limit) steps", sourceLocation: sourceLocation)
        return all
    }

    func backend(_ tag: String) -> BackendRecord? { state.backend(tag) }

    func count(_ tag: String, _ replicaState: ReplicaState) -> Int {
        backend(tag)?.replicas.filter { $0.state == replicaState }.count ?? 0
    }
}

func echo(cpu: Double = 1) -> ReplicaConfig {
    ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: cpu))
}

func command(_ arguments: String...) -> ReplicaConfig {
    ReplicaConfig(workload: .command(arguments: arguments), resources: Resources(cpu: 1))
}

extension Array where Element == Action {
    var assignedTags: [String] { compactMap { if case .assign(let a) = $0 { a.replica.tag } else { nil } } }
    var drainedTags: [String] { compactMap { if case .drain(let r, _) = $0 { r.tag } else { nil } } }
    var killedTags: [String] { compactMap { if case .forceKill(let r) = $0 { r.tag } else { nil } } }
    var pushedTags: [String] { compactMap { if case .pushUserConfig(let r, _) = $0 { r.tag } else { nil } } }
    var completedGoals: [GoalID] { compactMap { if case .completeGoal(let g) = $0 { g } else { nil } } }
    var failedGoals: [GoalID: String] {
        Dictionary(uniqueKeysWithValues: compactMap { if case .failGoal(let g, let r) = $0 { (g, r) } else { nil } })
    }
    func index(where predicate: (Action) -> Bool) -> Int? { firstIndex(where: predicate) }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
