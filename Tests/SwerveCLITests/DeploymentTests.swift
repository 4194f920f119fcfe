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
        let services = try #require(document["services"] as? [String: [String: Any]])
        #expect(Set(services.keys) == ["redis-1", "redis-2", "redis-3", "sentinel-1", "sentinel-2", "sentinel-3",
                                       "controller-1", "controller-2", "controller-3", "node-1", "node-2", "router-1", "router-2", "apply"])
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
        #expect(secretsOf("redis-2") == ["swerve-acl", "swerve-replication"])
        #expect(secretsOf("sentinel-3") == ["swerve-sentinel", "swerve-sentinel-users"])
        // The secrets the services read, as stand-in files (the real ones come from deploy/make-secrets).
        let secrets = (ProcessInfo.processInfo.environment["SWERVE_TEST_TMPDIR"] ?? NSTemporaryDirectory()) + "/compose-secrets-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: secrets, withIntermediateDirectories: true)
        for name in ["swerve-controller", "swerve-node", "swerve-worker", "swerve-router", "swerve-client", "swerve-discovery"] {
            try "stand-in\n".write(toFile: "\(secrets)/\(name)", atomically: true, encoding: .utf8)
        }

        let swerve = try swerveBinary()
        for (name, service) in services.sorted(by: { $0.key < $1.key }) {
            if name != "apply" {
                #expect(service["healthcheck"] != nil, "\(name) has a health check")
                #expect(service["restart"] as? String == "unless-stopped", "\(name) restarts")
            }
            if name.hasPrefix("router") {
                // Published on the host's loopback unless SWERVE_PUBLISH_ADDRESS says otherwise.
                let ports = service["ports"] as? [Any] ?? []
                #expect(!ports.isEmpty && ports.allSatisfy { "\($0)".hasPrefix("127.0.0.1:") }, "\(name) publishes on loopback only: \(ports)")
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
