import Foundation
import SwerveTestSupport
import Testing
import Yams

/// docker-compose.yml, as docker-compose resolves it: valid, every service healthy-checked and
/// restarted, and every Swerve service's command and environment accepted by the `swerve`
/// binary (run with `SWERVE_DRY_RUN=1`: it reads and checks its configuration, then exits).
@Suite struct Deployment {
    let root = #filePath.components(separatedBy: "/Tests/")[0]

    @Test func theComposeFileIsValidAndEveryServiceStartsWithItsConfiguration() throws {
        let compose = "/usr/bin/docker-compose"
        try #require(FileManager.default.isExecutableFile(atPath: compose), "docker-compose is missing: ops/setup installs it")
        let resolved = try runProcess(compose, ["-f", "docker-compose.yml", "config"], directory: root)
        try #require(resolved.status == 0, "docker-compose config: \(resolved.output)")
        let document = try #require(try Yams.load(yaml: resolved.output) as? [String: Any])
        let all = try #require(document["services"] as? [String: [String: Any]])
        // The monitoring profile's services start only with --profile monitoring (checked below).
        let services = all.filter { $0.value["profiles"] == nil }
        #expect(Set(services.keys) == ["redis-1", "redis-2", "redis-3", "sentinel-1", "sentinel-2", "sentinel-3",
                                       "controller-1", "controller-2", "controller-3", "node-1", "node-2", "router-1", "router-2",
                                       "dashboard", "apply"])
        // Secrets are files, never values in the file; each service gets only its role's.
        let text = try String(contentsOfFile: "\(root)/docker-compose.yml", encoding: .utf8)
        #expect(!text.contains("SWERVE_REDIS_PASSWORD:") && !text.contains("masterauth") && !text.contains("requirepass"))
        let secretsOf = { (name: String) -> Set<String> in
            Set(((services[name]?["secrets"] as? [Any]) ?? []).compactMap { ($0 as? [String: Any])?["source"] as? String ?? $0 as? String })
        }
        #expect(secretsOf("controller-1") == ["swerve-controller", "swerve-discovery"])
        #expect(secretsOf("node-1") == ["swerve-node", "swerve-worker", "swerve-discovery"])
        #expect(secretsOf("router-1") == ["swerve-router", "swerve-discovery"])
        #expect(secretsOf("apply") == ["swerve-client", "swerve-discovery"])
        #expect(secretsOf("dashboard") == ["swerve-reader", "swerve-discovery"], "the dashboard only reads")
        #expect(secretsOf("redis-2") == ["swerve-acl", "swerve-replication"])
        #expect(secretsOf("sentinel-3") == ["swerve-sentinel", "swerve-sentinel-users"])
        // The secrets the services read, as stand-in files (the real ones come from deploy/make-secrets).
        let secrets = (ProcessInfo.processInfo.environment["SWERVE_TEST_TMPDIR"] ?? NSTemporaryDirectory()) + "/compose-secrets-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: secrets, withIntermediateDirectories: true)
        for name in ["swerve-controller", "swerve-node", "swerve-worker", "swerve-router", "swerve-client", "swerve-reader", "swerve-discovery"] {
            try "stand-in\n".write(toFile: "\(secrets)/\(name)", atomically: true, encoding: .utf8)
        }

        let swerve = try swerveBinary()
        for (name, service) in services.sorted(by: { $0.key < $1.key }) {
            if name != "apply" {
                #expect(service["healthcheck"] != nil, "\(name) has a health check")
                #expect(service["restart"] as? String == "unless-stopped", "\(name) restarts")
            }
            if let ports = service["ports"] as? [Any] {
                // Published on the host's loopback unless SWERVE_PUBLISH_ADDRESS says otherwise.
                #expect(!ports.isEmpty && ports.allSatisfy { "\($0)".hasPrefix("127.0.0.1:") }, "\(name) publishes on loopback only: \(ports)")
            }
            if name.hasPrefix("router") {
                #expect(service["ports"] != nil, "\(name) is published")
                // A router drains for up to 30 s, a node agent's workers for its --shutdown-timeout (30 s).
                #expect(seconds(service["stop_grace_period"]) > 30, "\(name) may drain before it is killed")
            }
            if name.hasPrefix("node") {
                #expect(seconds(service["stop_grace_period"]) > 30, "\(name)'s workers may drain before it is killed")
            }
            guard (service["image"] as? String)?.hasPrefix("swerve") == true else { continue }
            let command = try #require(service["command"] as? [String], "\(name) has a command")
            // The image's /etc/swerve/examples is this repository's examples/.
            let arguments = command.map { $0.replacingOccurrences(of: "/etc/swerve/examples", with: "\(root)/examples") }
            var environment = (service["environment"] as? [String: Any] ?? [:]).mapValues { "\($0)".replacingOccurrences(of: "/run/secrets", with: secrets) }
            #expect(environment["SWERVE_REDIS_USER"] != nil && environment["SWERVE_SENTINEL_USER"] == "swerve-discovery", "\(name) connects as a role")
            environment["SWERVE_DRY_RUN"] = "1"
            environment["PATH"] = ProcessInfo.processInfo.environment["PATH"]
            let checked = try runProcess(swerve, arguments, environment: environment)
            #expect(checked.status == 0 && checked.output.contains("configuration ok"), "\(name): swerve \(arguments.joined(separator: " ")): \(checked.output)")
            if let test = (service["healthcheck"] as? [String: Any])?["test"] as? [String], test.count > 2, test[1] == "swerve" {
                #expect(try runProcess(swerve, Array(test.dropFirst(2)) + ["--help"]).status == 0, "\(name)'s health check is a swerve command")
            }
        }
    }

    /// `--profile monitoring`: Prometheus scrapes every Swerve service that serves metrics, at
    /// the port it serves them on; Grafana is provisioned with it and with a dashboard whose
    /// every query names metrics Swerve exports.
    @Test func theMonitoringProfileScrapesEveryServiceAndItsDashboardNamesRealMetrics() throws {
        let compose = "/usr/bin/docker-compose"
        try #require(FileManager.default.isExecutableFile(atPath: compose), "docker-compose is missing: ops/setup installs it")
        let resolved = try runProcess(compose, ["-f", "docker-compose.yml", "--profile", "monitoring", "config"], directory: root)
        try #require(resolved.status == 0, "docker-compose --profile monitoring config: \(resolved.output)")
        let document = try #require(try Yams.load(yaml: resolved.output) as? [String: Any])
        let services = try #require(document["services"] as? [String: [String: Any]])
        for name in ["prometheus", "grafana"] {
            let service = try #require(services[name], "\(name) is in the profile")
            #expect(service["profiles"] as? [String] == ["monitoring"] && service["healthcheck"] != nil)
            #expect((service["ports"] as? [Any] ?? []).allSatisfy { "\($0)".hasPrefix("127.0.0.1:") }, "\(name) publishes on loopback only")
        }
        let mounts = (services["grafana"]?["volumes"] as? [Any] ?? []).map { "\($0)" }
        #expect(mounts.contains { $0.contains("ops/grafana/provisioning") } && mounts.contains { $0.contains("ops/grafana/dashboards") })

        // What each service serves metrics on, from its environment: Prometheus must scrape it there.
        var expected: Set<String> = []
        for (name, service) in services {
            let environment = service["environment"] as? [String: Any] ?? [:]
            for variable in ["SWERVE_METRICS_ADDRESS", "SWERVE_ROUTER_ADMIN"] {
                if let address = environment[variable] as? String, let port = address.split(separator: ":").last { expected.insert("\(name):\(port)") }
            }
        }
        #expect(expected.count == 7, "3 controllers, 2 nodes, 2 routers: \(expected.sorted())")
        let prometheus = try #require(try Yams.load(yaml: String(contentsOfFile: "\(root)/ops/prometheus.yml", encoding: .utf8)) as? [String: Any])
        let jobs = prometheus["scrape_configs"] as? [[String: Any]] ?? []
        let targets = Set(jobs.flatMap { ($0["static_configs"] as? [[String: Any]] ?? []).flatMap { $0["targets"] as? [String] ?? [] } })
        #expect(targets == expected, "scraped: \(targets.sorted()); serving metrics: \(expected.sorted())")

        // Every metric the dashboard queries is one Swerve's sources name (histograms by their series).
        let dashboard = try String(contentsOfFile: "\(root)/ops/grafana/dashboards/swerve.json", encoding: .utf8)
        #expect(try JSONSerialization.jsonObject(with: Data(dashboard.utf8)) is [String: Any], "the dashboard is JSON")
        let exported = try metricNames(inSources: "\(root)/Sources")
        let queried = Set(dashboard.matches(of: /swerve_[a-z_]+/).map { String($0.output) })
        #expect(queried.count > 15, "\(queried.sorted())")
        for name in queried.sorted() {
            let base = ["_bucket", "_count", "_sum"].reduce(name) { $0.hasSuffix($1) ? String($0.dropLast($1.count)) : $0 }
            #expect(exported.contains(base), "the dashboard queries \(name), which no source file names")
        }
    }

    /// Every `"swerve_…"` string literal in the Swift sources under `directory`.
    func metricNames(inSources directory: String) throws -> Set<String> {
        var names: Set<String> = []
        let enumerator = FileManager.default.enumerator(atPath: directory)
        while let path = enumerator?.nextObject() as? String {
            guard path.hasSuffix(".swift") else { continue }
            let text = try String(contentsOfFile: "\(directory)/\(path)", encoding: .utf8)
            for match in text.matches(of: /"(swerve_[a-z_]+)"/) { names.insert(String(match.output.1)) }
        }
        return names
    }

    /// `35s` → 35; anything else → 0.
    func seconds(_ value: Any?) -> Int {
        guard let text = value as? String, text.hasSuffix("s") else { return 0 }
        return Int(text.dropLast()) ?? 0
    }

    @Test func theDockerfileBuildsWithSwiftAndRunsOnSlimDebian() throws {
        let stages = try String(contentsOfFile: "\(root)/Dockerfile", encoding: .utf8)
            .split(separator: "\n").filter { $0.hasPrefix("FROM ") }
        #expect(stages.count == 2)
        #expect(stages.first?.contains("swift:") == true && stages.last?.contains("debian:bookworm-slim") == true)
    }
}
