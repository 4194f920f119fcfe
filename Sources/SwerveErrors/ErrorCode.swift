/// The code of a Swerve error: a name within one error domain, compared by value.
///
/// Every Swerve error is a struct with a `code` of this type and a `message` for people.
/// Codes are declared as static members of `ErrorCode<TheDomain>`, so a domain can grow new
/// codes without breaking anyone's `switch` (there is none to break: compare with `==`).
public struct ErrorCode<Domain>: Sendable, Hashable, CustomStringConvertible {
    public let name: String

    public init(_ name: String) { self.name = name }

    public var description: String { name }
}

/// An error a user can act on: a code to compare, a message to read.
public protocol CodedError: Error, Sendable, CustomStringConvertible {
    associatedtype Domain
    var code: ErrorCode<Domain> { get }
    /// A complete sentence: what failed, where, and (when it can) what to do.
    var message: String { get }
}

extension CodedError {
    public var description: String { message }
}

/// An error of one domain: a ``code`` to compare and a ``message`` to read. Each module names
/// its own (`public typealias RedisError = DomainError<RedisErrorDomain>`) and declares its
/// codes as static members of `ErrorCode<ItsDomain>`; errors of different domains are
/// different types, so `catch let error as RedisError` catches only the client's.
public struct DomainError<Domain>: CodedError, Hashable {
    public typealias Code = ErrorCode<Domain>

    public var code: Code
    /// A complete sentence for a person: what failed, where, and (when it can) what to do.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}
