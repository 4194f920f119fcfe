public import SwerveErrors

/// Why a worker could not start or go on, in words a user can act on.
public typealias WorkerError = DomainError<WorkerErrorDomain>

/// The codes of ``WorkerError``.
public enum WorkerErrorDomain {}

extension ErrorCode where Domain == WorkerErrorDomain {
    /// A `SWERVE_*` variable is missing or invalid.
    public static let invalidEnvironment = Self("invalidEnvironment")
    /// The assignment is missing or malformed.
    public static let badAssignment = Self("badAssignment")
    /// The replica's code could not be started.
    public static let startFailed = Self("startFailed")
}
