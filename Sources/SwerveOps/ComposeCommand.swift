import ArgumentParser
import Foundation
import Glibc
import SwerveSystem

/// `swerve-ops compose`: runs the docker-compose deployment for real on a container engine and
/// checks it: every service healthy, traffic through both routers, the CLI inside a container,
/// then container chaos — the leader's, a node's, a router's and the Redis master's container
/// killed, each under load through a router that stays up. Prints one summary line; exits 1 on any failure.
struct ComposeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compose", abstract: "Run docker-compose.yml on Podman or Docker, break it, and check it (exit 1 on any failure).",
        discussion: """
            The image (swerve:latest) and the base images must exist: ops/compose-test builds
            them and runs this. Routers are published on 127.0.0.1 at --router-ports. The
            project is taken down (with its volumes) at the end unless --keep.

            Example:
              swerve-ops compose --engine podman --file docker-compose.yml --router-ports 18000,18010
            """)

    @Option(help: "podman (with podman-compose) or docker (with docker compose).") var engine = "podman"
    @Option(name: .customLong("file"), help: "A compose file (repeat: later ones override earlier ones).") var files: [String] = ["docker-compose.yml"]
    @Option(help: "The compose project name.") var project = "swervect"
    @Option(help: ArgumentHelp("The host ports of router-1 and router-2 (on 127.0.0.1).", valueName: "port,port")) var routerPorts = "18000,18010"
    @Option(help: "Seconds to wait for every service to be healthy, each time.") var healthTimeout = 120
    @Option(help: "Seconds of load around each kill.") var loadSeconds = 3
    @Flag(help: "Leave the deployment running at the end.") var keep = false

    func validate() throws {
        guard ContainerEngine.Kind(rawValue: engine) != nil else { throw ValidationError("--engine: podman or docker, got \(engine)") }
        guard ports.count == 2 else { throw ValidationError("--router-ports: two ports, PORT,PORT; got \(routerPorts)") }
        guard healthTimeout > 0, loadSeconds > 0 else { throw ValidationError("--health-timeout and --load-seconds must be > 0") }
    }

    var ports: [Int] { routerPorts.split(separator: ",").compactMap { Int($0) } }

    /// The deployment's long-running services, and the one-shot one.
    static let services = ["redis-1", "redis-2", "redis-3", "sentinel-1", "sentinel-2", "sentinel-3",
                           "controller-1", "controller-2", "controller-3", "node-1", "node-2", "router-1", "router-2", "dashboard"]
    static let oneShot = "apply"

    func run() async throws {
        let containers = ContainerEngine(kind: ContainerEngine.Kind(rawValue: engine)!, project: project, files: files,
                                         environment: ["SWERVE_ROUTER_1_PORT": "\(ports[0])", "SWERVE_ROUTER_2_PORT": "\(ports[1])",
                                                       "SWERVE_DASHBOARD_PORT": "\(ports[0] + 80)", "SWERVE_PUBLISH_ADDRESS": "127.0.0.1"])
        let run = ComposeRun(containers: containers, routers: ports.map { "127.0.0.1:\($0)" },
                             healthTimeout: .seconds(healthTimeout), loadTime: .seconds(loadSeconds))
        var failed = false
        do {
            try await run.check()
        } catch {
            run.say("FAILED: \(error)")
            await run.dumpLogs()
            failed = true
        }
        if !keep {
            let down = await containers.compose(["down", "-v"])
            if !down.succeeded { run.say("compose down failed: \(down.output)") }
        }
        print(run.summary)
        if failed || !run.problems.isEmpty { throw ExitCode(1) }
    }
}

/// Why the compose check stopped.
struct ComposeFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
