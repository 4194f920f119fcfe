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
