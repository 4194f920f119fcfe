import SwerveCore
import SwerveProtocol
import SwerveRouter
import Testing

func configs(_ version: Int, epoch: Int64 = 1, _ backends: [String: (String?, Int)]) -> Snapshot<BackendConfigsView> {
    Snapshot(epoch: epoch, view: BackendConfigsView(version: version, backends: backends.mapValues { RoutedBackendConfig(routePrefix: $0.0, maxConcurrentQueries: $0.1) }))
}

func routing(_ version: Int, epoch: Int64 = 1, _ backends: [String: [String]]) -> Snapshot<RoutingView> {
    Snapshot(epoch: epoch, view: RoutingView(version: version, backends: backends.mapValues { tags in
        tags.map { RoutedReplica(tag: $0, address: HostPort(host: "127.0.0.1", port: UInt16(10000 + abs($0.hashValue % 1000))), node: "n1") }
    }))
}

@Suite struct RouterViews {
    @Test func aSnapshotReadFromItsKeyIsTakenUnlessItIsTheOneHeld() {
        var view = RouterView()
        #expect(view.accept(routing: routing(5, ["api": ["api#1"]])) == .newer, "the first")
        #expect(view.accept(routing: routing(5, ["api": []])) == .unchanged, "the same version")
        #expect(view.routing?.view.backends["api"]?.map(\.tag) == ["api#1"])
        #expect(view.accept(routing: routing(1, epoch: 2, ["api": ["api#2"]])) == .newer, "a new leader's, whatever its version")
        #expect(view.routing?.view.backends["api"]?.map(\.tag) == ["api#2"])
        // The key went back: Redis lost writes. The new leader's snapshots must not be refused
        // for a future that no longer exists.
        #expect(view.accept(routing: routing(9, epoch: 1, ["api": ["api#3"]])) == .wentBack(from: RouterView.SnapshotPosition(epoch: 2, version: 1)))
        #expect(view.routing?.view.backends["api"]?.map(\.tag) == ["api#3"])
        #expect(view.accept(routing: routing(10, epoch: 1, ["api": ["api#4"]])) == .newer)
    }

    @Test func noticesAreHintsOrderedByEpochThenVersion() {
        var view = RouterView()
        view.accept(routing: routing(1, epoch: 2, ["api": ["api#2"]]))
        #expect(view.isNewer(SnapshotNotice(kind: .routing, epoch: 2, version: 2)))
        #expect(!view.isNewer(SnapshotNotice(kind: .routing, epoch: 2, version: 1)))
        #expect(!view.isNewer(SnapshotNotice(kind: .routing, epoch: 1, version: 99)), "a deposed leader's, however high its version")
        #expect(view.isNewer(SnapshotNotice(kind: .configs, epoch: 1, version: 1)), "no configs held yet")
    }

    @Test func theNextVersionRereadsItsSnapshotAndAGapRereadsBoth() {
        var view = RouterView()
        #expect(view.reread(for: SnapshotNotice(kind: .routing, epoch: 1, version: 1)) == .both, "nothing held: anything may be missing")
        view.accept(configs: configs(3, ["api": ("/api", 1)]))
        view.accept(routing: routing(5, ["api": ["api#1"]]))
        #expect(view.reread(for: SnapshotNotice(kind: .routing, epoch: 1, version: 6)) == .snapshot(.routing))
        #expect(view.reread(for: SnapshotNotice(kind: .configs, epoch: 1, version: 4)) == .snapshot(.configs))
        #expect(view.reread(for: SnapshotNotice(kind: .routing, epoch: 1, version: 7)) == .both, "version 6 was skipped")
        #expect(view.reread(for: SnapshotNotice(kind: .routing, epoch: 2, version: 6)) == .both, "a new term")
        #expect(view.reread(for: SnapshotNotice(kind: .routing, epoch: 1, version: 5)) == nil, "held already")
        #expect(view.reread(for: SnapshotNotice(kind: .configs, epoch: 0, version: 9)) == nil, "a deposed leader's")
    }

    @Test func aDeltaThatFollowsTheHeldViewIsAppliedInPlaceAndAnyOtherRereads() throws {
        var view = RouterView()
        view.accept(configs: configs(3, ["api": ("/api", 1), "web": ("/web", 1)]))
        view.accept(routing: routing(5, ["api": ["api#1", "api#2"], "web": ["web#1"]]))
        let next = routing(6, ["api": ["api#2", "api#3"], "web": ["web#1"]])
        let delta = RoutingDelta(from: try #require(view.routing).view, to: next.view)
        #expect(delta.backends.keys.sorted() == ["api"], "web did not change")

        #expect(view.take(SnapshotNotice(epoch: 1, delta: delta)) == .applied(left: ["api#1"]))
        #expect(view.routing?.view.version == 6)
        #expect(view.table.backends["api"]?.replicas.map(\.tag) == ["api#2", "api#3"])
        #expect(view.table == RoutingTable(configs: view.configs?.view, routing: next.view), "the same table a whole read builds")
        #expect(view.take(SnapshotNotice(epoch: 1, delta: delta)) == .ignored, "held already")

        let skipped = RoutingDelta(from: 7, version: 8, backends: [:])
        #expect(view.take(SnapshotNotice(epoch: 1, delta: skipped)) == .reread(.both), "version 7 was missed")
        let otherTerm = RoutingDelta(from: 6, version: 7, backends: [:])
        #expect(view.take(SnapshotNotice(epoch: 2, delta: otherTerm)) == .reread(.both), "a new term's")
        #expect(view.take(SnapshotNotice(kind: .routing, epoch: 1, version: 7)) == .reread(.snapshot(.routing)), "a whole snapshot's notice")
        #expect(view.routing?.view.version == 6, "nothing applied")
    }

    @Test func theLongestPrefixOnASegmentBoundaryWins() {
        var view = RouterView()
        view.accept(configs: configs(1, ["root": ("/", 1), "api": ("/api", 1), "v2": ("/api/v2/", 1), "hidden": (nil, 1)]))
        let table = view.table
        #expect(table.backend(forPath: "/api/v2/users")?.tag == "v2")
        #expect(table.backend(forPath: "/api/v2")?.tag == "v2")
        #expect(table.backend(forPath: "/api/v20")?.tag == "api")
        #expect(table.backend(forPath: "/api?q=1")?.tag == "api")
        #expect(table.backend(forPath: "/apix")?.tag == "root")
        #expect(table.routes.map(\.backend) == ["v2", "api", "root"], "a backend without a route is not routed")
        var noRoot = RouterView()
        noRoot.accept(configs: configs(1, ["api": ("/api", 1)]))
        #expect(noRoot.table.backend(forPath: "/other") == nil)
    }

    @Test func replicasComeFromTheRoutingViewAndLimitsFromTheConfigs() {
        var view = RouterView()
        view.accept(configs: configs(1, ["api": ("/api", 3)]))
        #expect(view.table.backends["api"]?.replicas.isEmpty == true)
        view.accept(routing: routing(1, ["api": ["api#b", "api#a"]]))
        #expect(view.table.backends["api"]?.replicas.map(\.tag) == ["api#a", "api#b"])
        #expect(view.table.backends["api"]?.maxConcurrentQueries == 3)
    }
}

@Suite struct RoutedBackendSettings {
    @Test func theUpstreamTimeoutAndRetryRuleComeFromTheConfigsWithDefaultsForOlderLeaders() {
        let older = RoutingTable(configs: BackendConfigsView(version: 1, backends: ["api": RoutedBackendConfig(routePrefix: "/", maxConcurrentQueries: 1)]), routing: nil)
        #expect(older.backends["api"]?.upstreamTimeout == .seconds(60) && older.backends["api"]?.retryIdempotentRequests == true)
        let set = RoutingTable(configs: BackendConfigsView(version: 1, backends: ["api": RoutedBackendConfig(
            routePrefix: "/", maxConcurrentQueries: 1, upstreamTimeoutS: 2.5, retryIdempotentRequests: false)]), routing: nil)
        #expect(set.backends["api"]?.upstreamTimeout == .milliseconds(2_500) && set.backends["api"]?.retryIdempotentRequests == false)
        for bad in [0, -1, .nan, .infinity, 1e300] {
            let table = RoutingTable(configs: BackendConfigsView(version: 1, backends: ["api": RoutedBackendConfig(
                routePrefix: "/", maxConcurrentQueries: 1, upstreamTimeoutS: bad)]), routing: nil)
            #expect(table.backends["api"]?.upstreamTimeout == .seconds(60), "a snapshot's \(bad) is not trusted")
        }
    }

    @Test func theLeaderPublishesBothAndRepublishesWhenEitherChanges() {
        let config = BackendConfig(upstreamTimeoutS: 3, retryIdempotentRequests: false)
        #expect(config.routed == RoutedBackendConfig(routePrefix: nil, maxConcurrentQueries: 100, upstreamTimeoutS: 3, retryIdempotentRequests: false))
        #expect(config.routed != BackendConfig(upstreamTimeoutS: 3).routed)
    }
}

@Suite struct Balancing {
    var random = SystemRandomNumberGenerator()

    func backend(_ tags: [String], limit: Int) -> RoutingTable.Backend {
        var view = RouterView()
        view.accept(configs: configs(1, ["api": ("/api", limit)]))
        view.accept(routing: routing(1, ["api": tags]))
        return view.table.backends["api"]!
    }

    @Test mutating func atMostTheLimitInFlightPerReplicaThenAQueueThenRejection() {
        var balancer = ReplicaBalancer()
        let api = backend(["api#1", "api#2"], limit: 2)
        var sent: [String] = []
        for id in 1...4 {
            guard case .send(let choice) = balancer.admit(UInt64(id), to: api, queueLimit: 1, random: &random) else {
                Issue.record("request \(id) should have been sent")
                return
            }
            sent.append(choice.tag)
        }
        #expect(sent.sorted() == ["api#1", "api#1", "api#2", "api#2"], "power of two choices fills both evenly")
        let r6 = balancer.admit(5, to: api, queueLimit: 1, random: &random)
        #expect(r6 == .queued(position: 1))
        let r7 = balancer.admit(6, to: api, queueLimit: 1, random: &random)
        #expect(r7 == .rejected)
        let next = balancer.finished("api#2", backend: api, random: &random)
        #expect(next?.id == 5 && next?.choice.tag == "api#2", "the queued request takes the freed slot")
        #expect(balancer.queueLength("api") == 0)
    }

    @Test mutating func anAbandonedRequestLeavesTheQueue() {
        var balancer = ReplicaBalancer()
        let api = backend(["api#1"], limit: 1)
        _ = balancer.admit(1, to: api, queueLimit: 5, random: &random)
        let r8 = balancer.admit(2, to: api, queueLimit: 5, random: &random)
        #expect(r8 == .queued(position: 1))
        let r9 = balancer.admit(3, to: api, queueLimit: 5, random: &random)
        #expect(r9 == .queued(position: 2))
        let r10 = balancer.abandon(2, backend: "api")
        #expect(r10)
        let r11 = balancer.abandon(2, backend: "api")
        #expect(!r11)
        #expect(balancer.finished("api#1", backend: api, random: &random)?.id == 3)
    }

    @Test mutating func aRetrySkipsTheReplicasAlreadyTriedAndNoReplicasIsSaid() {
        var balancer = ReplicaBalancer()
        let api = backend(["api#1", "api#2"], limit: 10)
        for _ in 0..<20 {
            guard case .send(let choice) = balancer.admit(1, to: api, queueLimit: 0, excluding: ["api#1"], random: &random) else { return }
            #expect(choice.tag == "api#2")
        }
        let r12 = balancer.admit(1, to: api, queueLimit: 0, excluding: ["api#1", "api#2"], random: &random)
        #expect(r12 == .noReplicas)
        let r13 = balancer.admit(1, to: backend([], limit: 1), queueLimit: 5, random: &random)
        #expect(r13 == .noReplicas)
    }

    @Test mutating func theLessBusyOfTwoIsChosen() {
        var balancer = ReplicaBalancer()
        let api = backend(["api#1", "api#2"], limit: 100)
        // Load api#1 with 10 requests (forced by excluding api#2), then every new one goes to api#2.
        for id in 0..<10 { _ = balancer.admit(UInt64(id), to: api, queueLimit: 0, excluding: ["api#2"], random: &random) }
        for id in 10..<15 {
            let r14 = balancer.admit(UInt64(id), to: api, queueLimit: 0, random: &random)
            #expect(r14 == .send(.init(tag: "api#2", address: api.replicas[1].address)))
        }
    }
}

/// Passive health: a replica that refused a connection leaves the local table, never the last.
@Suite struct Ejection {
    func table(_ tags: String...) -> RoutingTable {
        RoutingTable(configs: BackendConfigsView(version: 1, backends: ["api": RoutedBackendConfig(routePrefix: "/", maxConcurrentQueries: 5)]),
                     routing: RoutingView(version: 1, backends: ["api": tags.enumerated().map {
                         RoutedReplica(tag: $1, address: HostPort(host: "127.0.0.1", port: UInt16(9000 + $0)), node: "n1")
                     }]))
    }

    @Test func aRefusingReplicaLeavesTheTable() throws {
        let ejected = try #require(table("api#1", "api#2", "api#3").ejecting("api#2", from: "api"))
        #expect(ejected.backends["api"]?.replicas.map(\.tag) == ["api#1", "api#3"])
        #expect(ejected.backend(forPath: "/x")?.replicas.count == 2, "routes still lead to the backend")
    }

    @Test func theLastReplicaAndUnknownOnesStay() {
        #expect(table("api#1").ejecting("api#1", from: "api") == nil)
        #expect(table("api#1", "api#2").ejecting("api#9", from: "api") == nil)
        #expect(table("api#1", "api#2").ejecting("api#1", from: "web") == nil)
    }
}
