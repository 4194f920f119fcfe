public import SwerveCore
public import SwerveErrors

/// An entry of `swerve:{C}:events`, appended by the leader (fenced): fields `schemaVersion`,
/// `epoch`, `controller`, `at` (Unix ms), `kind`, `backend`, `replica` and `goal` (empty when
/// not about one), `message`. For `swerve events` and `swerve describe`.
///
/// Guarantees: ``fields()`` and ``init(id:fields:source:)`` are inverses (but for the id, which
/// Redis assigns); reading checks the version and names the field that is wrong.
public struct EventEntry: Sendable, Hashable, Codable {
    public static let currentSchemaVersion = 1

    /// The stream id (`<ms>-<n>`): pass it back to read what came after. Empty before the
    /// entry is appended.
    public var id: String
    /// The epoch of the leader that appended it.
    public var epoch: Int64
    /// The id of the controller that appended it.
    public var controller: String
    /// By the leader's clock.
    public var at: Timestamp
    public var event: ClusterEvent

    public init(id: String = "", epoch: Int64, controller: String, at: Timestamp, event: ClusterEvent) {
        self.id = id
        self.epoch = epoch
        self.controller = controller
        self.at = at
        self.event = event
    }

    /// How many field/value pairs ``fields()`` returns: every entry has all of them.
    public static let fieldCount = 9

    /// The field/value pairs to append, in a fixed order (``fieldCount`` of them).
    public func fields() -> [(name: String, value: String)] {
        [("schemaVersion", "\(Self.currentSchemaVersion)"), ("epoch", "\(epoch)"), ("controller", controller),
         ("at", "\(at.milliseconds)"), ("kind", event.kind.rawValue), ("backend", event.backend),
         ("replica", event.replica ?? ""), ("goal", event.goal ?? ""), ("message", event.message)]
    }

    /// Reads the entry stored under stream id `id`.
    /// - Parameter source: the stream's key, for the error message.
    public init(id: String, fields: [String: [UInt8]], source: String) throws(ProtocolError) {
        let at = "\(source) entry \(id)"
        func text(_ name: String) throws(ProtocolError) -> String {
            guard let bytes = fields[name] else { throw ProtocolError(.malformed, "\(at): missing field \"\(name)\"") }
            return String(decoding: bytes, as: UTF8.self)
        }
        func integer(_ name: String) throws(ProtocolError) -> Int64 {
            let value = try text(name)
            guard let number = Int64(value) else { throw ProtocolError(.malformed, "\(at): field \"\(name)\" is not an integer: \"\(value)\"") }
            return number
        }
        let version = try text("schemaVersion")
        guard version == "\(Self.currentSchemaVersion)" else {
            throw ProtocolError(.unknownVersion, "\(at) is an event of schema version \(version); this Swerve reads version \(Self.currentSchemaVersion): upgrade it, or the controller that wrote it")
        }
        let kindText = try text("kind")
        guard let kind = ClusterEvent.Kind(rawValue: kindText) else {
            throw ProtocolError(.malformed, "\(at): field \"kind\" is not an event kind: \"\(kindText)\"")
        }
        let replica = try text("replica"), goal = try text("goal")
        self.init(id: id, epoch: try integer("epoch"), controller: try text("controller"), at: Timestamp(milliseconds: try integer("at")),
                  event: ClusterEvent(kind: kind, backend: try text("backend"), replica: replica.isEmpty ? nil : replica,
                                      goal: goal.isEmpty ? nil : goal, message: try text("message")))
    }
}
