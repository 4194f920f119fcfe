public import SwerveCore
public import SwerveProtocol
import SwerveErrors
import SwerveRedis
import SwerveSystem

/// What operators do to nodes, like `kubectl cordon/uncordon/drain`: written straight to
/// `swerve:{C}:cordons` (not through the request stream: a cordon is about a host, not a
/// backend, and must work while no controller leads), then a wake-up for the leader.
extension ClusterClient {
    /// Cordons (`.cordon`: no new replicas) or drains (`.drain`: no new replicas, and those it
    /// has are replaced elsewhere and drained) `node`, until ``uncordon(_:)``.
    /// - Throws: ``ClientError`` `.invalidNode` when `node` is not a node id.
    public func cordon(_ node: String, mode: NodeCordonDocument.Mode) async throws {
        try Self.checkNodeID(node)
        let replies = try await client.pipeline([
            RedisCommand("HSET", keys.cordons, node, DocumentCodec.encode(NodeCordonDocument(mode: mode, at: wallClockNow()))),
            RedisCommand("PUBLISH", keys.wake, DocumentCodec.encode(WakeUp(event: .nodeChanged, subject: node))),
        ])
        _ = try replies[0].throwingServerError(for: "HSET")
    }

    /// Lets the leader place replicas on `node` again; true when it was cordoned or drained.
    @discardableResult
    public func uncordon(_ node: String) async throws -> Bool {
        try Self.checkNodeID(node)
        let replies = try await client.pipeline([
            RedisCommand("HDEL", keys.cordons, node),
            RedisCommand("PUBLISH", keys.wake, DocumentCodec.encode(WakeUp(event: .nodeChanged, subject: node))),
        ])
        return try replies[0].throwingServerError(for: "HDEL").integer == 1
    }

    /// How many replicas the leader's last checkpoint still places on `node` (starting,
    /// running or stopping): `swerve node drain --wait` waits for 0.
    public func replicasPlaced(on node: String) async throws -> Int {
        let state = try await checkpoint()
        let live = state.backends.flatMap(\.replicas) + state.retiredReplicas
        return live.filter { $0.node == node && $0.state.occupiesNode }.count
    }

    static func checkNodeID(_ node: String) throws {
        guard !node.isEmpty, node.count <= 253, node.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
            throw ClientError(.invalidNode, "\"\(node.prefix(64))\" is not a node id (letters, digits, \"-\", \"_\" and \".\")")
        }
    }
}
