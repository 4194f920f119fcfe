import Foundation
@testable import SwerveCore
import Testing

/// Every user value has a bound (``Limits``); a value outside it is refused by name, in the
/// client's check and in the leader's, and changes nothing stored.
@Suite struct RequestLimits {
    @Test func aReplicaCountBeyondTheLimitNamesTheFieldTheValueAndTheLimit() {
        let problems = BackendConfigPatch(numReplicas: 100_000_000_000).problems()
        #expect(problems == [ValidationProblem(field: "config.numReplicas", message: "must be between 0 and 10000, got 100000000000")])
    }

    @Test func everyBoundedFieldIsChecked() {
        let config = BackendConfig(numReplicas: -1, maxConcurrentQueries: 100_001, userConfig: .string(String(repeating: "x", count: Limits.userConfigBytes)),
                                   gracefulShutdownTimeoutS: .nan, gracefulShutdownWaitLoopS: 3_601,
                                   routePrefix: "/" + String(repeating: "a", count: Limits.routePrefixLength),
                                   maxSurge: .count(Int.max), maxUnavailable: .percent(Int.min), upstreamTimeoutS: 0)
        let fields = Set(config.problems().map(\.field))
        #expect(fields == ["config.numReplicas", "config.maxConcurrentQueries", "config.userConfig", "config.gracefulShutdownTimeoutS",
                           "config.gracefulShutdownWaitLoopS", "config.routePrefix", "config.maxSurge", "config.maxUnavailable",
                           "config.upstreamTimeoutS"])
        #expect(BackendConfig(upstreamTimeoutS: .infinity).problems().map(\.field) == ["config.upstreamTimeoutS"])
        let replica = ReplicaConfig(
            workload: .command(arguments: Array(repeating: "a", count: Limits.commandArguments + 1), environment: ["A\u{0}": "1"], healthPath: "/h p"),
            resources: Resources(cpu: .infinity, memoryBytes: .max, custom: ["gpu": -0.5]))
        let replicaFields = Set(replica.problems().map(\.field))
        #expect(replicaFields == ["replicaConfig.command", "replicaConfig.environment", "replicaConfig.healthPath", "replicaConfig.resources.cpu",
                                  "replicaConfig.resources.memoryBytes", "replicaConfig.resources.custom.gpu"])
        #expect(backendTagProblems(String(repeating: "t", count: 101)).map(\.message).contains("must be at most 100 characters, got 101"))
    }

    @Test func valuesAtTheirBoundsAreAccepted() {
        let config = BackendConfig(numReplicas: Limits.replicasPerBackend.upperBound, maxConcurrentQueries: Limits.maxConcurrentQueries.upperBound,
                                   gracefulShutdownTimeoutS: 3_600, gracefulShutdownWaitLoopS: -0.0, maxSurge: .percent(100), maxUnavailable: .count(0),
                                   upstreamTimeoutS: Limits.upstreamTimeoutSeconds.upperBound)
        #expect(config.problems().isEmpty)
        #expect(BackendConfig(upstreamTimeoutS: Limits.upstreamTimeoutSeconds.lowerBound).problems().isEmpty)
        #expect(ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1_024, memoryBytes: 64 << 40)).problems().isEmpty)
    }

    @Test func theLeaderRefusesAnOutOfRangeScaleAndKeepsTheBackend() {
        var h = Harness()
        h.world.request(.createBackend(tag: "hello", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        h.settle()
        let before = h.state.backends
        let goal = h.world.request(.updateBackendConfig(tag: "hello", patch: BackendConfigPatch(numReplicas: 100_000_000_000)))
        let actions = h.step()
        #expect(actions.failedGoals[goal]?.contains("config.numReplicas: must be between 0 and 10000, got 100000000000") == true, "\(actions.failedGoals)")
        #expect(h.state.backends == before, "nothing stored changed")
        #expect(h.state.lastAppliedRequest == RequestID(milliseconds: 1, sequence: 2), "and the cursor moved past it")
    }

    @Test func theClusterWideReplicaLimitHoldsAcrossBackends() {
        var h = Harness(world: SimulatedWorld(nodes: []))
        for index in 0..<10 {
            h.world.request(.createBackend(tag: "b\(index)", config: BackendConfig(numReplicas: 10_000), replicaConfig: echo()))
        }
        let over = h.world.request(.createBackend(tag: "one-more", config: BackendConfig(numReplicas: 1), replicaConfig: echo()))
        let actions = h.step()
        #expect(actions.failedGoals[over]?.contains("would bring the cluster to 100001 replicas, the most it runs is 100000") == true, "\(actions.failedGoals)")
        #expect(h.state.backends.count == 10)
        let same = h.world.request(.updateBackendConfig(tag: "b0", patch: BackendConfigPatch(numReplicas: 10_000)))
        #expect(h.step().failedGoals[same] == nil, "the same target is still within the limit")
        let more = h.world.request(.createBackend(tag: "b1", config: BackendConfig(numReplicas: 10_001), replicaConfig: echo()))
        #expect(h.step().failedGoals[more] != nil, "above the per-backend bound")
        let down = h.world.request(.updateBackendConfig(tag: "b1", patch: BackendConfigPatch(numReplicas: 9_000)))
        #expect(h.step().failedGoals[down] == nil, "lowering a target is always allowed")
    }

    @Test func theBackendCountIsBounded() {
        var h = Harness(world: SimulatedWorld(nodes: []))
        for index in 0..<Limits.backends {
            h.world.request(.createBackend(tag: "b\(index)", config: BackendConfig(numReplicas: 0), replicaConfig: echo()))
        }
        let over = h.world.request(.createBackend(tag: "too-many", config: BackendConfig(numReplicas: 0), replicaConfig: echo()))
        let again = h.world.request(.createBackend(tag: "b7", config: BackendConfig(numReplicas: 0), replicaConfig: echo()))
        let actions = h.step()
        #expect(actions.failedGoals[over]?.contains("the most it keeps is 1000") == true, "\(actions.failedGoals)")
        #expect(actions.failedGoals[again] == nil, "an existing backend may still be changed")
        #expect(h.state.backends.count == Limits.backends)
    }
}

/// A request the controller cannot read (or has quarantined) fails its goal and moves the
/// cursor like an applied one: seen once, and a run of them does not stall the stream.
@Suite struct RefusedRequests {
    @Test func aRunOfRefusedEntriesFailsTheirGoalsAndTheCursorMovesPastThemAll() {
        var h = Harness()
        var goals: [GoalID] = []
        for index in 0..<150 {
            let goal = index % 3 == 0 ? nil : "bad-\(index)"
            if let goal { goals.append(goal) }
            h.world.refuse(goal: goal, reason: "request cannot be read: \(index)")
        }
        let good = h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 1), replicaConfig: echo()))
        let actions = h.step()
        for goal in goals { #expect(actions.failedGoals[goal]?.hasPrefix("request cannot be read") == true) }
        #expect(h.state.lastAppliedRequest == RequestID(milliseconds: 1, sequence: 151))
        #expect(h.state.requestsApplied == 151)
        #expect(h.backend("api") != nil, "the valid request after them was applied")
        h.settle()
        #expect(h.world.outcomes[good]?.failure == nil && h.world.outcomes[good] != nil)
    }

    @Test func aRefusalAtOrBeforeTheCursorIsNotSeenAgain() {
        var h = Harness()
        let id = h.world.refuse(goal: "bad", reason: "unreadable")
        h.step()
        var observations = Observations(now: h.world.now, refusedRequests: [RefusedRequest(id: id, goal: "bad", reason: "unreadable")], nodes: h.world.nodes)
        observations.randomSeed = 9
        let (next, actions) = Reconciler.reconcile(h.state, observations)
        #expect(actions.isEmpty && next == h.state)
    }

    @Test func refusedAndReadableRequestsApplyInStreamOrder() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 1), replicaConfig: echo()))
        h.world.refuse(goal: "bad", reason: "unreadable")
        let update = h.world.request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 3)))
        h.step()
        #expect(h.state.lastAppliedRequest == RequestID(milliseconds: 1, sequence: 3))
        #expect(h.backend("api")?.config.numReplicas == 3, "the update came after the create and was applied after it")
        h.settle()
        #expect(h.world.outcomes[update]?.failure == nil && h.world.outcomes["bad"]?.failure == "unreadable")
    }
}

/// Random and extreme requests, as any program could write them: the reconciler never traps,
/// never allocates beyond the limits, and every goal settles.
@Suite struct HostileRequests {
    struct Hostile {
        var random: SeededRandom
        let integers = [Int.max, Int.min, -1, 0, 1, 3, 500, 10_001, 100_000_000_000, Int(Int32.max)]
        let doubles = [Double.nan, .infinity, -.infinity, -0.0, 0, 1e300, -1e-300, 3_600, 3_600.5, .leastNonzeroMagnitude]
        let strings = ["", "/", "api", "/api", String(repeating: "x", count: 200_000), "a b", "/?#", "é", "\u{0}", "../../etc", "/" + String(repeating: "🙂", count: 300)]

        init(seed: UInt64) { random = SeededRandom(seed: seed &* 104_729 &+ 7) }

        mutating func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
        mutating func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }
        mutating func integer() -> Int { chance(50) ? pick(integers) : Int(random.next() % 8) }
        mutating func budget() -> ReplicaBudget { chance(50) ? .count(integer()) : .percent(chance(50) ? pick(integers) : Int(random.next() % 101)) }
        mutating func tag() -> String { chance(70) ? pick(["api", "web"]) : pick(strings) }

        mutating func config() -> BackendConfig {
            BackendConfig(numReplicas: integer(), maxConcurrentQueries: integer(),
                          userConfig: chance(20) ? .string(pick(strings)) : nil,
                          gracefulShutdownTimeoutS: chance(50) ? pick(doubles) : 1, gracefulShutdownWaitLoopS: chance(50) ? pick(doubles) : 0,
                          routePrefix: chance(50) ? pick(strings) : nil, maxSurge: budget(), maxUnavailable: budget())
        }

        mutating func replicaConfig() -> ReplicaConfig {
            let resources = Resources(cpu: chance(50) ? pick(doubles) : 0.5, memoryBytes: chance(30) ? Int64(pick(integers)) : 0,
                                      custom: chance(20) ? [pick(strings): pick(doubles)] : [:])
            let workload: ReplicaConfig.Workload = chance(50)
                ? .builtin(name: chance(80) ? "echo" : pick(strings))
                : .command(arguments: chance(90) ? ["server", pick(strings)] : [], environment: chance(30) ? [pick(strings): pick(strings)] : [:],
                           healthPath: chance(30) ? pick(strings) : nil)
            return ReplicaConfig(workload: workload, resources: resources)
        }

        mutating func operation() -> Request.Operation {
            switch random.next() % 4 {
            case 0, 1: return .createBackend(tag: tag(), config: config(), replicaConfig: replicaConfig())
            case 2:
                let source = config()
                return .updateBackendConfig(tag: tag(), patch: BackendConfigPatch(
                    numReplicas: chance(60) ? source.numReplicas : nil, maxConcurrentQueries: chance(30) ? source.maxConcurrentQueries : nil,
                    gracefulShutdownTimeoutS: chance(30) ? source.gracefulShutdownTimeoutS : nil,
                    routePrefix: chance(30) ? (chance(50) ? .clear : .set(pick(strings))) : nil,
                    maxSurge: chance(30) ? source.maxSurge : nil, maxUnavailable: chance(30) ? source.maxUnavailable : nil))
            default: return .deleteBackend(tag: tag(), force: chance(50))
            }
        }
    }

    @Test(arguments: 0..<60 as Range<UInt64>)
    func hostileRequestsNeverTrapAndEveryGoalSettles(seed: UInt64) {
        var hostile = Hostile(seed: seed)
        // Room for every valid request (up to the limits), so that each goal can settle.
        let roomy = Resources(cpu: 1e9, memoryBytes: 1 << 60, custom: Dictionary(hostile.strings.map { ($0, 1e9) }, uniquingKeysWith: { $1 }))
        var h = Harness(world: SimulatedWorld(nodes: [NodeInfo(id: "a", total: roomy), NodeInfo(id: "b", total: roomy)]))
        var goals: [GoalID] = []
        for _ in 0..<12 {
            for _ in 0..<Int(hostile.random.next() % 4) {
                if hostile.chance(15) {
                    h.world.refuse(goal: "refused-\(goals.count)", reason: "unreadable")
                    goals.append("refused-\(goals.count)")
                } else {
                    goals.append(h.world.request(hostile.operation(), goal: "goal-\(seed)-\(goals.count)"))
                }
            }
            h.step()
            h.world.advance(milliseconds: 300)
            let records = h.state.backends.reduce(0) { $0 + $1.replicas.count }
            #expect(records <= Limits.replicasInCluster + Limits.budgetCount.upperBound, "seed \(seed): \(records) replica records")
        }
        h.settle(limit: 400)
        for goal in goals {
            #expect(h.world.outcomes[goal] != nil, "seed \(seed): goal \(goal) never settled; \(Summary(h.state))")
        }
        for backend in h.state.backends {
            #expect(backend.config.problems().isEmpty, "seed \(seed): \(backend.tag) stored an invalid config: \(backend.config.problems())")
            #expect(backend.replicaConfig.problems().isEmpty, "seed \(seed): \(backend.tag) stored an invalid replica config")
        }
    }
}

/// Sums over values a node or a request may carry saturate instead of trapping: a node record
/// is read from Redis and may say anything, and a trap would take every leader down in turn.
@Suite struct SaturatingArithmetic {
    @Test func integersStopAtTheirBoundsBothWays() {
        #expect(Int64.max.addingSaturated(1) == .max)
        #expect(Int64.min.addingSaturated(-1) == .min)
        #expect(Int64(40).addingSaturated(2) == 42)
        #expect(Int.max.multipliedSaturated(by: 2) == .max)
        #expect(Int.max.multipliedSaturated(by: -2) == .min)
        #expect(Int.min.multipliedSaturated(by: -1) == .max)
        #expect(Int(6).multipliedSaturated(by: 7) == 42)
    }

    @Test func resourcesOfAnyMemoryAddAndSubtractWithoutTrapping() {
        let huge = Resources(cpu: 1, memoryBytes: .max)
        #expect((huge + huge).memoryBytes == .max)
        #expect((Resources(memoryBytes: .min) - huge).memoryBytes == .min)
        #expect((Resources(memoryBytes: 0) - Resources(memoryBytes: .min)).memoryBytes == .max)
        var free = Resources(cpu: 8, memoryBytes: 1 << 30)
        free.subtract(huge, times: 3)
        #expect(free.memoryBytes == -Int64.max + (1 << 30), "taken saturates at Int64.max")
        #expect(!free.fits(Resources(cpu: 0.1, memoryBytes: 1)))
    }
}
