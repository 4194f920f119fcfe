import ArgumentParser
import Foundation
import SwerveClient
import SwerveCore
import SwerveProtocol
import SwerveSystem

/// `swerve describe backend TAG`: one backend in full — config, workload, replicas and its
/// recent events.
struct DescribeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe", abstract: "Show one backend in full: config, replicas and recent events.",
        discussion: """
            Example:
              swerve describe backend api
            """)

    enum Resource: String, ExpressibleByArgument, CaseIterable {
        case backend
        init?(argument: String) { self.init(rawValue: argument.hasSuffix("s") ? String(argument.dropLast()) : argument) }
    }

    @OptionGroup var cluster: ClusterOptions
    @Argument(help: "What to describe: backend.") var resource: Resource
    @Argument(help: "The backend's tag.") var tag: String
    @Option(help: "How many of its most recent events to show.") var events = 10

    func run() async throws {
        let client = try cluster.clusterClient()
        let state = try await CLIError.reading { try await client.checkpoint() }
        guard let backend = state.backend(tag) else {
            let known = state.backends.map(\.tag).sorted()
            throw CLIError("no backend named \"\(tag)\" in cluster \(cluster.cluster) (backends: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
        }
        let status = try await CLIError.reading { try await client.status() }[tag] ?? backend.status
        let config = backend.config
        var lines: [(String, String)] = [
            ("Name", backend.tag),
            ("Status", "\(status.kind.rawValue): \(status.reason)"),
            ("Version", backend.version),
            ("Route", config.routePrefix ?? "-"),
            ("Replicas", "\(backend.target) wanted, at most \(config.maxConcurrentQueries) requests in flight each"),
            ("Autoscaling", config.autoscaling.map { a in
                var text = "\(a.minReplicas)…\(a.maxReplicas) replicas, \(formatNumber(a.targetOngoingRequests)) requests per replica over \(formatNumber(a.lookBackPeriodS)) s; "
                    + "up after \(formatNumber(a.upscaleDelayS)) s, down after \(formatNumber(a.downscaleDelayS)) s"
                if let wanted = backend.autoscaling?.wanted, let since = backend.autoscaling?.wantedSince {
                    text += "; the load has called for \(wanted) for \(formatNumber(Double(wallClockMilliseconds() - since.milliseconds) / 1000)) s"
                }
                if let reason = backend.autoscaling?.reason { text += "; last decision: \(reason)" }
                return text
            } ?? "-"),
            ("Rollout", "max surge \(config.maxSurge), max unavailable \(config.maxUnavailable)"),
            ("Shutdown", "drain for up to \(config.gracefulShutdownTimeoutS) s"),
            ("Routers", "give up on a replica silent for \(config.upstreamTimeoutS) s; "
                + (config.retryIdempotentRequests ? "resend idempotent requests a lost replica took" : "never resend a request a replica took")),
            ("Workload", Self.describe(backend.replicaConfig.workload)),
            ("Resources", "cpu \(backend.replicaConfig.resources.cpu)" + (backend.replicaConfig.resources.memoryBytes > 0 ? ", memory \(backend.replicaConfig.resources.memoryBytes) bytes" : "")),
            ("User config", config.userConfig.map { Self.json($0) } ?? "-"),
            ("Goals pending", backend.goals.isEmpty ? "-" : backend.goals.joined(separator: ", ")),
        ]
        if backend.deleting { lines.append(("Deleting", backend.forceDelete ? "yes (forced)" : "yes (draining)")) }
        if let failure = backend.failure { lines.append(("Failure", failure)) }
        let width = (lines.map(\.0.count).max() ?? 0) + 2
        for (name, value) in lines { print((name + ":").padding(toLength: width, withPad: " ", startingAt: 0) + value) }

        print("\nReplicas:")
        let replicas = backend.replicas.map(ReplicaRow.init)
        print(replicas.isEmpty ? "  none" : Table(header: ReplicaRow.header(wide: true), rows: replicas.map { $0.cells(wide: true) }).render().indented)

        print("\nEvents:")
        let recent = try await CLIError.reading { try await client.recentEvents(count: 1000) }.filter { $0.event.backend == tag }.suffix(events)
        print(recent.isEmpty ? "  none" : Table(header: EventRow.header(wide: false), rows: recent.map { EventRow($0).cells(wide: false) }).render().indented)
    }

    static func describe(_ workload: ReplicaConfig.Workload) -> String {
        switch workload {
        case .builtin(let name, let options): "built-in \(name)" + (options.isEmpty ? "" : " \(json(.object(options)))")
        case .command(let arguments, let environment, let healthPath):
            "command \(arguments.joined(separator: " "))" + (environment.isEmpty ? "" : ", environment \(environment.keys.sorted().joined(separator: ", "))")
                + (healthPath.map { ", health \($0)" } ?? "")
        }
    }

    static func json(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "?"
    }
}

extension String {
    /// Every line indented by two spaces.
    var indented: String { split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n") }
}
