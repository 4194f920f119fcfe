import SwerveCore

/// Which nodes the leader removes from the `nodes` set for good, as a pure decision.
///
/// An agent that exits cleanly removes itself; one that crashed, or whose host never came back,
/// stays listed (its score: when it last registered), and with it its assignment hash and
/// version — keys that would otherwise pile up with every host a cluster ever had. A node is
/// pruned when its record is gone, it last registered more than ``retention`` ago, and the
/// state places no replica on it (the leader forgets those first, emptying its assignments).
/// The fenced script checks the first two again inside Redis, and refuses while anything is
/// still assigned. A node that comes back later simply registers again.
enum GoneNodes {
    /// How long a node must have been silent: longer than any outage a node agent rides out.
    static let retention: Duration = .seconds(3_600)

    /// Nodes last seen before this (ms since the epoch) are silent for longer than ``retention``.
    static func cutoff(now: Timestamp) -> Int64 {
        now.milliseconds - Int64(retention / .milliseconds(1))
    }

    /// - Parameters:
    ///   - listed: the `nodes` set: node id → when it last registered (ms since the epoch).
    ///   - withRecord: the nodes whose record exists.
    ///   - occupied: the nodes some replica record still names (``BackendState/occupiedNodes``).
    static func prunable(listed: [String: Int64], withRecord: Set<String>, occupied: Set<String>, now: Timestamp) -> [String] {
        let cutoff = cutoff(now: now)
        return listed.filter { id, seen in seen < cutoff && !withRecord.contains(id) && !occupied.contains(id) }.map(\.key).sorted()
    }
}
