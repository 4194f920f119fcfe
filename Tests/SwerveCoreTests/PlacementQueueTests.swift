@testable import SwerveCore
import Testing

@Suite struct PlacementQueueRules {
    /// The queue picks what the scan of every node picked — fewest of the backend, then most
    /// free CPU, then node order — through a sequence of placements, on seeded random fleets.
    @Test(arguments: 1...50) func itChoosesWhatAScanOfEveryNodeChooses(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let count = Int(random.next() % 40) + 1
        var perNode = (0..<count).map { _ in Int(random.next() % 4) }
        var cpu = (0..<count).map { _ in Double(random.next() % 8) }
        var queue = PlacementQueue((0..<count).map { PlacementQueue.Entry(position: $0, perNode: perNode[$0], freeCPU: cpu[$0]) })
        var remaining = Set(0..<count)
        for _ in 0..<(count * 3) {
            var scanned: Int?
            for p in (0..<count) where remaining.contains(p) {
                guard let best = scanned else { scanned = p; continue }
                if perNode[p] < perNode[best] || (perNode[p] == perNode[best] && cpu[p] > cpu[best]) { scanned = p }
            }
            let popped = queue.popBest()
            #expect(popped?.position == scanned)
            guard let p = popped?.position else { break }
            perNode[p] += 1
            cpu[p] -= 1
            // A node that is full leaves, as placement drops one its replica no longer fits.
            if cpu[p] >= 0 { queue.insert(PlacementQueue.Entry(position: p, perNode: perNode[p], freeCPU: cpu[p])) } else { remaining.remove(p) }
        }
    }
}

/// A small deterministic generator (SplitMix64) for seeded cases.
private struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
