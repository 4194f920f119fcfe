@testable import SwerveClient
@testable import SwerveCore
@testable import SwerveDashboard
import SwerveProtocol
import Testing

/// What the page is given for a cluster state: pure, no Redis, no browser.
@Suite struct DashboardSnapshotRules {
    func backend(_ tag: String, replicas: Int = 0, cpu: Double = 0.5, autoscaling: AutoscalingConfig? = nil, route: String? = nil) -> BackendRecord {
        let config = BackendConfig(numReplicas: autoscaling == nil ? replicas : 0, routePrefix: route, autoscaling: autoscaling)
        return BackendRecord(tag: tag, config: config, replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: cpu, memoryBytes: 1 << 20)),
                             generation: 1, goal: "g")
    }

    func inputs(_ state: BackendState, status: [String: BackendStatus] = [:], nodes: [NodeListing] = [], elections: [DashboardSnapshot.Election] = [],
                leader: LeaderRecord? = nil) -> DashboardSnapshot.Inputs {
        DashboardSnapshot.Inputs(cluster: "prod", now: Timestamp(milliseconds: 10_000), leader: leader, status: status, state: state,
                                 nodes: nodes, elections: elections)
    }

    @Test func backendsAndReplicasComeInTagOrderWithTheRolloutCountedAtTheCurrentVersion() {
        var api = backend("api", replicas: 3, route: "/api")
        api.replicas = [
            ReplicaRecord(tag: "api#c", backend: "api", version: api.version, state: .running, node: "n2",
                          endpoint: ReplicaEndpoint(address: HostPort(host: "10.0.0.2", port: 4001), pid: 42), startedAt: Timestamp(milliseconds: 4_000)),
            ReplicaRecord(tag: "api#a", backend: "api", version: "old", state: .running, node: "n1"),
            ReplicaRecord(tag: "api#b", backend: "api", version: api.version, state: .starting, node: "n1"),
        ]
        var state = BackendState()
        state.backends = [backend("zeta"), api]
        let snapshot = DashboardSnapshot.build(inputs(state, status: ["api": BackendStatus(kind: .updating, reason: "2/3 running, 1 starting", running: 2, target: 3)]))
        #expect(snapshot.backends.map(\.tag) == ["api", "zeta"])
        let shown = snapshot.backends[0]
        #expect(shown.status == "updating" && shown.reason == "2/3 running, 1 starting" && shown.running == 2 && shown.target == 3)
        #expect(shown.current == 1, "one replica runs the current version; one runs an old one, one only starts")
        #expect(shown.route == "/api" && shown.replicas == 3)
        #expect(snapshot.backends[1].status == "unknown", "no status written for it yet")
        #expect(snapshot.replicas.map(\.tag) == ["api#a", "api#b", "api#c"])
        let placed = snapshot.replicas[2]
        #expect(placed.address == "10.0.0.2:4001" && placed.pid == 42 && placed.placedAt == 4_000 && placed.node == "n2" && placed.state == "RUNNING")
    }

    @Test func autoscaledBackendsCarryTheirBounds() {
        var state = BackendState()
        state.backends = [backend("auto", autoscaling: AutoscalingConfig(minReplicas: 0, maxReplicas: 8))]
        #expect(DashboardSnapshot.build(inputs(state)).backends[0].autoscaling == DashboardSnapshot.Autoscaling(min: 0, max: 8))
    }

    @Test func nodesShowWhatTheirReplicasHoldAndANodeNoLongerListedIsGone() {
        var api = backend("api", replicas: 3, cpu: 0.5)
        api.replicas = [
            ReplicaRecord(tag: "api#1", backend: "api", version: api.version, state: .running, node: "n1"),
            ReplicaRecord(tag: "api#2", backend: "api", version: api.version, state: .stopped, node: "n1"),
            ReplicaRecord(tag: "api#3", backend: "api", version: api.version, state: .running, node: "lost"),
            ReplicaRecord(tag: "api#4", backend: "api", version: api.version, state: .shouldStart),
        ]
        var state = BackendState()
        state.backends = [api]
        let record = NodeRecord(id: "n1", address: "10.0.0.1", resources: Resources(cpu: 4, memoryBytes: 1 << 30), pid: 7, startedAt: Timestamp(milliseconds: 1))
        let snapshot = DashboardSnapshot.build(inputs(state, nodes: [NodeListing(id: "n1", record: record, cordon: .cordon), NodeListing(id: "n0", record: nil)]))
        #expect(snapshot.nodes.map(\.id) == ["lost", "n0", "n1"])
        let n1 = snapshot.nodes[2]
        #expect(n1.state == "Cordoned" && n1.address == "10.0.0.1" && n1.total?.cpu == 4)
        #expect(n1.replicas == 1 && n1.assigned.cpu == 0.5 && n1.assigned.memoryBytes == 1 << 20, "a stopped replica holds nothing")
        #expect(snapshot.nodes[1].state == "NotReady" && snapshot.nodes[1].replicas == 0)
        #expect(snapshot.nodes[0].state == "Gone" && snapshot.nodes[0].replicas == 1, "replicas placed on a node no longer listed show it")
    }

    @Test func controllersComeFromTheElectionsAndTheLeader() {
        let elections = [DashboardSnapshot.Election(controller: "c1", epoch: 1, at: 100), DashboardSnapshot.Election(controller: "c2", epoch: 2, at: 200),
                         DashboardSnapshot.Election(controller: "c1", epoch: 3, at: 300)]
        let leader = LeaderRecord(id: "c1", epoch: 3, host: "h", pid: 1, address: nil, since: Timestamp(milliseconds: 299))
        let snapshot = DashboardSnapshot.build(inputs(BackendState(), elections: elections, leader: leader))
        #expect(snapshot.controllers.map(\.id) == ["c1", "c2"])
        #expect(snapshot.controllers[0] == DashboardSnapshot.Controller(id: "c1", lastEpoch: 3, lastElected: 300, terms: 2, leading: true))
        #expect(snapshot.controllers[1] == DashboardSnapshot.Controller(id: "c2", lastEpoch: 2, lastElected: 200, terms: 1, leading: false))
        #expect(snapshot.leader?.id == "c1" && snapshot.leader?.since == 299)
        let unannounced = DashboardSnapshot.build(inputs(BackendState(), leader: LeaderRecord(id: "c9", epoch: 9, host: "h", pid: 1, address: nil, since: 5)))
        #expect(unannounced.controllers == [DashboardSnapshot.Controller(id: "c9", lastEpoch: 9, lastElected: 5, terms: 1, leading: true)],
                "a leader whose election the events no longer hold is still listed")
    }
}

@Suite struct ElectionHistoryRules {
    func elected(_ controller: String, epoch: Int64, at: Int64) -> EventEntry {
        EventEntry(id: "\(at)-0", epoch: epoch, controller: controller, at: Timestamp(milliseconds: at), event: .leaderElected(controller: controller, epoch: epoch))
    }

    @Test func oneElectionPerEpochInEpochOrderAndOtherEventsIgnored() {
        var history = ElectionHistory()
        history.record(elected("c2", epoch: 5, at: 50))
        history.record(elected("c1", epoch: 4, at: 40))
        history.record(elected("c2", epoch: 5, at: 51)) // the same term's event, recorded again by a repeated step
        history.record(EventEntry(epoch: 5, controller: "c2", at: 60, event: ClusterEvent(kind: .backendCreated, backend: "api", message: "created")))
        #expect(history.elections == [DashboardSnapshot.Election(controller: "c1", epoch: 4, at: 40), DashboardSnapshot.Election(controller: "c2", epoch: 5, at: 50)])
    }

    @Test func theOldestGoPastTheLimit() {
        var history = ElectionHistory()
        for epoch in 1...Int64(ElectionHistory.limit + 5) { history.record(elected("c", epoch: epoch, at: epoch)) }
        #expect(history.elections.count == ElectionHistory.limit && history.elections.first?.epoch == 6)
    }
}

@Suite struct ServerSentEventsFraming {
    @Test func aPayloadWithLineBreaksCannotEndTheMessageOrAddAField() {
        let framed = String(decoding: ServerSentEvents.message(event: "state", data: Array("one\n\nevent: forged\r\ndata: x".utf8)), as: UTF8.self)
        #expect(framed == "event: state\ndata: one\ndata: \ndata: event: forged\ndata: data: x\n\n")
        #expect(String(decoding: ServerSentEvents.comment("a\nb"), as: UTF8.self) == ": ab\n\n")
    }
}

@Suite struct DashboardHostRules {
    @Test func addressesAndLocalhostAreServedOtherNamesOnlyWhenAllowed() {
        for host in ["127.0.0.1:8080", "10.1.2.3", "localhost:8080", "LOCALHOST", "[::1]:8080", "[fe80::1]"] {
            #expect(DashboardHosts.refusal(of: host, allowed: []) == nil, "\(host)")
        }
        #expect(DashboardHosts.refusal(of: "attacker.example:8080", allowed: [])?.contains("--allowed-host attacker.example") == true)
        #expect(DashboardHosts.refusal(of: "999.1.1.1", allowed: []) != nil, "not an address")
        #expect(DashboardHosts.refusal(of: "1.2.3.4.evil.example", allowed: []) != nil)
        #expect(DashboardHosts.refusal(of: "Dash.Internal:443", allowed: ["dash.internal"]) == nil)
    }
}
