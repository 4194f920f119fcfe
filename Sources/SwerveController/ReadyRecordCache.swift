import SwerveCore

/// The replicas' ready records as last read, with the endpoint each says: a record read again
/// unchanged (nearly all of them, on a full read) is not decoded again. At 100,000 replicas,
/// decoding every record of a full read cost the leader two seconds of CPU every 30 s.
///
/// Guarantees: an endpoint comes from the cache only for exactly the same bytes; a record that
/// cannot be decoded is never cached (it is decoded, and reported, each time). Pure.
struct ReadyRecordCache {
    private var records: [String: (bytes: [UInt8], endpoint: ReplicaEndpoint)] = [:]
    /// Filled by a full read (every placed replica), replacing ``records`` when it ends.
    private var next: [String: (bytes: [UInt8], endpoint: ReplicaEndpoint)]?

    /// How many records it holds.
    var count: Int { records.count }

    /// Starts a full read: the records it reads replace every cached one (forgotten replicas
    /// leave the cache).
    mutating func beginFullRead() { next = [:] }

    /// Ends a full read.
    mutating func endFullRead() {
        if let next { records = next }
        next = nil
    }

    /// The endpoint `bytes`, `tag`'s ready record, says: the cached one when the bytes are
    /// the same, else `decode`'s (cached when there is one).
    mutating func endpoint(_ tag: String, _ bytes: [UInt8], decode: ([UInt8]) -> ReplicaEndpoint?) -> ReplicaEndpoint? {
        let endpoint: ReplicaEndpoint?
        if let cached = records[tag], cached.bytes == bytes {
            endpoint = cached.endpoint
        } else {
            endpoint = decode(bytes)
            records[tag] = endpoint.map { (bytes, $0) }
        }
        if next != nil, let endpoint { next![tag] = (bytes, endpoint) }
        return endpoint
    }

    /// `tag` has no ready record (retracted, or its replica gone).
    mutating func forget(_ tag: String) { records[tag] = nil }
}
