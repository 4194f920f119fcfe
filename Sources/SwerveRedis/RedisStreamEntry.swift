/// One entry of a Redis stream, as `XRANGE`, `XREVRANGE` and `XREAD` return it: its id and its
/// fields. What the fields mean is the protocol's business (`SwerveProtocol`), not the client's.
public struct RedisStreamEntry: Sendable, Hashable {
    /// `<ms>-<seq>`.
    public var id: String
    /// Field name → value. A name given twice keeps its last value.
    public var fields: [String: [UInt8]]

    public init(id: String, fields: [String: [UInt8]]) {
        self.id = id
        self.fields = fields
    }

    /// An entry from its reply (`[id, [field, value, …]]`); nil when the reply has another shape.
    init?(_ reply: RedisReply) {
        guard let parts = reply.array, parts.count == 2, let id = parts[0].string, let flat = parts[1].array else { return nil }
        self.init(id: id, fields: parts[1].fields)
    }
}

extension RedisReply {
    /// The pairs of a flat `[field, value, …]` reply (`HGETALL`, a stream entry's fields), in
    /// order; a pair whose name is not text or whose value is nil is left out.
    public var fieldPairs: [(name: String, value: [UInt8])] {
        guard let flat = array else { return [] }
        var pairs: [(name: String, value: [UInt8])] = []
        pairs.reserveCapacity(flat.count / 2)
        for index in stride(from: 0, to: flat.count - 1, by: 2) {
            if let name = flat[index].string, let value = flat[index + 1].bytes { pairs.append((name, value)) }
        }
        return pairs
    }

    /// ``fieldPairs`` by name (a repeated name keeps its last value).
    public var fields: [String: [UInt8]] {
        Dictionary(fieldPairs.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
    }

    /// The entries of an `XRANGE` or `XREVRANGE` reply, in the order returned; entries of
    /// another shape are left out. Empty for nil or a non-array.
    public var streamEntries: [RedisStreamEntry] {
        array?.compactMap(RedisStreamEntry.init) ?? []
    }

    /// The entries of `key` in an `XREAD` reply (`[[key, [entry, …]], …]`); empty when it timed
    /// out (nil) or holds none of `key`.
    public func streamEntries(readFrom key: String) -> [RedisStreamEntry] {
        for stream in array ?? [] {
            guard let parts = stream.array, parts.count == 2, parts[0].string == key else { continue }
            return parts[1].streamEntries
        }
        return []
    }
}
