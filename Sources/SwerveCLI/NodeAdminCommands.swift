import ArgumentParser
import Foundation
import SwerveClient
import SwerveProtocol

/// `swerve node cordon NODE`: no new replicas on NODE; the ones it has stay.
struct NodeCordonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cordon",
        abstract: "Mark a node unschedulable: the leader places no new replicas there.",
        discussion: """
            Its replicas keep running and serving. Lasts until `swerve node uncordon`, also
            across restarts of the node's agent.

            Example:
              swerve node cordon node-a
            """
    )

    @OptionGroup var cluster: ClusterOptions
    @Argument(help: "The node's id.") var node: String

    func run() async throws {
        let client = try cluster.clusterClient()
        try await CLIError.reading { try await client.cordon(node, mode: .cordon) }
        print("node/\(node) cordoned")
    }
}

/// `swerve node uncordon NODE`: replicas may be placed on NODE again.
struct NodeUncordonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uncordon",
        abstract: "Let the leader place replicas on a cordoned or drained node again.",
        discussion: """
            Example:
              swerve node uncordon node-a
            """
    )

    @OptionGroup var cluster: ClusterOptions
    @Argument(help: "The node's id.") var node: String

    func run() async throws {
        let client = try cluster.clusterClient()
        let was = try await CLIError.reading { try await client.uncordon(node) }
        print(was ? "node/\(node) uncordoned" : "node/\(node) was not cordoned")
    }
}

/// `swerve node drain NODE [--wait]`: moves NODE's replicas elsewhere, gracefully.
struct NodeDrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Move a node's replicas elsewhere, gracefully, and place nothing more there.",
        discussion: """
            Each replica is replaced on another node first (within its backend's maxSurge and
            maxUnavailable), then leaves routing and drains. A replica with nowhere else to go
            keeps running. The node stays drained until `swerve node uncordon`.

            Example:
              swerve node drain node-a --wait --timeout 120
            """
    )

    @OptionGroup var cluster: ClusterOptions
    @Argument(help: "The node's id.") var node: String
    @Flag(help: "Wait until the leader has no replica left on the node.") var wait = false
    @Option(help: "With --wait: give up after this many seconds (exit 1).") var timeout: Double = 300

    func validate() throws {
        guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout: must be a number of seconds > 0, got \(timeout)") }
    }

    func run() async throws {
        let client = try cluster.clusterClient()
        try await CLIError.reading { try await client.cordon(node, mode: .drain) }
        print("node/\(node) draining")
        guard wait else { return }
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while true {
            let left = try await CLIError.reading { try await client.replicasPlaced(on: node) }
            if left == 0 { break }
            guard ContinuousClock.now < deadline else {
                FileHandle.standardError.write(Data("swerve node drain: \(left) replicas still on node/\(node) after \(timeout) s (those with nowhere else to go stay)\n".utf8))
                throw ExitCode(1)
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        print("node/\(node) drained")
    }
}
