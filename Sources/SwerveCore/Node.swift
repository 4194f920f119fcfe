/// A host as the leader sees it: what it has, whether its heartbeat is current, and whether
/// replicas may be placed there.
///
/// A node that is not `schedulable` (cordoned) keeps its replicas but gets no new ones. A
/// `draining` node gets no new replicas and loses the ones it has: each is replaced elsewhere
/// under its backend's rolling-update budget, then leaves routing and drains gracefully, as an
/// outdated replica does in a rolling update.
public struct NodeInfo: Sendable, Hashable, Codable {
    public var id: String
    public var total: Resources
    public var alive: Bool
    public var schedulable: Bool
    public var draining: Bool

    public init(id: String, total: Resources, alive: Bool = true, schedulable: Bool = true, draining: Bool = false) {
        self.id = id
        self.total = total
        self.alive = alive
        self.schedulable = schedulable
        self.draining = draining
    }

    /// New replicas may be placed here.
    public var acceptsReplicas: Bool { alive && schedulable && !draining }
}
