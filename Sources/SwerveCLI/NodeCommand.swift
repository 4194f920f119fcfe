import ArgumentParser
import Foundation
import Logging
import SwerveCore
import SwerveErrors
import SwerveNode
import SwerveProtocol

/// `swerve node`: runs the node agent (the default), or cordons, uncordons and drains nodes.
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run this host's node agent, or cordon, uncordon and drain nodes.",
        discussion: """
            Examples:
              swerve node --id node-a --cpu 4        # run the agent (same as: swerve node run …)
              swerve node cordon node-a              # no new replicas on node-a
              swerve node drain node-a --wait        # move node-a's replicas away, gracefully
              swerve node uncordon node-a            # place replicas there again
            """,
        subcommands: [NodeAgentCommand.self, NodeCordonCommand.self, NodeUncordonCommand.self, NodeDrainCommand.self],
        defaultSubcommand: NodeAgentCommand.self
    )
}

/// `swerve node [run]`: the agent that runs this host's replicas.
struct NodeAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run this host's node agent: register its resources and run the workers the leader assigns to it.",
        discussion: """
            SIGTERM or SIGINT drains the node: the leader places nothing more here, starts
            replacements elsewhere, takes this node's replicas out of routing and drains them;
            the agent exits once they are gone (or --shutdown-timeout passed). With no leader to
            do it, the agent asks its workers to drain themselves. An agent refuses to start with
            the id of one that is still running.

            Example:
              swerve node --id node-a --address 10.0.0.5 --cpu 4 --memory 8GiB --resource gpu=1
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "This node's id (default: SWERVE_NODE_ID, else the host name).")
    var id: String = ProcessInfo.processInfo.environment["SWERVE_NODE_ID"] ?? ProcessInfo.processInfo.hostName

    @Option(help: "The address workers bind and advertise to routers (default: SWERVE_NODE_ADDRESS, else 127.0.0.1).")
    var address = ProcessInfo.processInfo.environment["SWERVE_NODE_ADDRESS"] ?? "127.0.0.1"

    @Option(name: .customLong("cpu"), help: "CPUs offered to replicas (fractions allowed; default: SWERVE_NODE_CPU, else the cores here).")
    var cpuFlag: Double?

    @Option(help: "Memory offered to replicas, in bytes or with a unit (512MiB, 8GiB; default: SWERVE_NODE_MEMORY, else the memory here).")
    var memory: String? = ProcessInfo.processInfo.environment["SWERVE_NODE_MEMORY"]

    /// CPUs offered: the flag, else SWERVE_NODE_CPU, else the cores here.
    var cpu: Double {
        get throws {
            if let cpuFlag { return cpuFlag }
            guard let text = ProcessInfo.processInfo.environment["SWERVE_NODE_CPU"], !text.isEmpty else { return Double(ProcessInfo.processInfo.activeProcessorCount) }
            guard let value = Double(text) else { throw ArgumentParser.ValidationError("SWERVE_NODE_CPU: must be a number, got '\(text)'") }
            return value
        }
    }

    @Option(name: .customLong("resource"), help: ArgumentHelp("A custom resource offered to replicas, NAME=AMOUNT (repeatable).", valueName: "name=amount"))
    var resources: [String] = []

    @Option(help: "Seconds after SIGTERM/SIGINT before workers that have not drained are killed.")
    var shutdownTimeout: Double = 30

    @Option(help: ArgumentHelp("The program started for each replica, with its arguments (default: this swerve, worker).", valueName: "command"))
    var workerCommand: String?

    @Option(help: ArgumentHelp("Serve Prometheus metrics on http://HOST:PORT/metrics (default: SWERVE_METRICS_ADDRESS, else none; port 0 picks one).", valueName: "host:port"))
    var metricsAddress: String?

    @Option(name: .customLong("allow-command"), help: ArgumentHelp("""
        A program command replicas may run here, as an absolute path pattern (fnmatch: * and ? never \
        match a /), e.g. /opt/app/bin/* (repeatable; default: SWERVE_NODE_ALLOW_COMMANDS, comma-separated, \
        else any program). Any other command replica is refused with an exit record saying why.
        """, valueName: "pattern"))
    var allowCommands: [String] = []

    /// `--allow-command`, else `SWERVE_NODE_ALLOW_COMMANDS`.
    var allowedCommands: CommandAllowList {
        get throws {
            let patterns = !allowCommands.isEmpty ? allowCommands
                : (ProcessInfo.processInfo.environment["SWERVE_NODE_ALLOW_COMMANDS"] ?? "").split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            for pattern in patterns {
                if let problem = CommandAllowList.problem(with: pattern) {
                    throw ArgumentParser.ValidationError("--allow-command (or SWERVE_NODE_ALLOW_COMMANDS): \(problem)")
                }
            }
            return CommandAllowList(patterns: patterns)
        }
    }

    func validate() throws {
        guard !id.isEmpty, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
            throw ArgumentParser.ValidationError("--id: \"\(id)\" may contain only letters, digits, \"-\", \"_\" and \".\"")
        }
        let cpu = try cpu
        guard cpu >= 0, cpu.isFinite else { throw ArgumentParser.ValidationError("--cpu (or SWERVE_NODE_CPU): must be a number ≥ 0, got \(cpu)") }
        guard shutdownTimeout >= 0 else { throw ArgumentParser.ValidationError("--shutdown-timeout: must be ≥ 0, got \(shutdownTimeout)") }
        _ = try memoryBytes()
        _ = try customResources()
        _ = try allowedCommands
        _ = try SwerveCLI.metricsAddress(metricsAddress)
    }

    func run() async throws {
        let logger = try processLogger("swerve.node")
        let selfPath = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let command = workerCommand.map { $0.split(separator: " ").map(String.init) } ?? [selfPath, "worker"]
        let agentEnvironment = ProcessInfo.processInfo.environment
        let workerCredentials: WorkerCredentials?
        do { workerCredentials = try WorkerCredentials.from(environment: agentEnvironment, redisURL: cluster.redisURL) } catch {
            throw ArgumentParser.ValidationError(error.message)
        }
        var configuration = NodeConfiguration(
            redisURL: cluster.redisURL, redis: try cluster.redisConfiguration(), keys: try cluster.keys(), id: id, address: address,
            resources: Resources(cpu: try cpu, memoryBytes: try memoryBytes(), custom: try customResources()),
            shutdownTimeout: .milliseconds(Int64(shutdownTimeout * 1000)), workerCommand: command,
            environment: workerCredentials?.workerEnvironment(from: agentEnvironment) ?? agentEnvironment)
        configuration.allowedCommands = try allowedCommands
        let commands = configuration.allowedCommands.patterns.isEmpty ? "any" : configuration.allowedCommands.patterns.joined(separator: ", ")
        let workers = workerCredentials.map { "Redis user \($0.user)" } ?? "the agent's Redis credentials"
        let metrics = try SwerveCLI.metricsAddress(metricsAddress)
        try exitIfDryRun("node", "id \(id), address \(address), cpu \(configuration.resources.cpu), cluster \(configuration.keys.cluster), commands \(commands), workers use \(workers), metrics \(metrics?.description ?? "none")")
        if let metrics {
            try await serveMetrics("node", on: metrics, logger: logger,
                                   durationBuckets: [NodeMetrics.drainDurationLabel: NodeMetrics.drainDurationBuckets])
            // Made after the backend is installed: a metric made before it would record nowhere.
            configuration.metrics = NodeMetrics()
        }
        do {
            try await NodeAgent.run(configuration, logger: logger)
        } catch {
            FileHandle.standardError.write(Data("swerve node: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    private func memoryBytes() throws -> Int64 {
        guard let memory else { return Int64(ProcessInfo.processInfo.physicalMemory) }
        let units: [(String, Int64)] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1), ("", 1)]
        for (unit, factor) in units where memory.hasSuffix(unit) {
            if let value = Double(memory.dropLast(unit.count)), value >= 0, value * Double(factor) < 0x1p62 { return Int64(value * Double(factor)) }
        }
        throw ArgumentParser.ValidationError("--memory: \"\(memory)\" is not an amount such as 1073741824, 512MiB or 8GiB (below 4 EiB)")
    }

    private func customResources() throws -> [String: Double] {
        var custom: [String: Double] = [:]
        for item in resources {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, parts[0] != "cpu", parts[0] != "memory", let amount = Double(parts[1]), amount >= 0 else {
                throw ArgumentParser.ValidationError("--resource: \"\(item)\" must be NAME=AMOUNT, e.g. gpu=1 (cpu and memory have their own flags)")
            }
            custom[parts[0]] = amount
        }
        return custom
    }
}
