public import SwerveErrors

/// Why a client request could not be carried through (what it waited on did not happen).
public typealias ClientError = DomainError<ClientErrorDomain>

/// The codes of ``ClientError``.
public enum ClientErrorDomain {}

extension ErrorCode where Domain == ClientErrorDomain {
    /// A client waited on a goal while no controller led for longer than it would wait; the
    /// request stays queued.
    public static let noLeader = Self("noLeader")
}

extension ErrorCode where Domain == ClientErrorDomain {
    /// A node id that cannot be one (what `swerve node --id` accepts).
    public static let invalidNode = Self("invalidNode")
}
