@testable import SwerveCore
import Testing

@Suite struct CreatingBackends {
    @Test func createAddsTargetReplicasAsShouldStartAndPlacesThemInOneStep() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 3), replicaConfig: echo()))
        let actions = h.step()
        #expect(actions.assignedTags.count == 3)
        #expect(h.count("api", .starting) == 3)
        #expect(actions.assignedTags.allSatisfy { $0.hasPrefix("api#") })
    }

    @Test func theCheckpointIsWrittenBeforeEveryActionItCovers() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        let actions = h.step()
        guard case .writeCheckpoint(let checkpointed) = actions.first else {
            Issue.record("no checkpoint first")
            return
        }
        #expect(checkpointed == h.state, "the checkpoint holds the state the actions lead to")
    }

    @Test func aGoalCompletesWhenExactlyTheTargetIsRunning() {
        var h = Harness()
        let goal = h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        h.step()
        #expect(h.world.outcomes[goal] == nil)
        h.world.advance()
        let actions = h.step()
        #expect(actions.completedGoals == [goal])
        #expect(h.count("api", .running) == 2)
        #expect(h.backend("api")?.status.kind == .healthy)
    }

    @Test func theSameCreateTwiceDoesNothingAndItsGoalSettlesWithTheFirst() {
        var h = Harness()
        let operation = Request.Operation.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo())
        let first = h.world.request(operation)
        h.step()
        let second = h.world.request(operation)
        let actions = h.step()
        #expect(actions.assignedTags.isEmpty, "no new replica")
        #expect(h.backend("api")?.replicas.count == 2)
        h.settle()
        #expect(h.world.outcomes[first] == GoalOutcome(goal: first))
        #expect(h.world.outcomes[second] == GoalOutcome(goal: second))
        let third = h.world.request(operation)
        #expect(h.step().completedGoals == [third], "nothing pending: done at once")
    }

    @Test func aNewGoalCompletesTheOneItSupersedes() {
        var h = Harness()
        let first = h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        h.step()
        let second = h.world.request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 4)))
        let actions = h.step()
        #expect(actions.completedGoals == [first])
        #expect(h.backend("api")?.goals == [second])
    }

    @Test func anInvalidRequestFailsItsGoalWithEveryProblemAndChangesNothing() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 1, routePrefix: "/api"), replicaConfig: echo()))
        h.settle()
        let before = h.state.backends
        let goal = h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: -1, maxConcurrentQueries: 0), replicaConfig: echo()))
        h.step()
        let reason = try? #require(h.world.outcomes[goal]?.failure)
        #expect(reason == "invalid request: config.numReplicas: must be between 0 and 10000, got -1; config.maxConcurrentQueries: must be between 1 and 100000, got 0")
        #expect(h.state.backends == before)
    }

    @Test func aRoutePrefixMustBeUnique() {
        var h = Harness()
        h.world.request(.createBackend(tag: "a", config: BackendConfig(routePrefix: "/x"), replicaConfig: echo()))
        let goal = h.world.request(.createBackend(tag: "b", config: BackendConfig(routePrefix: "/x"), replicaConfig: echo()))
        h.step()
        #expect(h.world.outcomes[goal]?.failure?.contains("config.routePrefix: \"/x\" is already the route of backend \"a\"") == true)
        #expect(h.backend("b") == nil)
    }

    @Test func eachRequestIsAppliedExactlyOnce() {
        var h = Harness()
        let request = Request(id: RequestID(milliseconds: 5, sequence: 0), goal: "g", operation: .createBackend(tag: "api", config: BackendConfig(numReplicas: 1), replicaConfig: echo()))
        h.world.pendingRequests = [request]
        h.step()
        h.world.pendingRequests = [request, Request(id: RequestID(milliseconds: 4, sequence: 9), goal: "old", operation: .deleteBackend(tag: "api", force: true))]
        h.step()
        #expect(h.backend("api")?.deleting == false, "an id at or before the last applied is skipped")
        #expect(h.state.lastAppliedRequest == request.id)
        #expect(h.state.requestsApplied == 1, "counted once")
    }
}

@Suite struct UpdatingBackends {
    @Test func anUpdateToAnUnknownBackendFailsItsGoal() {
        var h = Harness()
        let goal = h.world.request(.updateBackendConfig(tag: "ghost", patch: BackendConfigPatch(numReplicas: 1)))
        h.step()
        #expect(h.world.outcomes[goal]?.failure == "no backend named \"ghost\"")
    }

    @Test func aUserConfigChangeAloneReconfiguresRunningReplicasInPlace() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2, userConfig: .string("v1")), replicaConfig: echo()))
        h.settle()
        let tags = Set(h.backend("api")!.replicas.map(\.tag))
        let goal = h.world.request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(userConfig: .set(.string("v2")))))
        let actions = h.step()
        #expect(Set(actions.pushedTags) == tags)
        #expect(actions.assignedTags.isEmpty && actions.drainedTags.isEmpty && actions.killedTags.isEmpty)
        #expect(actions.completedGoals == [goal])
        #expect(Set(h.backend("api")!.replicas.map(\.tag)) == tags, "no replica restarted")
    }

    @Test func scalingDownTakesShouldStartThenStartingThenRunning() {
        var h = Harness(world: SimulatedWorld(nodes: [NodeInfo(id: "a", total: Resources(cpu: 4))]))
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        h.settle()
        h.world.holdReadiness = true
        h.world.request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 6)))
        h.step()
        #expect(h.count("api", .running) == 2 && h.count("api", .starting) == 2 && h.count("api", .shouldStart) == 2)
        h.world.request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 3)))
        let actions = h.step()
        #expect(h.count("api", .shouldStart) == 0, "the two unplaced ones went first")
        #expect(h.count("api", .starting) == 1)
        #expect(h.count("api", .running) == 2, "no running replica stopped")
        #expect(actions.drainedTags.count == 1)
    }

    @Test func aChangedReplicaConfigIsARollingUpdateWithinSurgeAndAvailability() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 4), replicaConfig: echo()))
        h.settle()
        let oldVersion = echo().version
        let goal = h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 4), replicaConfig: command("server")))
        var sawOutdatedAndCurrent = false
        for _ in 0..<30 {
            h.step()
            let backend = h.backend("api")!
            let alive = backend.replicas.filter { $0.state.isAlive }
            let running = backend.replicas.filter { $0.state == .running }
            #expect(alive.count <= 4 + 1, "surge 25% of 4 = 1")
            #expect(running.count >= 4 - 1, "unavailable 25% of 4 = 1")
            if alive.contains(where: { $0.version == oldVersion }) && alive.contains(where: { $0.version != oldVersion }) { sawOutdatedAndCurrent = true }
            if h.world.outcomes[goal] != nil { break }
            h.world.advance()
        }
        #expect(sawOutdatedAndCurrent)
        #expect(h.world.outcomes[goal] == GoalOutcome(goal: goal))
        #expect(h.backend("api")!.replicas.allSatisfy { $0.version == command("server").version && $0.state == .running })
    }

    @Test func scalingDownDuringARollingUpdatePrefersOutdatedReplicas() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 4), replicaConfig: echo()))
        h.settle()
        h.world.holdReadiness = true
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 4), replicaConfig: command("server")))
        h.step()
        h.world.holdReadiness = false
        h.world.advance()
        h.step() // the first new replicas are running now
        h.world.request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 1)))
        h.step()
        let alive = h.backend("api")!.replicas.filter { $0.state.isAlive }
        #expect(alive.count == 1)
        #expect(alive.allSatisfy { $0.version == command("server").version }, "the outdated ones went first")
    }
}

@Suite struct DeletingBackends {
    @Test func deleteDrainsEveryReplicaAndCompletesWhenAllStopped() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 3, routePrefix: "/api"), replicaConfig: echo()))
        h.settle()
        h.world.holdDrains = true
        let goal = h.world.request(.deleteBackend(tag: "api", force: false))
        let actions = h.step()
        #expect(actions.drainedTags.count == 3)
        #expect(actions.killedTags.isEmpty)
        #expect(h.backend("api")?.status.kind == .deleting)
        #expect(h.world.configsView?.backends["api"] == nil, "routers drop the route at once")
        #expect(h.world.outcomes[goal] == nil)
        h.world.holdDrains = false
        h.world.advance()
        h.step()
        #expect(h.world.outcomes[goal] == GoalOutcome(goal: goal))
        #expect(h.backend("api") == nil)
    }

    @Test func forceDeleteKillsWithoutDraining() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        h.settle()
        let goal = h.world.request(.deleteBackend(tag: "api", force: true))
        let actions = h.step()
        #expect(actions.killedTags.count == 2)
        #expect(actions.drainedTags.isEmpty)
        #expect(actions.completedGoals == [goal])
    }

    @Test func deletingAnUnknownBackendIsANoOpWhoseGoalCompletes() {
        var h = Harness()
        let goal = h.world.request(.deleteBackend(tag: "ghost", force: false))
        let actions = h.step()
        #expect(actions.completedGoals == [goal])
        #expect(h.state.backends.isEmpty)
    }

    @Test func recreatingWhileOldReplicasStopStartsNewOnesBesideThem() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        h.settle()
        h.world.holdDrains = true
        let deleteGoal = h.world.request(.deleteBackend(tag: "api", force: false))
        h.step()
        let old = Set(h.backend("api")!.replicas.map(\.tag))
        let createGoal = h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        let actions = h.step()
        #expect(actions.completedGoals == [deleteGoal], "the delete was superseded")
        #expect(actions.assignedTags.count == 2)
        #expect(Set(h.state.retiredReplicas.map(\.tag)) == old)
        #expect(h.state.retiredReplicas.allSatisfy { $0.state == .stopping })
        h.world.holdDrains = false
        h.settle()
        #expect(h.world.outcomes[createGoal] == GoalOutcome(goal: createGoal))
        #expect(h.state.retiredReplicas.isEmpty)
        #expect(Set(h.backend("api")!.replicas.map(\.tag)).isDisjoint(with: old))
    }

    @Test func deleteAndRecreateInOneBatchStillDrainsTheOldReplicas() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        h.settle()
        let old = Set(h.backend("api")!.replicas.map(\.tag))
        h.world.request(.deleteBackend(tag: "api", force: false))
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        let actions = h.step()
        #expect(Set(actions.drainedTags) == old)
        let routed: Set<String> = Set(h.world.routingView?.backends["api"]?.map(\.tag) ?? [])
        #expect(routed.isDisjoint(with: old))
    }
}

@Suite struct TheRoutingView {
    @Test func aRunningReplicaLeavesTheRoutingViewBeforeItIsAskedToDrain() {
        // The seed told routers only after the replica had stopped.
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        h.settle()
        h.world.request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 1)))
        let actions = h.step()
        let drained = actions.drainedTags
        #expect(drained.count == 1)
        guard let publish = actions.index(where: { if case .publishRoutingView = $0 { true } else { false } }),
              let drain = actions.index(where: { if case .drain = $0 { true } else { false } }),
              case .publishRoutingView(let view) = actions[publish] else {
            Issue.record("expected a routing view and a drain: \(actions)")
            return
        }
        #expect(publish < drain)
        #expect(view.backends["api"]?.map(\.tag).contains(drained[0]) == false)
    }

    @Test func theRoutingViewIsExactlyTheRunningReplicas() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 3), replicaConfig: echo()))
        h.world.holdReadiness = true
        h.step()
        #expect(h.world.routingView == nil || h.world.routingView?.backends["api"]?.isEmpty == true)
        h.world.holdReadiness = false
        h.world.advance()
        h.step()
        let running = Set(h.backend("api")!.replicas.filter { $0.state == .running }.map(\.tag))
        #expect(Set(h.world.routingView!.backends["api"]!.map(\.tag)) == running)
        #expect(running.count == 3)
    }
}

@Suite struct PlacingReplicas {
    @Test func oneBackendsReplicasSpreadAcrossNodes() {
        var h = Harness(world: SimulatedWorld(nodes: (1...3).map { NodeInfo(id: "n\($0)", total: Resources(cpu: 16)) }))
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 6), replicaConfig: echo()))
        h.step()
        let perNode = Dictionary(grouping: h.backend("api")!.replicas, by: { $0.node! }).mapValues(\.count)
        #expect(perNode == ["n1": 2, "n2": 2, "n3": 2])
    }

    @Test func aReplicaThatFitsNowhereWaitsWithAReasonAndNeverFailsTheBackend() {
        var h = Harness(world: SimulatedWorld(nodes: [NodeInfo(id: "a", total: Resources(cpu: 1)), NodeInfo(id: "b", total: Resources(cpu: 1.5))]))
        h.world.request(.createBackend(tag: "big", config: BackendConfig(numReplicas: 1), replicaConfig: echo(cpu: 2)))
        h.step()
        let replica = h.backend("big")!.replicas[0]
        #expect(replica.state == .shouldStart)
        #expect(replica.pendingReason == "needs 2 CPU; largest free is 1.5 CPU on node b")
        #expect(h.backend("big")!.status.reason == "0/1 running, 1 pending (needs 2 CPU; largest free is 1.5 CPU on node b)")
        #expect(h.backend("big")!.failure == nil)
        h.world.nodes["c"] = NodeInfo(id: "c", total: Resources(cpu: 4))
        #expect(h.step().assignedTags == [replica.tag], "placed once a node with room joins")
    }

    @Test func placementCountsWhatRunningReplicasAlreadyHold() {
        var h = Harness(world: SimulatedWorld(nodes: [NodeInfo(id: "a", total: Resources(cpu: 2, memoryBytes: 4 << 30))]))
        h.world.request(.createBackend(tag: "one", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        h.world.request(.createBackend(tag: "two", config: BackendConfig(numReplicas: 1), replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 0.5, memoryBytes: 8 << 30))))
        h.step()
        #expect(h.count("one", .starting) == 2)
        #expect(h.backend("two")!.replicas[0].pendingReason == "needs 0.5 CPU; largest free is 0 CPU on node a; needs 8 GiB memory; largest free is 4 GiB memory on node a")
    }

    @Test func noLiveNodeIsSaidPlainly() {
        var h = Harness(world: SimulatedWorld(nodes: [NodeInfo(id: "a", total: Resources(cpu: 2), alive: false)]))
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 1), replicaConfig: echo()))
        h.step()
        #expect(h.backend("api")!.replicas[0].pendingReason == "no live node to place it on")
    }
}

@Suite struct Health {
    @Test func aRunningReplicaWhoseHeartbeatExpiredIsReplacedAtOnce() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        h.settle()
        let victim = h.backend("api")!.replicas[0].tag
        h.world.replicas[victim]?.endpoint = nil
        let actions = h.step()
        #expect(actions.killedTags == [victim], "its process may linger: kill it")
        #expect(actions.assignedTags.count == 1, "the replacement is placed in the same step")
        #expect(h.world.routingView?.backends["api"]?.contains { $0.tag == victim } == false)
        #expect(h.backend("api")!.status.kind == .unhealthy)
    }

    @Test func aNodeThatLeftTakesItsReplicasWithIt() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        h.settle()
        h.world.nodes["a"]?.alive = false
        let actions = h.step()
        #expect(actions.assignedTags.count == 1)
        #expect(h.backend("api")!.replicas.allSatisfy { $0.node == "b" })
    }

    @Test func replacementsDoNotWaitForStoppingReplicas() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        h.settle()
        h.world.holdDrains = true
        h.world.request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 1)))
        h.step()
        #expect(h.count("api", .stopping) == 1)
        let survivor = h.backend("api")!.replicas.first { $0.state == .running }!.tag
        h.world.kill(survivor)
        let actions = h.step()
        #expect(actions.assignedTags.count == 1, "stopping replicas do not count toward the target")
    }

    @Test func aReplicaThatNeverBecomesReadyIsReplacedAfterTheStartTimeout() {
        var h = Harness()
        h.settings.startTimeoutS = 5
        h.world.holdReadiness = true
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 1), replicaConfig: echo()))
        let first = h.step().assignedTags
        h.world.advance(milliseconds: 4_900)
        #expect(h.step().isEmpty)
        h.world.advance(milliseconds: 200)
        let actions = h.step()
        #expect(actions.killedTags == first)
        #expect(actions.assignedTags.count == 1 && actions.assignedTags != first)
        #expect(h.backend("api")!.failedStarts == 1)
    }

    @Test func aBackendFailsAfterBoundedFailedStartsAndStopsAddingUntilItsConfigChanges() {
        var h = Harness()
        let goal = h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 1), replicaConfig: command("crash")))
        for _ in 0..<10 {
            for tag in h.step().assignedTags { h.world.kill(tag, reason: "exit code 3") }
        }
        let backend = h.backend("api")!
        #expect(backend.failedStarts == 3, "min(20, 3 × 1)")
        #expect(backend.failure == "3 replicas failed to start; the last exited before it was ready: exit code 3")
        #expect(backend.replicas.isEmpty, "no more replicas are added")
        #expect(h.world.outcomes[goal]?.failure?.hasPrefix("backend api failed: 3 replicas failed to start") == true)
        #expect(backend.status.kind == .failed)
        let retry = h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 1), replicaConfig: command("fixed")))
        #expect(h.step().assignedTags.count == 1)
        h.settle()
        #expect(h.world.outcomes[retry] == GoalOutcome(goal: retry))
    }

    @Test func aFailedRollingUpdateKeepsTheOldReplicasServing() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 4), replicaConfig: echo()))
        h.settle()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 4), replicaConfig: command("crash")))
        for _ in 0..<20 {
            for tag in h.step().assignedTags { h.world.kill(tag) }
        }
        #expect(h.backend("api")!.failure != nil)
        #expect(h.count("api", .running) >= 3, "never below target − unavailable")
    }

    @Test func aDrainThatOverrunsItsDeadlineIsForceKilled() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 1, gracefulShutdownTimeoutS: 3), replicaConfig: echo()))
        h.settle()
        h.world.holdDrains = true
        h.world.request(.deleteBackend(tag: "api", force: false))
        let tag = h.step().drainedTags[0]
        h.world.advance(milliseconds: 2_900)
        #expect(h.step().isEmpty)
        h.world.advance(milliseconds: 100)
        #expect(h.step().killedTags == [tag])
        #expect(h.backend("api") == nil)
    }
}

@Suite struct Statuses {
    @Test func aBackendIsUpdatingWhileAGoalWaitsAndHealthyAtItsTarget() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2), replicaConfig: echo()))
        h.world.holdReadiness = true
        h.step()
        #expect(h.backend("api")!.status == BackendStatus(kind: .updating, reason: "0/2 running, 2 starting", running: 0, target: 2))
        h.world.holdReadiness = false
        h.world.advance()
        h.step()
        #expect(h.backend("api")!.status == BackendStatus(kind: .healthy, reason: "2/2 running", running: 2, target: 2))
    }
}

@Suite struct Determinism {
    @Test func theSameStepGivesTheSameActionsWhateverTheObservationOrder() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 6), replicaConfig: echo()))
        h.settle()
        for replica in h.backend("api")!.replicas.prefix(4) { h.world.replicas[replica.tag]?.endpoint = nil }
        let observations = h.world.observe()
        var reordered = observations
        reordered.replicas = Dictionary(uniqueKeysWithValues: observations.replicas.sorted { $0.key > $1.key }.map { ($0.key, $0.value) })
        let first = Reconciler.reconcile(h.state, observations)
        let second = Reconciler.reconcile(h.state, reordered)
        #expect(first.actions == second.actions)
        #expect(first.actions.killedTags == h.backend("api")!.replicas.prefix(4).map(\.tag), "in state order")
    }
}

@Suite struct Idempotence {
    @Test func aStepWithNothingNewDoesNothing() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 3), replicaConfig: echo()))
        h.settle()
        let observations = h.world.observe()
        let (once, first) = Reconciler.reconcile(h.state, observations)
        let (twice, second) = Reconciler.reconcile(once, observations)
        #expect(first.isEmpty && second.isEmpty)
        #expect(once == twice && once == h.state)
    }
}
