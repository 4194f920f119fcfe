public import SwerveErrors

/// A value in Redis that does not follow the protocol, or a name that cannot be used.
public typealias ProtocolError = DomainError<ProtocolErrorDomain>

/// The codes of ``ProtocolError``.
public enum ProtocolErrorDomain {}

extension ErrorCode where Domain == ProtocolErrorDomain {
    /// A cluster, node or replica name that cannot be used in keys.
    public static let invalidName = Self("invalidName")
    /// A document written by another schema version.
    public static let unknownVersion = Self("unknownVersion")
    /// A value that is not the document its key should hold.
    public static let malformed = Self("malformed")
}
