public import SwerveErrors
/// One RESP2 reply from Redis, decoded into a Swift value as soon as it is read.
///
/// hiredis 0.14 speaks RESP2 only, so these six cases are the whole protocol; nothing from
/// the C library outlives the read that produced it.
public enum RedisReply: Sendable, Hashable {
    /// A status reply such as `OK` or `PONG`.
    case simpleString(String)
    /// A binary-safe bulk string.
    case bulkString([UInt8])
    case integer(Int64)
    case array([RedisReply])
    /// A nil bulk string or nil array.
    case null
    /// An error reply; its text starts with the error's kind (`ERR`, `WRONGTYPE`, `NOSCRIPT`…).
    case error(String)
}

extension RedisReply {
    /// The text of a status or bulk string (bulk bytes decoded as UTF-8), else nil.
    public var string: String? {
        switch self {
        case .simpleString(let text): return text
        case .bulkString(let bytes): return String(decoding: bytes, as: UTF8.self)
        default: return nil
        }
    }

    /// The bytes of a bulk or status string, else nil.
    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let bytes): return bytes
        case .simpleString(let text): return Array(text.utf8)
        default: return nil
        }
    }

    /// An integer reply, or a bulk string holding a decimal integer, else nil.
    public var integer: Int64? {
        switch self {
        case .integer(let value): return value
        case .bulkString(let bytes): return Int64(String(decoding: bytes, as: UTF8.self))
        default: return nil
        }
    }

    /// A `TIME` reply (seconds, microseconds) as Unix milliseconds, else nil.
    public var timeMilliseconds: Int64? {
        guard let parts = array, parts.count == 2, let seconds = parts[0].integer, let micros = parts[1].integer else { return nil }
        return seconds * 1000 + micros / 1000
    }

    public var array: [RedisReply]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// The error text when this is an error reply.
    public var errorMessage: String? {
        if case .error(let message) = self { return message }
        return nil
    }

    /// The error replies a server gives *instead of running* a command while the store fails
    /// over or starts: not enough replicas for a write (`NOREPLICAS`), a replica now
    /// (`READONLY`), its master gone (`MASTERDOWN`), still loading its data (`LOADING`),
    /// `TRYAGAIN`. Sending the command again later is safe: it did nothing.
    public var isRefusalUntilFailoverEnds: Bool {
        guard case .error(let message) = self else { return false }
        let code = message.prefix { $0 != " " }
        return ["NOREPLICAS", "READONLY", "MASTERDOWN", "LOADING", "TRYAGAIN"].contains(code)
    }

    /// This reply, or a ``RedisError`` if it is an error reply: code `.unavailable` for a
    /// refusal that lasts only while the store fails over (``isRefusalUntilFailoverEnds``: the
    /// command did nothing and may be sent again), `.server` for any other.
    /// - Parameter command: the command's name, to say which command failed.
    public func throwingServerError(for command: String) throws(RedisError) -> RedisReply {
        if case .error(let message) = self {
            if isRefusalUntilFailoverEnds {
                throw RedisError(.unavailable, "Redis refused \(command) while its store fails over (\(message)); it did nothing: try again in a moment")
            }
            throw RedisError(.server, "Redis refused \(command): \(message)")
        }
        return self
    }
}

extension RedisReply: CustomStringConvertible {
    /// A redis-cli-like rendering, for logs and test failures.
    public var description: String {
        switch self {
        case .simpleString(let text): return text
        case .bulkString(let bytes): return "\"\(String(decoding: bytes.prefix(200), as: UTF8.self))\(bytes.count > 200 ? "…" : "")\""
        case .integer(let value): return "(integer) \(value)"
        case .array(let elements): return "[" + elements.map(\.description).joined(separator: ", ") + "]"
        case .null: return "(nil)"
        case .error(let message): return "(error) \(message)"
        }
    }
}
