@testable import SwerveCore
import Testing

/// Cordoned nodes get no new replicas; draining nodes lose theirs the way a rolling update
/// replaces outdated ones: a replacement elsewhere first, then out of routing, then a graceful
/// drain — never fewer running than the target allows.
@Suite struct NodeDrain {
    func harness() -> Harness {
        var h = Harness(world: SimulatedWorld(nodes: ["a", "b", "c"].map { NodeInfo(id: $0, total: Resources(cpu: 8)) }))
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2, maxUnavailable: .count(0)), replicaConfig: echo()))
        h.settle()
        return h
    }

    func nodes(of h: Harness, in states: Set<ReplicaState> = [.running]) -> [String] {
        h.backend("api")!.replicas.filter { states.contains($0.state) }.compactMap(\.node).sorted()
    }

    @Test func aCordonedNodeKeepsItsReplicasButGetsNoNewOnes() {
        var h = harness()
        let before = nodes(of: h)
        let cordoned = before[0]
        h.world.nodes[cordoned]!.schedulable = false
        #expect(h.step().isEmpty, "cordoning alone changes nothing that runs")
        h.world.request(.updateBackendConfig(tag: "api", patch: BackendConfigPatch(numReplicas: 6)))
        h.settle()
        #expect(nodes(of: h).filter { $0 == cordoned }.count == 1, "the new replicas went elsewhere: \(nodes(of: h))")
        #expect(nodes(of: h).count == 6)
    }

    @Test func aDrainingNodesReplicasAreReplacedElsewhereBeforeTheyDrain() {
        var h = harness()
        let drained = nodes(of: h)[0]
        h.world.nodes[drained]!.draining = true
        h.world.holdReadiness = true
        var actions = h.step()
        #expect(actions.assignedTags.count == 1, "a replacement first (surge 1): \(actions)")
        #expect(actions.drainedTags.isEmpty && actions.killedTags.isEmpty, "nothing stops before its replacement runs")
        #expect(h.backend("api")!.replicas.first { $0.state == .starting }?.node != drained, "not on the draining node")
        h.world.holdReadiness = false
        h.world.advance()
        actions = h.step()
        #expect(actions.drainedTags.count == 1 && actions.killedTags.isEmpty, "then the old one drains gracefully: \(actions)")
        if let routing = actions.index(where: { if case .publishRoutingView = $0 { true } else { false } }),
           let drain = actions.index(where: { if case .drain = $0 { true } else { false } }) {
            #expect(routing < drain, "it leaves routing before it is asked to drain")
        } else {
            Issue.record("no routing view or no drain: \(actions)")
        }
        h.settle()
        #expect(nodes(of: h).count == 2 && !nodes(of: h).contains(drained), "\(nodes(of: h))")
        #expect(nodes(of: h, in: [.starting, .shouldStart, .stopping, .shouldStop]).isEmpty)
    }

    @Test func theRunningCountNeverDropsBelowTheTargetWhileANodeDrains() {
        var h = harness()
        let drained = nodes(of: h)[0]
        h.world.nodes[drained]!.draining = true
        for _ in 0..<20 {
            h.step()
            #expect(nodes(of: h).count >= 2, "maxUnavailable 0: \(nodes(of: h))")
            h.world.advance()
        }
        #expect(!nodes(of: h).contains(drained))
    }

    @Test func aDrainingNodeWithNowhereElseToGoKeepsServing() {
        var h = Harness(world: SimulatedWorld(nodes: [NodeInfo(id: "only", total: Resources(cpu: 8))]))
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 2, maxUnavailable: .count(0)), replicaConfig: echo()))
        h.settle()
        h.world.nodes["only"]!.draining = true
        h.settle()
        #expect(nodes(of: h) == ["only", "only"], "no replacement fits anywhere: the running ones stay")
    }
}
