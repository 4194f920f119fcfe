import Foundation
public import SwerveCore
import SwerveErrors
public import SwerveProtocol
public import SwerveRedis

/// A node as `swerve get nodes` shows it: its record while its agent's heartbeat holds.
public struct NodeListing: Sendable, Hashable, Codable {
    public var id: String
    /// nil once the node's lease ran out (the agent stopped or lost Redis).
    public var record: NodeRecord?
    /// Set while an operator has cordoned or drained the node.
    public var cordon: NodeCordonDocument.Mode?

    /// `Ready`, `NotReady` (no heartbeat), `Cordoned` (no new replicas), `Draining` (its
    /// replicas are moving away: an operator's drain or its agent shutting down).
    public var state: String {
        guard let record else { return cordon == nil ? "NotReady" : "NotReady,\(cordon == .drain ? "Draining" : "Cordoned")" }
        if record.draining == true || cordon == .drain { return "Draining" }
        return cordon == .cordon ? "Cordoned" : "Ready"
    }
}

/// Reads for the `swerve get`, `describe` and `events` commands. Each reads what the leader
/// last wrote; none needs a leader to be up.
extension ClusterClient {
    /// The leader's last checkpoint (empty before the first one).
    /// - Throws: ``CheckpointError`` naming the key when it cannot be decoded.
    public func checkpoint() async throws -> BackendState {
        let results = try await client.transaction([RedisCommand("GET", keys.checkpoint), RedisCommand("HGETALL", keys.checkpointParts)])
        guard let header = results[0].bytes else { return BackendState() }
        do {
            return try Checkpoint.decode(Checkpoint.Stored(header: header, parts: results[1].fields))
        } catch {
            throw CheckpointError(error.code, "\(keys.checkpoint): \(error.message)")
        }
    }

    /// The routing view routers follow: the stored snapshot brought up to date by the deltas
    /// stored after it (read in one transaction); nil before the first.
    public func routingSnapshot() async throws -> Snapshot<RoutingView>? {
        try await Self.routingSnapshot(client: client, keys: keys)
    }

    /// ``routingSnapshot()`` through any connection (benchmarks, chaos checks).
    public static func routingSnapshot(client: RedisClient, keys: ClusterKeys) async throws -> Snapshot<RoutingView>? {
        let replies = try await client.transaction([RedisCommand("GET", keys.routingSnapshot), RedisCommand("LRANGE", keys.routingDeltas, 0, -1)])
        guard let bytes = replies[0].bytes else { return nil }
        let whole = try DocumentCodec.decode(Snapshot<RoutingView>.self, from: bytes, source: keys.routingSnapshot)
        let deltas = try (replies[1].array ?? []).map { try DocumentCodec.decode(SnapshotNotice.self, from: $0.bytes ?? [], source: keys.routingDeltas) }
        return whole.following(deltas).snapshot
    }

    /// A goal's outcome, nil while it has not settled (or after its key expired, a day on).
    public func goalOutcome(_ goal: GoalID) async throws -> GoalOutcome? {
        guard let bytes = try await client.send("GET", keys.goal(goal)).bytes else { return nil }
        return try DocumentCodec.decode(GoalOutcomeDocument.self, from: bytes, source: keys.goal(goal)).outcome
    }

    /// The leading controller's record, nil while none leads.
    public func leader() async throws -> LeaderRecord? {
        guard let bytes = try await client.send("GET", keys.leader).bytes else { return nil }
        return try DocumentCodec.decode(LeaderRecord.self, from: bytes, source: keys.leader)
    }

    /// Every node that registered, with its record while it is alive (its lease, the score in
    /// `nodes`, runs out after Redis's time).
    public func nodes() async throws -> [NodeListing] {
        let replies = try await client.pipeline([RedisCommand("ZRANGE", keys.nodes, 0, -1, "WITHSCORES"), RedisCommand("HGETALL", keys.cordons),
                                                 RedisCommand("TIME")])
        let listed = replies[0].array ?? []
        var ids: [String] = []
        var deadlines: [Double] = []
        for index in stride(from: 0, to: listed.count - 1, by: 2) {
            guard let id = listed[index].string else { continue }
            ids.append(id)
            deadlines.append(listed[index + 1].string.flatMap(Double.init) ?? 0)
        }
        let cordons = try cordons(replies[1])
        let now = Double(replies[2].timeMilliseconds ?? 0)
        guard !ids.isEmpty else { return [] }
        let records = try await client.send(RedisCommand("MGET", arguments: ids.map(keys.node))).array ?? []
        return zip(zip(ids, deadlines), records).map { node, reply in
            let (id, deadline) = node
            return NodeListing(id: id, record: deadline > now ? reply.bytes.flatMap { try? DocumentCodec.decode(NodeRecord.self, from: $0, source: keys.node(id)) } : nil,
                               cordon: cordons[id])
        }
    }

    private func cordons(_ reply: RedisReply) throws -> [String: NodeCordonDocument.Mode] {
        var cordons: [String: NodeCordonDocument.Mode] = [:]
        for (node, bytes) in reply.fieldPairs {
            cordons[node] = try DocumentCodec.decode(NodeCordonDocument.self, from: bytes, source: "\(keys.cordons) field \(node)").mode
        }
        return cordons
    }

    /// The last `count` events, oldest first.
    public func recentEvents(count: Int) async throws -> [EventEntry] {
        let reply = try await client.send("XREVRANGE", keys.events, "+", "-", "COUNT", count)
        return readable(reply.streamEntries).reversed()
    }

    /// Events after the stream id `after` (see ``lastEventID()``), waiting up to `block` for the
    /// first; empty when none came.
    public func events(after: String, block: Duration) async throws -> [EventEntry] {
        let reply = try await client.send(RedisCommand("XREAD", arguments: ["COUNT", 1000, "BLOCK", block.wholeMilliseconds, "STREAMS", keys.events, after]),
                                          timeout: block + .seconds(5))
        return readable(reply.streamEntries(readFrom: keys.events))
    }

    /// The id of the newest event, or `0` when there is none (for following from now).
    public func lastEventID() async throws -> String {
        try await client.send("XREVRANGE", keys.events, "+", "-", "COUNT", 1).streamEntries.first?.id ?? "0"
    }

    /// The events among `entries` this Swerve can read; an entry of another version or shape
    /// is left out (an event is for people: one that cannot be shown must not hide the rest).
    private func readable(_ entries: [RedisStreamEntry]) -> [EventEntry] {
        entries.compactMap { try? EventEntry(id: $0.id, fields: $0.fields, source: keys.events) }
    }
}
