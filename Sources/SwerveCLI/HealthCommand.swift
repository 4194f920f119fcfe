import ArgumentParser
import Foundation
import SwerveClient
import SwerveProtocol
import SwerveRedis

/// `swerve health`: a probe for health checks (docker-compose, Kubernetes exec probes, cron):
/// exit 0 when healthy, else 1 with one line saying why.
struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health", abstract: "Exit 0 when Redis answers, a node agent is registered, or a controller leads.",
        discussion: """
            Examples:
              swerve health redis             # Redis answers PING
              swerve health node node-1       # node-1's agent keeps its record alive
              swerve health leader            # some controller holds the lease
            Controllers and routers also answer GET /-/healthz on their metrics or admin port.
            """)

    enum Probe: String, ExpressibleByArgument, CaseIterable { case redis, node, leader }

    @OptionGroup var cluster: ClusterOptions
    @Argument(help: "What to check: redis, node or leader.") var probe: Probe
    @Argument(help: "The node's id (for node; default: SWERVE_NODE_ID).") var id: String?

    func run() async throws {
        let client = try cluster.clusterClient()
        switch probe {
        case .redis:
            _ = try await CLIError.reading { try await client.nodes() }
            print("redis: ok")
        case .node:
            guard let id = id ?? ProcessInfo.processInfo.environment["SWERVE_NODE_ID"] else {
                throw ValidationError("give the node's id (or set SWERVE_NODE_ID)")
            }
            let nodes = try await CLIError.reading { try await client.nodes() }
            guard nodes.contains(where: { $0.id == id && $0.record != nil }) else {
                throw CLIError("node \(id) is not registered in cluster \(cluster.cluster) (its agent is down or cannot reach Redis)")
            }
            print("node \(id): ok")
        case .leader:
            guard let leader = try await CLIError.reading({ try await client.leader() }) else {
                throw CLIError("no controller leads cluster \(cluster.cluster)")
            }
            print("leader: \(leader.id) (epoch \(leader.epoch))")
        }
    }
}
