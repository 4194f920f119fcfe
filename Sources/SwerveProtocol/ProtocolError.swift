public import SwerveErrors

/// A value in Redis that does not follow the protocol, or a name that cannot be used.
public struct ProtocolError: CodedError, Hashable {
    public typealias Code = ErrorCode<ProtocolErrorDomain>

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

}

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
