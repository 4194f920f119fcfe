import SwerveCore
public import SwerveProtocol

/// An event as the page reads it: one flat JSON object per ``EventEntry``.
public struct DashboardEvent: Sendable, Hashable, Codable {
    /// The stream id: events are shown in this order, and a reconnecting page asks for those after it.
    public var id: String
    /// Unix milliseconds, by the leader's clock.
    public var at: Int64
    public var kind: String
    public var backend: String
    public var replica: String?
    public var goal: String?
    public var message: String
    public var controller: String
    public var epoch: Int64

    public init(_ entry: EventEntry) {
        id = entry.id
        at = entry.at.milliseconds
        kind = entry.event.kind.rawValue
        backend = entry.event.backend
        replica = entry.event.replica
        goal = entry.event.goal
        message = entry.event.message
        controller = entry.controller
        epoch = entry.epoch
    }
}
