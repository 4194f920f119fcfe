import ArgumentParser
import Foundation
import SwerveClient
import SwerveCore
import SwerveProtocol

/// `swerve get backends|replicas|nodes|goals`: what the leader last recorded, as a table or
/// as JSON/YAML. Works with no leader (it reads the checkpoint and records in Redis).
struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get", abstract: "List backends, replicas, nodes or goals.",
        discussion: """
            Examples:
              swerve get backends
              swerve get replicas -o wide
              swerve get nodes -o json
              swerve get goals -o yaml
            """)

    enum Resource: String, ExpressibleByArgument, CaseIterable {
        case backends, replicas, nodes, goals

        init?(argument: String) {
            let plural = argument.hasSuffix("s") ? argument : argument + "s"
            self.init(rawValue: plural)
        }
    }

    @OptionGroup var cluster: ClusterOptions
    @Argument(help: "What to list: backends, replicas, nodes or goals.") var resource: Resource
    @Option(name: [.short, .customLong("output")], help: "table, wide, json or yaml.") var output: OutputFormat = .table

    func run() async throws {
        let client = try cluster.clusterClient()
        let state = try await CLIError.reading { try await client.checkpoint() }
        switch resource {
        case .backends:
            let statuses = try await CLIError.reading { try await client.status() }
            try show(state.backends.map { BackendRow($0, status: statuses[$0.tag]) })
        case .replicas:
            try show(state.backends.flatMap(\.replicas).sorted { ($0.backend, $0.tag) < ($1.backend, $1.tag) }.map(ReplicaRow.init))
        case .nodes:
            let nodes = try await CLIError.reading { try await client.nodes() }
            try show(nodes.map { NodeRow($0, state: state) })
        case .goals:
            let pending = state.backends.flatMap { backend in backend.goals.map { GoalRow(goal: $0, state: "pending", backend: backend.tag, reason: nil) } }
            // A settled goal's backend is in the event that settled it, while the stream has it.
            let events = (try? await client.recentEvents(count: 2000)) ?? []
            var backends: [String: String] = [:]
            for entry in events { if let goal = entry.event.goal { backends[goal] = entry.event.backend } }
            let settled = state.recentGoalOutcomes.reversed().map {
                GoalRow(goal: $0.goal, state: $0.failure == nil ? "completed" : "failed", backend: backends[$0.goal], reason: $0.failure)
            }
            try show(pending + settled)
        }
    }

    private func show<Row: ListedRow>(_ rows: [Row]) throws {
        switch output {
        case .json, .yaml:
            try printEncoded(rows, as: output)
        case .table, .wide:
            if rows.isEmpty {
                FileHandle.standardError.write(Data("no \(resource.rawValue) in cluster \(cluster.cluster)\n".utf8))
                return
            }
            print(Table(header: Row.header(wide: output == .wide), rows: rows.map { $0.cells(wide: output == .wide) }).render())
        }
    }
}

/// A row of `swerve get`: its columns, and all its fields for JSON/YAML.
protocol ListedRow: Encodable {
    static func header(wide: Bool) -> [String]
    func cells(wide: Bool) -> [String]
}

struct BackendRow: ListedRow {
    var name: String
    var status: String
    var running: Int
    var target: Int
    /// An autoscaled backend's bounds (its target is the autoscaler's decision).
    var minReplicas: Int?
    var maxReplicas: Int?
    var version: String
    var route: String?
    var maxConcurrentQueries: Int
    var cpu: Double
    var reason: String

    init(_ backend: BackendRecord, status: BackendStatus?) {
        let derived = status ?? backend.status
        name = backend.tag
        self.status = derived.kind.rawValue
        running = derived.running
        target = derived.target
        minReplicas = backend.config.autoscaling?.minReplicas
        maxReplicas = backend.config.autoscaling?.maxReplicas
        version = backend.version
        route = backend.config.routePrefix
        maxConcurrentQueries = backend.config.maxConcurrentQueries
        cpu = backend.replicaConfig.resources.cpu
        reason = derived.reason
    }

    static func header(wide: Bool) -> [String] {
        ["NAME", "STATUS", "READY", "ROUTE", "VERSION"] + (wide ? ["CPU", "MAX-QUERIES", "REASON"] : [])
    }

    func cells(wide: Bool) -> [String] {
        let bounds = minReplicas.map { " (auto \($0)…\(maxReplicas ?? $0))" } ?? ""
        return [name, status, "\(running)/\(target)" + bounds, route ?? "-", version] + (wide ? ["\(cpu)", "\(maxConcurrentQueries)", reason] : [])
    }
}

struct ReplicaRow: ListedRow {
    var tag: String
    var backend: String
    var state: String
    var node: String?
    var pid: Int32?
    var version: String
    var startedAt: Int64?
    var address: String?
    var reason: String?

    init(_ replica: ReplicaRecord) {
        tag = replica.tag
        backend = replica.backend
        state = replica.state.rawValue
        node = replica.node
        pid = replica.endpoint?.pid
        version = replica.version
        startedAt = replica.startedAt?.milliseconds
        address = replica.endpoint?.address.description
        reason = replica.stopReason ?? replica.pendingReason
    }

    static func header(wide: Bool) -> [String] {
        ["REPLICA", "BACKEND", "STATE", "NODE", "PID", "VERSION", "AGE"] + (wide ? ["ADDRESS", "REASON"] : [])
    }

    func cells(wide: Bool) -> [String] {
        [tag, backend, state, node ?? "-", pid.map(String.init) ?? "-", version, age(sinceMilliseconds: startedAt)]
            + (wide ? [address ?? "-", reason ?? "-"] : [])
    }
}

struct NodeRow: ListedRow {
    var node: String
    var alive: Bool
    /// Ready, NotReady, Cordoned or Draining.
    var status: String
    var address: String?
    var pid: Int32?
    var cpu: Double?
    var cpuAssigned: Double
    var replicas: Int
    var startedAt: Int64?

    init(_ listing: NodeListing, state: BackendState) {
        node = listing.id
        alive = listing.record != nil
        status = listing.state
        address = listing.record?.address
        pid = listing.record?.pid
        cpu = listing.record?.resources.cpu
        startedAt = listing.record?.startedAt.milliseconds
        let placed = state.backends.flatMap { backend in backend.replicas.filter { $0.node == listing.id && $0.state.occupiesNode }.map { (backend, $0) } }
        replicas = placed.count
        cpuAssigned = placed.reduce(0) { $0 + $1.0.replicaConfig.resources.cpu }
    }

    static func header(wide: Bool) -> [String] {
        ["NODE", "STATUS", "REPLICAS", "CPU(ASSIGNED/TOTAL)", "AGE"] + (wide ? ["ADDRESS", "PID"] : [])
    }

    func cells(wide: Bool) -> [String] {
        [node, status, "\(replicas)", "\(cpuAssigned)/\(cpu.map { "\($0)" } ?? "?")", age(sinceMilliseconds: startedAt)]
            + (wide ? [address ?? "-", pid.map(String.init) ?? "-"] : [])
    }
}

struct GoalRow: ListedRow {
    var goal: String
    var state: String
    var backend: String?
    var reason: String?

    static func header(wide: Bool) -> [String] { ["GOAL", "STATE", "BACKEND", "REASON"] }

    func cells(wide: Bool) -> [String] { [goal, state, backend ?? "-", reason ?? "-"] }
}
