import Foundation
@testable import SwerveCore
import Testing

/// Every autoscaling rule on a simulated clock: delays, factors, bounds, the look-back window,
/// a failover, a dead router, zero.
@Suite struct AutoscalerRules {
    let t0 = Timestamp(milliseconds: 1_700_000_000_000)
    let config = AutoscalingConfig(minReplicas: 1, maxReplicas: 20, targetOngoingRequests: 2, upscaleDelayS: 0.5, downscaleDelayS: 30,
                                   lookBackPeriodS: 5)

    func load(_ average: Double, covered: Double = 5, waiting: Bool = false) -> BackendLoad {
        BackendLoad(average: average, coveredS: covered, waiting: waiting)
    }

    @Test func theCountIsTheLoadOverTheTargetRoundedUp() {
        #expect(Autoscaler.wantedCount(config, current: 1, average: 37.5) == 19)
        #expect(Autoscaler.wantedCount(config, current: 1, average: 4) == 2, "exactly 2 per replica")
        #expect(Autoscaler.wantedCount(config, current: 1, average: 0.6) == 1)
        #expect(Autoscaler.wantedCount(config, current: 5, average: 0) == 1, "never below minReplicas")
        #expect(Autoscaler.wantedCount(config, current: 5, average: 1_000) == 20, "never above maxReplicas")
    }

    @Test func anUpscaleWaitsForItsDelayAndSaysWhy() {
        var state = AutoscalingState(desired: 1)
        state = Autoscaler.decide(config, state, load: load(37.5), now: t0)
        #expect(state.desired == 1 && state.wanted == 19 && state.wantedSince == t0)
        state = Autoscaler.decide(config, state, load: load(37.5), now: t0.adding(seconds: 0.4))
        #expect(state.desired == 1, "0.4 s of the 0.5 s delay")
        state = Autoscaler.decide(config, state, load: load(37.5), now: t0.adding(seconds: 0.5))
        #expect(state.desired == 19 && state.wanted == nil)
        #expect(state.reason == "load 37.5 over 5 s, target 2 → 19 replicas")
    }

    @Test func aDownscaleWaitsForItsDelayAndAFullWindow() {
        var state = AutoscalingState(desired: 10)
        state = Autoscaler.decide(config, state, load: load(2, covered: 1), now: t0)
        state = Autoscaler.decide(config, state, load: load(2, covered: 4.9), now: t0.adding(seconds: 30))
        #expect(state.desired == 10, "the delay passed, but the window covers 4.9 s of the 5 s look-back")
        state = Autoscaler.decide(config, state, load: load(2, covered: 5), now: t0.adding(seconds: 31))
        #expect(state.desired == 1)
    }

    @Test func aChangeOfDirectionStartsTheDelayOver() {
        var state = AutoscalingState(desired: 4)
        state = Autoscaler.decide(config, state, load: load(20), now: t0)
        state = Autoscaler.decide(config, state, load: load(1), now: t0.adding(seconds: 0.4))
        #expect(state.wanted == 1 && state.wantedSince == t0.adding(seconds: 0.4))
        state = Autoscaler.decide(config, state, load: load(20), now: t0.adding(seconds: 0.6))
        #expect(state.desired == 4 && state.wantedSince == t0.adding(seconds: 0.6), "up again: its delay counts from now")
        state = Autoscaler.decide(config, state, load: load(12), now: t0.adding(seconds: 0.7))
        #expect(state.wanted == 6 && state.wantedSince == t0.adding(seconds: 0.6), "still up (to another count): the delay goes on")
        state = Autoscaler.decide(config, state, load: load(8), now: t0.adding(seconds: 0.8))
        #expect(state.desired == 4 && state.wanted == nil, "load 8 → 4 replicas: at the count, nothing pending")
    }

    @Test func theFactorsDampEachDecisionButAlwaysMoveAtLeastOne() {
        let damped = AutoscalingConfig(minReplicas: 0, maxReplicas: 100, targetOngoingRequests: 1, upscalingFactor: 0.5, downscalingFactor: 0.25)
        #expect(Autoscaler.wantedCount(damped, current: 2, average: 10) == 6, "half the way from 2 to 10")
        #expect(Autoscaler.wantedCount(damped, current: 10, average: 2) == 8, "a quarter of the way from 10 to 2")
        #expect(Autoscaler.wantedCount(damped, current: 1, average: 0) == 0, "a quarter of one replica is still one")
        #expect(Autoscaler.wantedCount(damped, current: 1, average: 1.5) == 2)
    }

    @Test func newBoundsApplyAtOnce() {
        var narrowed = config
        narrowed.maxReplicas = 3
        let state = Autoscaler.decide(narrowed, AutoscalingState(desired: 10), load: nil, now: t0)
        #expect(state.desired == 3 && state.reason == "bounds 1…3 → 3 replicas")
        narrowed.minReplicas = 2
        #expect(Autoscaler.decide(narrowed, AutoscalingState(desired: 1), load: load(0), now: t0).desired == 2)
    }

    @Test func aWaitingRequestWakesABackendAtZeroAtOnce() {
        var zero = config
        zero.minReplicas = 0
        zero.upscaleDelayS = 10
        let idle = Autoscaler.decide(zero, AutoscalingState(desired: 0), load: load(0), now: t0)
        #expect(idle.desired == 0 && idle.wanted == nil)
        let woken = Autoscaler.decide(zero, AutoscalingState(desired: 0), load: load(0, waiting: true), now: t0)
        #expect(woken.desired == 1, "no upscale delay from zero")
        #expect(woken.reason == "a request is waiting and no replica runs → 1 replica")
        #expect(Autoscaler.decide(zero, AutoscalingState(desired: 0), load: load(9, waiting: true), now: t0).desired == 5)
    }

    @Test func anIdleBackendDrainsToZeroAfterTheDownscaleDelay() {
        var zero = config
        zero.minReplicas = 0
        var state = AutoscalingState(desired: 3)
        state = Autoscaler.decide(zero, state, load: load(0), now: t0)
        state = Autoscaler.decide(zero, state, load: load(0), now: t0.adding(seconds: 29.9))
        #expect(state.desired == 3)
        state = Autoscaler.decide(zero, state, load: load(0), now: t0.adding(seconds: 30))
        #expect(state.desired == 0)
    }

    @Test func aNewLeaderResumesFromTheCheckpointAndDoesNotScaleDownOnAnEmptyWindow() throws {
        var state = AutoscalingState(desired: 8)
        state = Autoscaler.decide(config, state, load: load(2), now: t0)
        let stored = try JSONDecoder().decode(AutoscalingState.self, from: JSONEncoder().encode(state))
        #expect(stored == state, "what must be remembered is in the checkpoint")
        // The new leader's window is empty (no report seen yet: load 0 over 0 s).
        let resumed = Autoscaler.decide(config, stored, load: load(0, covered: 0), now: t0.adding(seconds: 40))
        #expect(resumed.desired == 8, "30 s passed since the old leader saw the low load, but this leader saw nothing yet")
        #expect(resumed.wantedSince == t0, "the delay kept counting across the failover")
        let seen = Autoscaler.decide(config, resumed, load: load(2, covered: 5), now: t0.adding(seconds: 45))
        #expect(seen.desired == 1)
    }

    @Test func aDeadRoutersLoadStopsCounting() {
        // The leader sums only live routers' reports: a dead router's report expired, so the
        // load falls and the backend shrinks after the delay, as for any drop.
        var state = AutoscalingState(desired: 10)
        state = Autoscaler.decide(config, state, load: load(20), now: t0)
        state = Autoscaler.decide(config, state, load: load(4), now: t0.adding(seconds: 1))
        state = Autoscaler.decide(config, state, load: load(4), now: t0.adding(seconds: 31))
        #expect(state.desired == 2)
    }

    @Test func noObservationKeepsTheCount() {
        let state = Autoscaler.decide(config, AutoscalingState(desired: 7), load: nil, now: t0)
        #expect(state == AutoscalingState(desired: 7))
    }
}

/// Under any load series, the count stays within the bounds and changes no faster than the
/// delays allow: after a change, the next one up comes no sooner than `upscaleDelayS`, the next
/// one down no sooner than `downscaleDelayS` (waking from zero aside, which has no delay).
@Suite struct AutoscalerProperties {
    @Test(arguments: 0..<40) func boundedAndNoFasterThanTheDelays(seed: Int) {
        var random = SeededRandom(seed: UInt64(seed) &* 0x9E37_79B9)
        let minimum = Int.random(in: 0...3, using: &random)
        let config = AutoscalingConfig(minReplicas: minimum, maxReplicas: minimum + Int.random(in: 1...30, using: &random),
                                       targetOngoingRequests: Double.random(in: 0.5...5, using: &random),
                                       upscaleDelayS: Double.random(in: 0...3, using: &random), downscaleDelayS: Double.random(in: 0...20, using: &random),
                                       lookBackPeriodS: 5, upscalingFactor: Double.random(in: 0.1...2, using: &random),
                                       downscalingFactor: Double.random(in: 0.1...2, using: &random))
        var now = Timestamp(milliseconds: 1_700_000_000_000)
        var state = AutoscalingState(desired: config.startingCount(running: nil))
        var lastChange: Timestamp?
        var covered = 0.0
        for _ in 0..<600 {
            let step = Double.random(in: 0.05...0.5, using: &random)
            now = now.adding(seconds: step)
            covered = Bool.random(using: &random) && Int.random(in: 0..<50, using: &random) == 0 ? 0 : covered + step // failovers
            let average = Bool.random(using: &random) ? Double.random(in: 0...200, using: &random) : 0
            let waiting = state.desired == 0 && Int.random(in: 0..<10, using: &random) == 0
            let next = Autoscaler.decide(config, state, load: BackendLoad(average: average, coveredS: covered, waiting: waiting), now: now)
            #expect((config.minReplicas...config.maxReplicas).contains(next.desired))
            if next.desired != state.desired {
                let fromZero = state.desired == 0 && waiting
                if let lastChange, !fromZero {
                    let delay = next.desired > state.desired ? config.upscaleDelayS : config.downscaleDelayS
                    #expect(now.seconds(since: lastChange) >= delay - 0.001, "changed \(state.desired) → \(next.desired) \(now.seconds(since: lastChange)) s after the last change")
                }
                if next.desired < state.desired { #expect(covered >= config.lookBackPeriodS, "scaled down on a window of \(covered) s") }
                lastChange = now
            }
            state = next
        }
    }
}

/// Autoscaling through the reconciler: the decided count is the target, requests that would
/// fight it are refused, and switching modes keeps what runs.
@Suite struct AutoscaledBackends {
    let autoscaling = AutoscalingConfig(minReplicas: 0, maxReplicas: 6, initialReplicas: 2, targetOngoingRequests: 1,
                                        upscaleDelayS: 0, downscaleDelayS: 1, lookBackPeriodS: 0.5)

    @Test func anAutoscaledBackendStartsAtItsInitialCountAndFollowsItsLoad() throws {
        var h = Harness()
        let goal = h.world.request(.createBackend(tag: "api", config: BackendConfig(autoscaling: autoscaling), replicaConfig: echo()))
        h.settle()
        #expect(h.world.outcomes[goal] == GoalOutcome(goal: goal))
        #expect(h.count("api", .running) == 2)
        h.world.loads["api"] = BackendLoad(average: 5, coveredS: 1)
        h.step()
        let scaling = try #require(h.backend("api")?.status)
        #expect(scaling.kind == .updating && scaling.reason.hasPrefix("autoscaled to 5: 2/5 running"), "\(scaling.reason)")
        let actions = h.settle()
        #expect(h.count("api", .running) == 5)
        #expect(h.backend("api")?.autoscaling?.reason == "load 5 over 0.5 s, target 1 → 5 replicas")
        let events = ClusterEvent.between(BackendState(), h.state, actions: actions)
        #expect(events.contains { $0.kind == .backendCreated && $0.message.contains("autoscaled 0…6") })
        h.world.loads["api"] = BackendLoad(average: 0, coveredS: 1)
        h.settle()
        #expect(h.count("api", .running) == 5, "the downscale delay has not passed")
        h.world.advance(milliseconds: 1_000)
        h.settle()
        #expect(h.backend("api")?.target == 0 && h.count("api", .running) == 0, "idle: drained to zero")
    }

    @Test func aDecisionIsAnEventWithItsReason() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(autoscaling: autoscaling), replicaConfig: echo()))
        h.settle()
        let before = h.state
        h.world.loads["api"] = BackendLoad(average: 3, coveredS: 1)
        let actions = h.step()
        let events = ClusterEvent.between(before, h.state, actions: actions)
        #expect(events.contains { $0.kind == .backendAutoscaled && $0.message == "2 → 3 replicas: load 3 over 0.5 s, target 1 → 3 replicas" })
    }

    @Test func scalingAnAutoscaledBackendIsRefusedNamingItsBounds() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(autoscaling: autoscaling), replicaConfig: echo()))
        h.settle()
        let goal = h.world.request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 4)))
        h.settle()
        let failure = h.world.outcomes[goal]?.failure ?? ""
        #expect(failure.contains("config.numReplicas: backend \"api\" is autoscaled (0…6 replicas, now 2)"))
        #expect(h.count("api", .running) == 2, "nothing changed")
    }

    @Test func becomingAutoscaledKeepsTheCountItRunsAndLeavingItKeepsNumReplicas() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 4), replicaConfig: echo()))
        h.settle()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(autoscaling: autoscaling), replicaConfig: echo()))
        h.settle()
        #expect(h.backend("api")?.autoscaling?.desired == 4 && h.count("api", .running) == 4, "no load seen yet: it keeps its 4")
        h.world.request(.createBackend(tag: "api", config: BackendConfig(autoscaling: autoscaling), replicaConfig: echo(cpu: 0.5)))
        h.settle()
        #expect(h.backend("api")?.autoscaling?.desired == 4, "a rolling update keeps the decided count")
        #expect(h.backend("api")?.replicas.filter { $0.state == .running && $0.version == h.backend("api")?.version }.count == 4)
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 1), replicaConfig: echo()))
        h.settle()
        #expect(h.backend("api")?.autoscaling == nil && h.count("api", .running) == 1)
    }

    @Test func aConfigHasEitherNumReplicasOrAutoscalingAndEveryFieldIsChecked() throws {
        let both = #"{"numReplicas": 3, "autoscaling": {"maxReplicas": 5}}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(BackendConfig.self, from: Data(both.utf8)) }
        let bad = AutoscalingConfig(minReplicas: 5, maxReplicas: 2, initialReplicas: 9, targetOngoingRequests: 0, upscaleDelayS: -1,
                                    lookBackPeriodS: 1, metricsIntervalS: 2, upscalingFactor: .nan)
        let fields = Set(BackendConfig(autoscaling: bad).problems().map(\.field))
        #expect(fields == ["config.autoscaling.maxReplicas", "config.autoscaling.initialReplicas", "config.autoscaling.targetOngoingRequests",
                           "config.autoscaling.upscaleDelayS", "config.autoscaling.metricsIntervalS", "config.autoscaling.upscalingFactor"])
        let roundTrip = try JSONDecoder().decode(BackendConfig.self, from: JSONEncoder().encode(BackendConfig(autoscaling: autoscaling)))
        #expect(roundTrip.autoscaling == autoscaling, "written without numReplicas, so it reads back")
    }
}
