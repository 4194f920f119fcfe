import SwerveCore
@testable import SwerveController
import Testing

@Suite struct RoutingPublication {
    func view(_ version: Int, _ count: Int) -> RoutingView {
        RoutingView(version: version, backends: ["api": (0..<count).map { RoutedReplica(tag: "api#\($0)", address: HostPort(host: "10.0.0.1", port: 1), node: "n1") }])
    }

    @Test func theFirstViewGoesWholeThenDeltasUntilTheyOutweighIt() {
        var publisher = RoutingPublisher()
        #expect(publisher.publish(view(1, 10)) == .whole(view(1, 10)), "nothing published yet")
        // Each step adds one replica: a delta of size 2 (the backend and the replica). The
        // whole view was of size 11: five deltas fit, the sixth would outweigh it.
        for version in 2...6 {
            guard case .delta(let delta) = publisher.publish(view(version, 9 + version)) else {
                Issue.record("version \(version) went whole")
                return
            }
            #expect(delta.from == version - 1 && delta.version == version)
            #expect(delta.backends["api"]?.added.map(\.tag) == ["api#\(8 + version)"])
        }
        #expect(publisher.publish(view(7, 16)) == .whole(view(7, 16)), "the deltas since the last whole view would outweigh it")
        guard case .delta = publisher.publish(view(8, 17)) else {
            Issue.record("deltas resume after a whole view")
            return
        }
        #expect(publisher.publish(view(8, 17)) == .whole(view(8, 17)), "a version that is not newer goes whole")
    }

    @Test func atMostTheLimitOfDeltasFollowAWholeView() {
        var publisher = RoutingPublisher(maximumDeltas: 10)
        _ = publisher.publish(view(1, 500))
        var wholes = 0
        for version in 2...(publisher.maximumDeltas + 2) {
            // Replica 0 toggles: each delta is tiny.
            var next = view(version, 500)
            if version % 2 == 0 { next.backends["api"]!.removeFirst() }
            if case .whole = publisher.publish(next) { wholes += 1 }
        }
        #expect(wholes == 1, "after \(publisher.maximumDeltas) deltas the view goes whole once")
        #expect(RoutingPublisher().maximumDeltas == 1_000)
    }
}
