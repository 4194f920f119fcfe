import ArgumentParser
import Foundation
import Logging
import SwerveClient
import SwerveCore
import SwerveErrors
import SwerveProtocol
import SwerveRedis

/// What every request command shares: the cluster, and whether to wait for the goal.
struct RequestOptions: ParsableArguments {
    @OptionGroup var cluster: ClusterOptions

    @Flag(help: "Print the goal id and return at once instead of waiting for the goal.")
    var noWait = false

    @OptionGroup var waiting: WaitOptions

    func clusterClient() throws -> ClusterClient { try cluster.clusterClient() }

    /// Submits, then (unless --no-wait) waits, showing progress on stderr (one updating line
    /// on a terminal, a line per change otherwise).
    /// Exits non-zero with the reason when the goal fails.
    func submit(_ operations: [Request.Operation]) async throws {
        let client = try clusterClient()
        var goals: [(GoalID, String)] = []
        for operation in operations {
            do {
                goals.append((try await client.submit(operation), operation.backendTag))
            } catch let error as SwerveCore.ValidationError {
                throw CLIError("\(operation.backendTag): " + error.problems.map(\.description).joined(separator: "\n\(operation.backendTag): "))
            } catch let error as RedisError {
                throw CLIError(error.message)
            }
        }
        if noWait {
            for (goal, _) in goals { print(goal) }
            return
        }
        var failed = false
        let progress = ProgressLine()
        for (goal, tag) in goals {
            let outcome = try await waiting.wait(client, for: goal, backend: tag) { status in
                guard let status else { return }
                progress.show("\(tag): \(status.reason)")
            }
            progress.finish()
            if let failure = outcome.failure {
                print("\(tag): failed: \(failure)")
                failed = true
            } else {
                let status = try await client.status()[tag]
                print("\(tag): \(status.map { "\($0.kind.rawValue) (\($0.reason))" } ?? "done")")
            }
        }
        if failed { throw ExitCode(1) }
    }
}

/// How long a waiting command puts up with no leader.
struct WaitOptions: ParsableArguments {
    @Option(help: "Give up waiting (exit 1; the request stays queued) after this many seconds with no controller leading.")
    var leaderTimeout: Double = 30

    func validate() throws {
        guard leaderTimeout > 0 else { throw ValidationError("--leader-timeout: must be > 0, got \(leaderTimeout)") }
    }

    func wait(_ client: ClusterClient, for goal: GoalID, backend: String?, progress: @escaping @Sendable (BackendStatus?) -> Void) async throws -> GoalOutcome {
        do {
            return try await client.wait(for: goal, backend: backend, leaderless: .milliseconds(Int64(leaderTimeout * 1000)), progress: progress)
        } catch let error as ClientError {
            throw CLIError(error.message)
        } catch let error as RedisError {
            throw CLIError(error.message)
        }
    }
}

struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Create or change backends, from a YAML or JSON spec file or from flags, and wait until they run.",
        discussion: """
            A spec file holds backends, each with a tag, a config and a replicaConfig (see
            examples/backends.yaml and docs/PROTOCOL.md); several may be listed, or separated by
            ---. The same spec twice changes nothing; a changed replica config rolls out.

            Examples:
              swerve apply -f examples/backends.yaml
              swerve apply --tag api --replicas 3 --builtin echo --route /api
              swerve apply --tag web --replicas 2 --command "python3 app.py" --health-path /healthz --cpu 0.5
            """
    )

    @OptionGroup var options: RequestOptions

    @Option(name: [.short, .customLong("file")], help: "A YAML or JSON spec file (- for standard input).")
    var file: String?

    @Option(help: "The backend's tag (with flags instead of a file).")
    var tag: String?
    @Option(help: "Target replica count.") var replicas: Int = 1
    @Option(help: "A built-in handler: echo, sleep or fail.") var builtin: String?
    @Option(help: "A command line serving HTTP on $PORT.") var command: String?
    @Option(help: "A path the command answers 2xx on when healthy.") var healthPath: String?
    @Option(help: "CPUs per replica.") var cpu: Double = 1
    @Option(help: "Memory per replica, in bytes.") var memoryBytes: Int64 = 0
    @Option(help: "The route prefix routers serve it under.") var route: String?
    @Option(help: "Requests in flight per replica.") var maxConcurrentQueries: Int = 100
    @Option(help: "The user config, as JSON.") var userConfig: String?

    func run() async throws {
        let operations = try operations()
        try exitIfDryRun("apply", operations.map(\.backendTag).joined(separator: ", "))
        try await options.submit(operations)
    }

    private func operations() throws -> [Request.Operation] {
        if let file {
            let data: Data
            do {
                data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
            } catch {
                throw CLIError("cannot read \(file): \(error.localizedDescription)")
            }
            do {
                return try BackendSpec.parse(String(decoding: data, as: UTF8.self), source: file == "-" ? "standard input" : file).map(\.operation)
            } catch {
                throw CLIError(error.message)
            }
        }
        guard let tag else { throw ArgumentParser.ValidationError("give a spec with -f FILE, or --tag with flags") }
        let workload: ReplicaConfig.Workload
        switch (builtin, command) {
        case (let name?, nil): workload = .builtin(name: name)
        case (nil, let line?): workload = .command(arguments: line.split(separator: " ").map(String.init), environment: [:], healthPath: healthPath)
        default: throw ArgumentParser.ValidationError("give exactly one of --builtin and --command")
        }
        var parsedUserConfig: JSONValue?
        if let userConfig {
            guard !JSONNesting.exceeds(userConfig.utf8, limit: Limits.userConfigNesting) else {
                throw ArgumentParser.ValidationError("--user-config: must nest at most \(Limits.userConfigNesting) levels of arrays and objects")
            }
            do {
                parsedUserConfig = try JSONDecoder().decode(JSONValue.self, from: Data(userConfig.utf8))
            } catch {
                throw ArgumentParser.ValidationError("--user-config: not valid JSON: \(userConfig)")
            }
        }
        return [.createBackend(tag: tag, config: BackendConfig(numReplicas: replicas, maxConcurrentQueries: maxConcurrentQueries, userConfig: parsedUserConfig, routePrefix: route),
                               replicaConfig: ReplicaConfig(workload: workload, resources: Resources(cpu: cpu, memoryBytes: memoryBytes)))]
    }
}

struct ScaleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale", abstract: "Set a backend's replica count and wait until it holds.",
        discussion: "Example:\n  swerve scale api 5")
    @OptionGroup var options: RequestOptions
    @Argument(help: "The backend's tag.") var tag: String
    @Argument(help: "The new replica count.") var replicas: Int

    func run() async throws {
        try await options.submit([.updateBackendConfig(tag: tag, patch: BackendConfigPatch(numReplicas: replicas))])
    }
}

struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Drain a backend's replicas and remove it.",
        discussion: "Example:\n  swerve delete api          # drain within the graceful-shutdown timeout\n  swerve delete api --force  # kill at once")
    @OptionGroup var options: RequestOptions
    @Argument(help: "The backend's tag.") var tag: String
    @Flag(help: "Kill the replicas at once instead of draining them.") var force = false

    func run() async throws {
        try await options.submit([.deleteBackend(tag: tag, force: force)])
    }
}

struct WaitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait", abstract: "Wait for a goal (from --no-wait) to complete; exit 1 if it failed.",
        discussion: "Example:\n  swerve wait $(swerve scale api 5 --no-wait)")
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var waiting: WaitOptions
    @Argument(help: "The goal id.") var goal: String

    func run() async throws {
        let client = try cluster.clusterClient()
        // The backend whose goal it is, while pending: its status is the progress shown.
        let backend = (try? await client.checkpoint())?.backends.first { $0.goals.contains(goal) }?.tag
        let progress = ProgressLine()
        let outcome = try await waiting.wait(client, for: goal, backend: backend) { status in
            guard let status, let backend else { return }
            progress.show("\(backend): \(status.reason)")
        }
        progress.finish()
        if let failure = outcome.failure {
            print("failed: \(failure)")
            throw ExitCode(1)
        }
        print("done")
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show every backend's status (or one's).",
        discussion: "Examples:\n  swerve status\n  swerve status api --json")
    @OptionGroup var cluster: ClusterOptions
    @Argument(help: "Only this backend.") var tag: String?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let client = try cluster.clusterClient()
        var statuses = try await client.status()
        if let tag {
            guard let status = statuses[tag] else { throw CLIError("no backend named \"\(tag)\"") }
            statuses = [tag: status]
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(statuses), as: UTF8.self))
            return
        }
        let rows = statuses.sorted { $0.key < $1.key }.map { [$0.key, $0.value.kind.rawValue, "\($0.value.running)/\($0.value.target)", $0.value.reason] }
        print(Table(header: ["BACKEND", "STATUS", "RUNNING", "REASON"], rows: rows).render())
    }
}
