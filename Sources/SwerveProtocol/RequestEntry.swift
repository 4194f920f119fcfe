import FoundationEssentials
public import SwerveCore
public import SwerveErrors

/// An entry of `swerve:{C}:requests`, appended by clients: fields `schemaVersion`, `goal` (the
/// id the client waits on) and `request` (a `Request.Operation`, JSON).
///
/// Guarantees: ``fields()`` and ``decode(id:fields:source:)`` are inverses. An entry that
/// cannot be read still yields its goal when it has one, so the leader can fail that goal with
/// the reason instead of leaving its client waiting.
public struct RequestEntry: Sendable, Hashable {
    public static let currentSchemaVersion = 1

    public var goal: GoalID
    public var operation: Request.Operation

    public init(goal: GoalID, operation: Request.Operation) {
        self.goal = goal
        self.operation = operation
    }

    /// The field/value pairs to append (`XADD key * …`), in a fixed order.
    public func fields() -> [(name: String, value: [UInt8])] {
        [("schemaVersion", Array("\(Self.currentSchemaVersion)".utf8)), ("goal", Array(goal.utf8)),
         ("request", DocumentCodec.encodeValue(operation))]
    }

    /// An entry that could not be read: why, and its goal when that much was readable.
    public struct Unreadable: Error, Sendable, Hashable {
        public var goal: GoalID?
        public var error: ProtocolError
    }

    /// Reads the entry appended under stream id `id`.
    /// - Parameter source: the stream's key, for the error message.
    public static func decode(id: String, fields: [String: [UInt8]], source: String) -> Result<Request, Unreadable> {
        let at = "\(source) entry \(id)"
        // A goal names a key, so an empty or oversized one is no goal: nobody can be told.
        let goal = fields["goal"].flatMap { bytes in
            bytes.isEmpty || bytes.count > Limits.goalLength ? nil : String(decoding: bytes, as: UTF8.self)
        }
        func unreadable(_ code: ErrorCode<ProtocolErrorDomain>, _ message: String) -> Result<Request, Unreadable> {
            .failure(Unreadable(goal: goal, error: ProtocolError(code, message)))
        }
        guard let requestID = RequestID(id) else { return unreadable(.malformed, "\(at): the id is not a stream id") }
        guard let goal else {
            return unreadable(.malformed, "\(at): field \"goal\" is missing, empty or longer than \(Limits.goalLength) bytes")
        }
        guard let versionBytes = fields["schemaVersion"] else { return unreadable(.malformed, "\(at): missing field \"schemaVersion\"") }
        let version = String(decoding: versionBytes, as: UTF8.self)
        guard version == "\(currentSchemaVersion)" else {
            return unreadable(.unknownVersion, "\(at) is a request of schema version \(version); this Swerve reads version \(currentSchemaVersion): upgrade it, or the client that wrote the request")
        }
        guard let body = fields["request"] else { return unreadable(.malformed, "\(at): missing field \"request\"") }
        do {
            let operation = try DocumentCodec.decodeValue(Request.Operation.self, from: body, source: "\(at) field \"request\"")
            return .success(Request(id: requestID, goal: goal, operation: operation))
        } catch {
            return .failure(Unreadable(goal: goal, error: error))
        }
    }
}
