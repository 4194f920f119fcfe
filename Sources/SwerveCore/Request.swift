/// The id of a client request: the Redis Stream entry id (`<ms>-<seq>`) it was appended
/// under. Requests are applied in id order, each exactly once.
public struct RequestID: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var milliseconds: UInt64
    public var sequence: UInt64

    public init(milliseconds: UInt64, sequence: UInt64) {
        self.milliseconds = milliseconds
        self.sequence = sequence
    }

    /// Parses `"1700000000000-3"`.
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let ms = UInt64(parts[0]), let seq = UInt64(parts[1]) else { return nil }
        self.init(milliseconds: ms, sequence: seq)
    }

    public static func < (a: RequestID, b: RequestID) -> Bool {
        (a.milliseconds, a.sequence) < (b.milliseconds, b.sequence)
    }

    public var description: String { "\(milliseconds)-\(sequence)" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let id = RequestID(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "\"\(text)\" is not a stream id like 1700000000000-0")
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// The id a client waits on; chosen by the client (a UUID) and carried by its request.
public typealias GoalID = String

/// A client request, as read from the request stream.
public struct Request: Sendable, Hashable, Codable {
    public var id: RequestID
    public var goal: GoalID
    public var operation: Operation

    public init(id: RequestID, goal: GoalID, operation: Operation) {
        self.id = id
        self.goal = goal
        self.operation = operation
    }

    public enum Operation: Sendable, Hashable, Codable {
        /// Create, or — if the backend exists — change it to exactly this (a rolling update when
        /// the replica config differs). The same create twice changes nothing.
        case createBackend(tag: String, config: BackendConfig, replicaConfig: ReplicaConfig)
        /// Change only the fields given. An unknown tag fails the goal.
        case updateBackendConfig(tag: String, patch: BackendConfigPatch)
        /// Drain every replica (`force`: kill them at once) and remove the backend.
        case deleteBackend(tag: String, force: Bool)

        public var backendTag: String {
            switch self {
            case .createBackend(let tag, _, _), .updateBackendConfig(let tag, _), .deleteBackend(let tag, _): return tag
            }
        }
    }
}

extension Request.Operation {
    /// The problems of this operation judged on its own, each naming its field; the leader
    /// adds those that need the cluster (a route clash, an unknown tag, the cluster's limits).
    /// The client and the leader both call this, so they agree on every field.
    public func problems() -> [ValidationProblem] {
        switch self {
        case .createBackend(let tag, let config, let replicaConfig):
            return backendTagProblems(tag) + config.problems() + replicaConfig.problems()
        case .updateBackendConfig(let tag, let patch):
            return backendTagProblems(tag) + patch.problems()
        case .deleteBackend(let tag, _):
            return backendTagProblems(tag)
        }
    }
}

/// A request the leader refuses without applying it: its entry could not be read, or it was
/// quarantined after crashing leaders. Its goal (when it had a readable one) fails with
/// `reason`, and the cursor moves past it like past any applied request.
public struct RefusedRequest: Sendable, Hashable {
    public var id: RequestID
    public var goal: GoalID?
    public var reason: String

    public init(id: RequestID, goal: GoalID?, reason: String) {
        self.id = id
        self.goal = goal
        self.reason = reason
    }
}

/// How a goal ended.
public struct GoalOutcome: Sendable, Hashable, Codable {
    public var goal: GoalID
    /// nil when it completed; the reason when it failed.
    public var failure: String?

    public init(goal: GoalID, failure: String? = nil) {
        self.goal = goal
        self.failure = failure
    }
}

/// Problems with a backend tag (the name used in replica tags, keys and routes).
public func backendTagProblems(_ tag: String) -> [ValidationProblem] {
    var v = Validator()
    v.check(!tag.isEmpty, "tag", "must not be empty")
    v.check(length: tag, atMost: Limits.tagLength, "tag")
    v.check(tag.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }, "tag",
            "\"\(tag.prefix(Limits.tagLength))\" may contain only letters, digits, \"-\", \"_\" and \".\"")
    return v.problems
}
