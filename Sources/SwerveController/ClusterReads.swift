import Foundation
import SwerveSystem
public import SwerveCore
public import SwerveProtocol
public import SwerveRedis

/// A node as `swerve get nodes` shows it: its record while its agent's heartbeat holds.
public struct NodeListing: Sendable, Hashable, Codable {
    public var id: String
    /// nil once the record expired (the agent stopped or lost Redis).
    public var record: NodeRecord?
}

/// One entry of the events stream (``ClusterKeys/events``).
public struct EventEntry: Sendable, Hashable, Codable {
    /// The stream id (`<ms>-<n>`): pass it back to read what came after.
    public var id: String
    public var epoch: Int64
    public var controller: String
    /// Unix milliseconds, by the leader's clock.
    public var at: Int64
    public var event: ClusterEvent
}

/// Reads for the `swerve get`, `describe` and `events` commands. Each reads what the leader
/// last wrote; none needs a leader to be up.
extension ClusterClient {
    /// The leader's last checkpoint (empty before the first one).
    /// - Throws: ``CheckpointError`` naming the key when it cannot be decoded.
    public func checkpoint() async throws -> BackendState {
        guard let bytes = try await client.send("GET", keys.checkpoint).bytes else { return BackendState() }
        do {
            return try Checkpoint.decode(bytes)
        } catch {
            throw CheckpointError(error.code, "\(keys.checkpoint): \(error.message)")
        }
    }

    /// A goal's outcome, nil while it has not settled (or after its key expired, a day on).
    public func goalOutcome(_ goal: GoalID) async throws -> GoalOutcome? {
        guard let bytes = try await client.send("GET", keys.goal(goal)).bytes else { return nil }
        return try JSONDecoder().decode(GoalOutcome.self, from: Data(bytes))
    }

    /// The leading controller's record, nil while none leads.
    public func leader() async throws -> LeaderRecord? {
        guard let bytes = try await client.send("GET", keys.leader).bytes else { return nil }
        return try DocumentCodec.decode(LeaderRecord.self, from: bytes, source: keys.leader)
    }

    /// Every node that registered, with its record while it is alive.
    public func nodes() async throws -> [NodeListing] {
        let ids = try await client.send("ZRANGE", keys.nodes, 0, -1).array?.compactMap(\.string) ?? []
        guard !ids.isEmpty else { return [] }
        let records = try await client.send(RedisCommand("MGET", arguments: ids.map(keys.node))).array ?? []
        return zip(ids, records).map { id, reply in
            NodeListing(id: id, record: reply.bytes.flatMap { try? DocumentCodec.decode(NodeRecord.self, from: $0, source: keys.node(id)) })
        }
    }

    /// The last `count` events, oldest first.
    public func recentEvents(count: Int) async throws -> [EventEntry] {
        let replies = try await client.send("XREVRANGE", keys.events, "+", "-", "COUNT", count).array ?? []
        return replies.compactMap(Self.eventEntry).reversed()
    }

    /// Events after the stream id `after` (see ``lastEventID()``), waiting up to `block` for the
    /// first; empty when none came.
    public func events(after: String, block: Duration) async throws -> [EventEntry] {
        let reply = try await client.send(RedisCommand("XREAD", arguments: ["COUNT", 1000, "BLOCK", block.wholeMilliseconds, "STREAMS", keys.events, after]),
                                          timeout: block + .seconds(5))
        // [[key, [entry, ...]]]
        return reply.array?.first?.array?.last?.array?.compactMap(Self.eventEntry) ?? []
    }

    /// The id of the newest event, or `0` when there is none (for following from now).
    public func lastEventID() async throws -> String {
        try await client.send("XREVRANGE", keys.events, "+", "-", "COUNT", 1).array?.first?.array?.first?.string ?? "0"
    }

    private static func eventEntry(_ reply: RedisReply) -> EventEntry? {
        guard let parts = reply.array, parts.count == 2, let id = parts[0].string, let fields = parts[1].array else { return nil }
        var values: [String: String] = [:]
        for index in stride(from: 0, to: fields.count - 1, by: 2) {
            if let name = fields[index].string, let value = fields[index + 1].string { values[name] = value }
        }
        guard let kind = values["kind"].flatMap(ClusterEvent.Kind.init(rawValue:)) else { return nil }
        let replica = values["replica"].flatMap { $0.isEmpty ? nil : $0 }
        let goal = values["goal"].flatMap { $0.isEmpty ? nil : $0 }
        return EventEntry(id: id, epoch: Int64(values["epoch"] ?? "") ?? 0, controller: values["controller"] ?? "",
                          at: Int64(values["at"] ?? "") ?? 0,
                          event: ClusterEvent(kind: kind, backend: values["backend"] ?? "", replica: replica, goal: goal, message: values["message"] ?? ""))
    }
}
