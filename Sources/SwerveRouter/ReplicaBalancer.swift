public import SwerveCore

/// Which replica gets the next request: at most `maxConcurrentQueries` in flight per replica;
/// among those with room, the less busy of two picked at random (power of two choices); when
/// every one is full, the request waits in its backend's queue, first come first served.
///
/// A pure value: the proxy holds it under a lock and carries out what it answers. Replicas it
/// no longer sees in the table get no new requests; their in-flight counts drain as requests
/// finish.
public struct ReplicaBalancer: Sendable {
    /// Requests in flight per replica tag.
    public private(set) var inFlight: [String: Int] = [:]
    /// Waiting requests per backend, oldest first (ids the caller chose).
    public private(set) var queues: [String: [UInt64]] = [:]

    public init() {}

    /// What happens to a new request.
    public enum Decision: Equatable, Sendable {
        case send(RoutedReplicaChoice)
        /// Every replica is full; it was queued (position from 1).
        case queued(position: Int)
        /// Full, and the queue is at its bound.
        case rejected
        /// The backend has no running replica.
        case noReplicas
    }

    /// A replica chosen for a request.
    public struct RoutedReplicaChoice: Equatable, Sendable {
        public var tag: String
        public var address: HostPort

        public init(tag: String, address: HostPort) {
            self.tag = tag
            self.address = address
        }
    }

    /// Picks a replica of `backend` (skipping `excluding`, for a retry), or queues `id` (up to
    /// `queueLimit` waiting); `random` gives two independent picks.
    public mutating func admit(_ id: UInt64, to backend: RoutingTable.Backend, queueLimit: Int, excluding: Set<String> = [],
                               random: inout some RandomNumberGenerator) -> Decision {
        let candidates = backend.replicas.filter { !excluding.contains($0.tag) }
        guard !candidates.isEmpty else { return .noReplicas }
        if queues[backend.tag]?.isEmpty ?? true, let choice = pick(candidates, limit: backend.maxConcurrentQueries, random: &random) {
            inFlight[choice.tag, default: 0] += 1
            return .send(choice)
        }
        var queue = queues[backend.tag] ?? []
        guard queue.count < queueLimit else { return .rejected }
        queue.append(id)
        queues[backend.tag] = queue
        return .queued(position: queue.count)
    }

    /// A request on `tag` finished; if a queued request of `backend` can now go, it is
    /// removed from the queue and returned with its replica.
    public mutating func finished(_ tag: String, backend: RoutingTable.Backend?, random: inout some RandomNumberGenerator) -> (id: UInt64, choice: RoutedReplicaChoice)? {
        if let count = inFlight[tag] { inFlight[tag] = count > 1 ? count - 1 : nil }
        guard let backend else { return nil }
        return dequeue(backend, random: &random)
    }

    /// The next queued request of `backend` that can go now (after a table change too).
    public mutating func dequeue(_ backend: RoutingTable.Backend, random: inout some RandomNumberGenerator) -> (id: UInt64, choice: RoutedReplicaChoice)? {
        guard var queue = queues[backend.tag], !queue.isEmpty,
              let choice = pick(backend.replicas, limit: backend.maxConcurrentQueries, random: &random) else { return nil }
        let id = queue.removeFirst()
        queues[backend.tag] = queue.isEmpty ? nil : queue
        inFlight[choice.tag, default: 0] += 1
        return (id, choice)
    }

    /// Takes a waiting request out of the queue (it timed out, or its client left); false if
    /// it was not there (it was dequeued meanwhile).
    public mutating func abandon(_ id: UInt64, backend: String) -> Bool {
        guard var queue = queues[backend], let index = queue.firstIndex(of: id) else { return false }
        queue.remove(at: index)
        queues[backend] = queue.isEmpty ? nil : queue
        return true
    }

    /// Requests waiting for `backend`.
    public func queueLength(_ backend: String) -> Int { queues[backend]?.count ?? 0 }

    private func pick(_ replicas: [RoutedReplica], limit: Int, random: inout some RandomNumberGenerator) -> RoutedReplicaChoice? {
        var open: [RoutedReplica] = []
        open.reserveCapacity(replicas.count)
        for replica in replicas where inFlight[replica.tag, default: 0] < limit { open.append(replica) }
        guard !open.isEmpty else { return nil }
        let first = open[Int.random(in: 0..<open.count, using: &random)]
        guard open.count > 1 else { return RoutedReplicaChoice(tag: first.tag, address: first.address) }
        var second = open[Int.random(in: 0..<(open.count - 1), using: &random)]
        if second.tag == first.tag { second = open[open.count - 1] }
        let chosen = inFlight[second.tag, default: 0] < inFlight[first.tag, default: 0] ? second : first
        return RoutedReplicaChoice(tag: chosen.tag, address: chosen.address)
    }
}
