import SwerveCore
public import SwerveProtocol

/// The elections the events stream recorded (`LeaderElected`, one per term), oldest first,
/// at most ``limit``. Pure.
///
/// Guarantees: one election per epoch (a term's event recorded twice — a step repeated after a
/// failure — counts once); ordered by epoch; the oldest are dropped past the limit.
public struct ElectionHistory: Sendable, Hashable {
    public static let limit = 100
    public private(set) var elections: [DashboardSnapshot.Election] = []

    public init() {}

    public mutating func record(_ entry: EventEntry) {
        guard entry.event.kind == .leaderElected, !elections.contains(where: { $0.epoch == entry.epoch }) else { return }
        let election = DashboardSnapshot.Election(controller: entry.controller, epoch: entry.epoch, at: entry.at.milliseconds)
        let index = elections.firstIndex { $0.epoch > entry.epoch } ?? elections.endIndex
        elections.insert(election, at: index)
        if elections.count > Self.limit { elections.removeFirst(elections.count - Self.limit) }
    }
}
