public import SwerveCore

/// `swerve:{C}:goal:{ID}`, and the message on `swerve:{C}:goals`: how a goal ended. Written
/// by the leader (fenced) when the goal settles; kept a day.
public struct GoalOutcomeDocument: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    public var goal: GoalID
    /// nil when it completed; the reason when it failed.
    public var failure: String?

    public init(_ outcome: GoalOutcome) {
        goal = outcome.goal
        failure = outcome.failure
    }

    public var outcome: GoalOutcome { GoalOutcome(goal: goal, failure: failure) }
}

/// `swerve:{C}:status`: every backend's status, for `swerve status` and clients waiting on a
/// goal. Written by the leader (fenced) whenever a status changes.
public struct StatusDocument: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    /// Backend tag → its status.
    public var backends: [String: BackendStatus]

    public init(backends: [String: BackendStatus]) { self.backends = backends }
}

/// `swerve:{C}:request-attempt`: the requests the leader is about to apply and how often their
/// first was attempted (see `SwerveCore.RequestAdmission`). Written by the leader (fenced)
/// before a step that applies requests; a leader that cannot read it applies requests one at a
/// time, as after a failed attempt.
public struct RequestAttemptDocument: ProtocolDocument {
    public static let currentSchemaVersion = 1
    public var schemaVersion = Self.currentSchemaVersion
    public var first: RequestID
    public var last: RequestID
    public var attempts: Int

    public init(_ attempt: RequestAttempt) {
        first = attempt.first
        last = attempt.last
        attempts = attempt.attempts
    }

    public var attempt: RequestAttempt { RequestAttempt(first: first, last: last, attempts: attempts) }
}
