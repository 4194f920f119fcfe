@testable import SwerveCore
import Testing

@Suite struct RoutingDeltas {
    func replica(_ tag: String, port: UInt16 = 1) -> RoutedReplica {
        RoutedReplica(tag: tag, address: HostPort(host: "10.0.0.1", port: port), node: "n1")
    }

    @Test func aDeltaNamesOnlyWhatChangedAndRebuildsTheView() throws {
        let old = RoutingView(version: 4, backends: ["api": [replica("api#2"), replica("api#1")], "old": [replica("old#1")], "web": [replica("web#1")]])
        let new = RoutingView(version: 5, backends: ["api": [replica("api#1", port: 2), replica("api#3")], "web": [replica("web#1")], "new": []])
        let delta = RoutingDelta(from: old, to: new)
        #expect(delta.from == 4 && delta.version == 5)
        #expect(delta.backends == [
            "api": .init(removed: ["api#1", "api#2"], added: [replica("api#1", port: 2), replica("api#3")]),
            "old": .init(gone: true),
            "new": .init(),
        ])
        #expect(try #require(delta.applied(to: old)) == new.sortedByTag)
        #expect(delta.applied(to: new) == nil, "only to the version it follows")
        #expect(RoutingDelta(from: old, to: old).applied(to: old) == nil, "a version never repeats")
    }

    @Test(arguments: 0..<40 as Range<UInt64>)
    func anyTwoViewsDifferByTheirDelta(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        func view(_ version: Int) -> RoutingView {
            var backends: [String: [RoutedReplica]] = [:]
            for b in 0..<4 where random.next() % 4 != 0 {
                backends["b\(b)"] = (0..<6).filter { _ in random.next() % 2 == 0 }.map { replica("b\(b)#\($0)", port: UInt16(1 + random.next() % 2)) }
            }
            return RoutingView(version: version, backends: backends)
        }
        let old = view(1)
        let new = view(2)
        let delta = RoutingDelta(from: old, to: new)
        #expect(try #require(delta.applied(to: old)).sortedByTag == new.sortedByTag, "seed \(seed)")
        #expect(delta.size <= old.size + new.size)
    }
}
