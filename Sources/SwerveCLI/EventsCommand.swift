import ArgumentParser
import Foundation
import SwerveClient
import SwerveCore
import SwerveErrors
import SwerveProtocol
import SwerveRedis

/// `swerve events [--follow]`: the state transitions the leader recorded, oldest first.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Show the state transitions the leader recorded; --follow for new ones as they happen.",
        discussion: """
            The leader appends every transition (backends created, updated, deleted; replicas
            starting, running, draining, stopped; goals settled) to a capped Redis Stream.

            Examples:
              swerve events
              swerve events --backend api --follow
              swerve events -o json --last 500
            """)

    @OptionGroup var cluster: ClusterOptions
    @Flag(name: [.short, .customLong("follow")], help: "Keep printing new events until interrupted.") var follow = false
    @Option(help: "Only this backend's events.") var backend: String?
    @Option(help: "How many recent events to show first.") var last = 50
    @Option(name: [.short, .customLong("output")], help: "table, wide, json or yaml (json prints one object per line with --follow).")
    var output: OutputFormat = .table

    func validate() throws {
        guard last >= 0 else { throw ValidationError("--last: must be ≥ 0, got \(last)") }
        if follow, output == .yaml { throw ValidationError("--output yaml cannot --follow: use json (one object per line)") }
    }

    func run() async throws {
        let client = try cluster.clusterClient()
        let start = try await CLIError.reading { try await client.lastEventID() }
        let recent = try await CLIError.reading { try await client.recentEvents(count: backend == nil ? last : 10 * last) }
            .filter { backend == nil || $0.event.backend == backend }.suffix(last)
        let wide = output == .wide
        if follow {
            try await runUntilTerminated("events") {
                var cursor = start
                var headed = false
                func emit(_ entries: some Sequence<EventEntry>) throws {
                    for entry in entries where backend == nil || entry.event.backend == backend {
                        // Written at once (not buffered): a follower reads each as it happens.
                        if output == .json {
                            let encoder = JSONEncoder()
                            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                            FileHandle.standardOutput.write(try encoder.encode(entry) + Data("\n".utf8))
                        } else {
                            // Rows come one at a time, so columns have fixed minimum widths.
                            if !headed { FileHandle.standardOutput.write(Data((Self.followLine(EventRow.header(wide: wide)) + "\n").utf8)); headed = true }
                            FileHandle.standardOutput.write(Data((Self.followLine(EventRow(entry).cells(wide: wide)) + "\n").utf8))
                        }
                    }
                }
                try emit(recent)
                var unreachable = false
                while !Task.isCancelled {
                    let entries: [EventEntry]
                    do {
                        entries = try await client.events(after: cursor, block: .seconds(2))
                    } catch let error as RedisError {
                        // A follower outlives a Redis restart: say so once, then keep trying.
                        if !unreachable { FileHandle.standardError.write(Data("swerve events: \(error.message); retrying\n".utf8)) }
                        unreachable = true
                        try await Task.sleep(for: .seconds(1))
                        continue
                    }
                    unreachable = false
                    if let newest = entries.last { cursor = newest.id }
                    try emit(entries)
                }
            }
            return
        }
        switch output {
        case .json, .yaml:
            try printEncoded(Array(recent), as: output)
        case .table, .wide:
            if recent.isEmpty {
                FileHandle.standardError.write(Data("no events yet in cluster \(cluster.cluster)\n".utf8))
                return
            }
            print(Table(header: EventRow.header(wide: wide), rows: recent.map { EventRow($0).cells(wide: wide) }).render())
        }
    }

    static func followLine(_ cells: [String]) -> String {
        let widths = [20, 16, 14]
        return cells.enumerated().map { index, cell in
            index < widths.count && index < cells.count - 1 ? cell.padding(toLength: max(widths[index], cell.count + 2), withPad: " ", startingAt: 0) : cell
        }.joined()
    }
}

/// An event as a table row: when (local time), what, which backend, and the message.
struct EventRow {
    var entry: EventEntry

    init(_ entry: EventEntry) { self.entry = entry }

    static func header(wide: Bool) -> [String] {
        ["TIME", "KIND", "BACKEND"] + (wide ? ["EPOCH", "CONTROLLER"] : []) + ["MESSAGE"]
    }

    func cells(wide: Bool) -> [String] {
        let time = Self.formatter.string(from: Date(timeIntervalSince1970: entry.at.secondsSince1970))
        let subject = entry.event.replica.map { "\($0): " } ?? ""
        return [time, entry.event.kind.rawValue, entry.event.backend.isEmpty ? "-" : entry.event.backend]
            + (wide ? ["\(entry.epoch)", entry.controller] : []) + [subject + entry.event.message]
    }

    static let formatter: DateFormatter = {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss.SSS"
        return formatter
    }()
}
