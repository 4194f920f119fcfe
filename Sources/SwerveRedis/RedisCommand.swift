/// A value that can be one argument of a Redis command, as bytes.
public protocol RedisArgumentConvertible: Sendable {
    var redisArgument: [UInt8] { get }
}

extension String: RedisArgumentConvertible { public var redisArgument: [UInt8] { Array(utf8) } }
extension Substring: RedisArgumentConvertible { public var redisArgument: [UInt8] { Array(utf8) } }
extension Int: RedisArgumentConvertible { public var redisArgument: [UInt8] { Array(String(self).utf8) } }
extension Int64: RedisArgumentConvertible { public var redisArgument: [UInt8] { Array(String(self).utf8) } }
extension UInt64: RedisArgumentConvertible { public var redisArgument: [UInt8] { Array(String(self).utf8) } }
extension Double: RedisArgumentConvertible { public var redisArgument: [UInt8] { Array(String(self).utf8) } }
extension Array: RedisArgumentConvertible where Element == UInt8 { public var redisArgument: [UInt8] { self } }

/// One Redis command as an argument vector: binary-safe, never a format string.
///
/// `RedisCommand("SET", key, value)` sends exactly those arguments; a value may hold any
/// bytes, NUL included.
public struct RedisCommand: Sendable, Hashable {
    /// The arguments, the command name first.
    public var arguments: [[UInt8]]
    /// Set for an `EVALSHA` of a known script, so the connection can load the script first
    /// when this connection has not loaded it yet, and retry after a `NOSCRIPT`.
    var script: RedisScript?

    public init(_ name: String, _ arguments: any RedisArgumentConvertible...) {
        self.init(name, arguments: arguments)
    }

    public init(_ name: String, arguments: [any RedisArgumentConvertible]) {
        self.arguments = [Array(name.utf8)] + arguments.map(\.redisArgument)
        self.script = nil
    }

    /// A command from raw argument bytes, the command name first.
    public init(arguments: [[UInt8]]) {
        precondition(!arguments.isEmpty, "a Redis command needs at least its name")
        self.arguments = arguments
        self.script = nil
    }

    /// The command's name, for messages.
    public var name: String { String(decoding: arguments.first ?? [], as: UTF8.self).uppercased() }
}
