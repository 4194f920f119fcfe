/// A host as the leader sees it: what it has and whether its heartbeat is current.
public struct NodeInfo: Sendable, Hashable, Codable {
    public var id: String
    public var total: Resources
    public var alive: Bool

    public init(id: String, total: Resources, alive: Bool = true) {
        self.id = id
        self.total = total
        self.alive = alive
    }
}
