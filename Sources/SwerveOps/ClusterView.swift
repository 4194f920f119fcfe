import Foundation
import SwerveClient
import SwerveCore
import SwerveProtocol
import SwerveRedis

/// What `up` shows live: the leader and every backend's status, read through the client.
struct ClusterView {
    let client: ClusterClient

    /// The live status table: leader, then one line per backend.
    func statusLines() async -> [String] {
        let leader = try? await client.leader()
        var lines = [leader.map { "leader: \($0.id) (epoch \($0.epoch))" } ?? "leader: none (an election is under way)"]
        guard let statuses = try? await client.status(), !statuses.isEmpty else { return lines + ["backends: none yet"] }
        let rows = statuses.sorted { $0.key < $1.key }.map { [$0.key, $0.value.kind.rawValue, "\($0.value.running)/\($0.value.target)", $0.value.reason] }
        let all = [["BACKEND", "STATUS", "READY", "REASON"]] + rows
        let widths = (0..<3).map { column in all.map { $0[column].count }.max() ?? 0 }
        lines += all.map { row in (0..<3).map { row[$0].padding(toLength: widths[$0] + 2, withPad: " ", startingAt: 0) }.joined() + row[3] }
        return lines
    }
}
