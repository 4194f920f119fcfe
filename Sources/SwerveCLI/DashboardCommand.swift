import ArgumentParser
import Foundation
import Logging
import SwerveCore
import SwerveDashboard
import SwerveProtocol

/// `swerve dashboard`: the live web page.
struct DashboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Serve a live web dashboard of the cluster: leader and elections, backends, replicas, nodes, events.",
        discussion: """
            It only reads Redis (connect it as the read-only `reader` user where ACLs are on)
            and pushes every change to open pages as it happens. It answers requests whose Host
            is an IP address or localhost; add the names it is reached by with --allowed-host
            (a page on another site cannot read it through DNS rebinding).

            Example:
              swerve dashboard --redis redis://10.0.0.2:6379 --listen 127.0.0.1:8080
              open http://127.0.0.1:8080/
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: ArgumentHelp("Where the page is served (default: SWERVE_DASHBOARD_LISTEN, else 127.0.0.1:8080; port 0 picks one).", valueName: "host:port"))
    var listen: String?

    @Option(name: .customLong("allowed-host"), help: ArgumentHelp("A name the page may be reached by besides IP addresses and localhost (repeatable; default: SWERVE_DASHBOARD_ALLOWED_HOSTS, comma-separated).", valueName: "name"))
    var allowedHosts: [String] = []

    func validate() throws {
        _ = try address()
        _ = try hosts()
    }

    func address() throws -> HostPort {
        let text = listen ?? ProcessInfo.processInfo.environment["SWERVE_DASHBOARD_LISTEN"].flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1:8080"
        return try parseHostPort(text, option: "--listen (or SWERVE_DASHBOARD_LISTEN)")
    }

    func hosts() throws -> Set<String> {
        let names = allowedHosts.isEmpty
            ? (ProcessInfo.processInfo.environment["SWERVE_DASHBOARD_ALLOWED_HOSTS"] ?? "").split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
            : allowedHosts
        for name in names where name.isEmpty || name.count > 253 || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-.".contains($0)) }) {
            throw ArgumentParser.ValidationError("--allowed-host (or SWERVE_DASHBOARD_ALLOWED_HOSTS): \"\(name.prefix(100))\" is not a host name (letters, digits, \"-\" and \".\")")
        }
        return Set(names.filter { !$0.isEmpty }.map { $0.lowercased() })
    }

    func run() async throws {
        let logger = try processLogger("swerve.dashboard")
        let configuration = Dashboard.Configuration(redis: try cluster.redisConfiguration(), keys: try cluster.keys(), listen: try address(),
                                                    allowedHosts: try hosts())
        try exitIfDryRun("dashboard", "cluster \(configuration.keys.cluster), listen \(configuration.listen)")
        try await runUntilTerminated("dashboard") { [configuration, logger] in
            try await Dashboard.run(configuration, logger: logger) { address in
                // One line on stdout, for scripts and tests: where to open it.
                FileHandle.standardOutput.write(Data("dashboard http://\(address)/\n".utf8))
            }
        }
    }
}
