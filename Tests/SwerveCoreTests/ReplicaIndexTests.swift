@testable import SwerveCore
import Testing

/// Many reports in one step are found through one index, a few by searching their backend:
/// both must find the same replicas.
@Suite struct ReplicaIndex {
    @Test func positionsAgreeWithLocateForEveryReplicaLiveOrRetired() {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 5), replicaConfig: echo(cpu: 0.1)))
        h.world.request(.createBackend(tag: "web", config: BackendConfig(numReplicas: 3), replicaConfig: echo(cpu: 0.1)))
        h.settle()
        // Deleted and created again at once: the old incarnation's replicas retire, stopping.
        h.world.request(.deleteBackend(tag: "web", force: false))
        h.world.request(.createBackend(tag: "web", config: BackendConfig(numReplicas: 1), replicaConfig: echo(cpu: 0.1)))
        h.step()
        let positions = h.state.replicaPositions()
        let tags = h.state.backends.flatMap(\.replicas).map(\.tag) + h.state.retiredReplicas.map(\.tag)
        #expect(!h.state.retiredReplicas.isEmpty)
        #expect(positions.count == tags.count)
        for tag in tags {
            let located = h.state.locate(tag)
            #expect(positions[tag]?.backend == located?.backend && positions[tag]?.replica == located?.replica, "\(tag)")
        }
        #expect(positions["api#nope"] == nil && h.state.locate("api#nope") == nil)
    }

    /// Half of a large backend dies in one step (reports found through the index): every one
    /// is replaced, and a report for a replica nobody knows is ignored.
    @Test(arguments: [3, 30])
    func everyReportedDeathIsReplacedWhateverTheirNumber(deaths: Int) {
        var h = Harness()
        h.world.request(.createBackend(tag: "api", config: BackendConfig(numReplicas: 60), replicaConfig: echo(cpu: 0.01)))
        h.settle()
        let victims = Array(h.state.backends[0].replicas.map(\.tag).sorted().prefix(deaths))
        for tag in victims { h.world.kill(tag) }
        h.world.kill("api#unknown")
        let actions = h.step()
        #expect(actions.assignedTags.count == deaths)
        #expect(h.state.backends[0].replicas.filter { victims.contains($0.tag) }.allSatisfy { $0.state != .running })
        h.settle()
        #expect(h.count("api", .running) == 60)
    }
}
