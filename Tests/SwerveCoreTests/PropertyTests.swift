@testable import SwerveCore
import Testing

/// Random but reproducible scenarios: each seed is one sequence of requests, faults and delays.
/// A failure names its seed; rerun with that seed alone to debug.
struct Scenario {
    var random: SeededRandom
    let tags = ["api", "web", "batch"]
    let replicaConfigs = [echo(), command("server", "--v1"), command("server", "--v2")]

    init(seed: UInt64) { random = SeededRandom(seed: seed &* 7919 &+ 13) }

    mutating func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }
    mutating func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
    mutating func number(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(random.next() % UInt64(range.count)) }

    mutating func operation() -> Request.Operation {
        let tag = pick(tags)
        switch random.next() % 10 {
        case 0..<5:
            let budgets: [(ReplicaBudget, ReplicaBudget)] = [(.percent(25), .percent(25)), (.count(1), .count(0)), (.count(0), .count(1)), (.count(2), .percent(50))]
            let (surge, unavailable) = pick(budgets)
            return .createBackend(tag: tag, config: BackendConfig(numReplicas: number(0...6), maxSurge: surge, maxUnavailable: unavailable), replicaConfig: pick(replicaConfigs))
        case 5..<8:
            return chance(50)
                ? .updateBackendConfig(tag: tag, patch: BackendConfigPatch(numReplicas: number(0...6)))
                : .updateBackendConfig(tag: tag, patch: BackendConfigPatch(userConfig: .set(.number(Double(number(0...3))))))
        default:
            return .deleteBackend(tag: tag, force: chance(30))
        }
    }
}

/// The backend-level result two runs are compared on (replica tags are random, so not those).
struct Summary: Equatable, CustomStringConvertible {
    var backends: [String: String]
    var description: String { backends.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ") }

    init(_ state: BackendState) {
        backends = Dictionary(uniqueKeysWithValues: state.backends.map { backend in
            let running = backend.replicas.filter { $0.state == .running && $0.version == backend.version }.count
            return (backend.tag, "\(backend.config.numReplicas) wanted, \(running) running v\(backend.version.prefix(6)), \(backend.replicas.count) records, deleting \(backend.deleting)")
        })
    }
}

@Suite struct Invariants {
    @Test(arguments: 0..<100 as Range<UInt64>)
    func randomSequencesKeepEveryInvariant(seed: UInt64) throws {
        var scenario = Scenario(seed: seed)
        var h = Harness(world: SimulatedWorld(nodes: (1...3).map { NodeInfo(id: "n\($0)", total: Resources(cpu: 6)) }))
        h.settings.startTimeoutS = 2
        h.world.seed = seed
        var goals: [GoalID] = []

        for _ in 0..<60 {
            if scenario.chance(30) { goals.append(h.world.request(scenario.operation())) }
            var faulted = false
            if scenario.chance(8), let victim = h.state.backends.flatMap(\.replicas).filter({ $0.state.isAlive && $0.node != nil }).map(\.tag).randomElement(using: &scenario.random) {
                h.world.kill(victim)
                faulted = true
            }
            h.world.holdReadiness = scenario.chance(20)
            h.world.holdDrains = scenario.chance(20)

            let before = h.state
            h.step()
            try checkInvariants(before: before, after: h.state, faulted: faulted, world: h.world, seed: seed)
            h.world.advance(milliseconds: Int64(scenario.number(50...700)))
        }

        // Favourable from here on: everything starts and drains; every goal must settle.
        h.world.holdReadiness = false
        h.world.holdDrains = false
        h.settle(limit: 200)
        for goal in goals {
            #expect(h.world.outcomes[goal] != nil, "seed \(seed): goal \(goal) never settled; state: \(Summary(h.state))")
        }
    }

    func checkInvariants(before: BackendState, after: BackendState, faulted: Bool, world: SimulatedWorld, seed: UInt64) throws {
        #expect(try Checkpoint.decode(Checkpoint.encode(after)) == after, "seed \(seed): checkpoint round trip")
        if let stored = world.storedCheckpoint {
            // Every step wrote only what it changed; the parts add up to the state all the same.
            #expect(try Checkpoint.decode(stored) == after, "seed \(seed): the incrementally written checkpoint is not the state")
        }
        for backend in after.backends where !backend.deleting {
            let target = backend.config.numReplicas
            let (surge, unavailable) = backend.config.rollingBudget(target: target)
            let alive = backend.replicas.filter { $0.state.isAlive }.count
            #expect(alive <= target + surge, "seed \(seed): \(backend.tag) has \(alive) alive, target \(target) + surge \(surge)")

            // Availability: with the same config and no fault this step, a backend that had at
            // least target − unavailable RUNNING keeps at least that many.
            guard !faulted, let previous = before.backend(backend.tag), previous.generation == backend.generation,
                  previous.config.numReplicas == target, previous.config.maxUnavailable == backend.config.maxUnavailable else { continue }
            let floor = max(0, target - unavailable)
            let runningBefore = previous.replicas.filter { $0.state == .running }.count
            let runningAfter = backend.replicas.filter { $0.state == .running }.count
            if runningBefore >= floor {
                #expect(runningAfter >= floor, "seed \(seed): \(backend.tag) dropped to \(runningAfter) running, below \(target) − \(unavailable)")
            }
        }
        if let view = world.routingView {
            let running = Set(after.backends.filter { !$0.deleting }.flatMap(\.replicas).filter { $0.state == .running }.map(\.tag))
            #expect(Set(view.backends.values.flatMap { $0.map(\.tag) }) == running, "seed \(seed): routing view is not exactly the running replicas")
        }
    }

    @Test(arguments: 0..<50 as Range<UInt64>)
    func recoveringFromAnyCheckpointConvergesLikeNotCrashing(seed: UInt64) throws {
        var scenario = Scenario(seed: seed)
        let schedule: [(step: Int, operation: Request.Operation)] = (0..<6).map { _ in (scenario.number(0...20), scenario.operation()) }
        let crashAt = scenario.number(0...24)

        func run(crashing: Bool) throws -> (Summary, [GoalID: Bool]) {
            var h = Harness(world: SimulatedWorld(nodes: (1...2).map { NodeInfo(id: "n\($0)", total: Resources(cpu: 12)) }))
            h.world.seed = seed
            var goals: [GoalID] = []
            for step in 0..<25 {
                for (index, item) in schedule.enumerated() where item.step == step {
                    goals.append(h.world.request(item.operation, goal: "g\(index)"))
                }
                if crashing && step == crashAt {
                    // The leader checkpoints, then dies before any other action; a new leader
                    // loads the checkpoint and recovers.
                    let (_, actions) = Reconciler.reconcile(h.state, h.world.observe(), settings: h.settings)
                    if case .writeCheckpoint(let written)? = actions.first {
                        h.world.perform([actions[0]])
                        h.state = try Checkpoint.decode(try #require(h.world.storedCheckpoint))
                        #expect(h.state == written)
                    }
                    h.world.perform([.writeCheckpoint(h.state)] + Reconciler.recoveryActions(for: h.state))
                } else {
                    h.step()
                }
                h.world.advance()
            }
            h.settle(limit: 100)
            return (Summary(h.state), Dictionary(uniqueKeysWithValues: goals.map { ($0, h.world.outcomes[$0]?.failure == nil && h.world.outcomes[$0] != nil) }))
        }

        let (calm, calmGoals) = try run(crashing: false)
        let (crashed, crashedGoals) = try run(crashing: true)
        #expect(crashed == calm, "seed \(seed), crash at step \(crashAt): \(crashed) vs \(calm)")
        #expect(crashedGoals == calmGoals, "seed \(seed): goal outcomes differ")
    }
}
