import Foundation
import Glibc
import SwerveSystem

/// The container engine a compose deployment runs on, driven through its command-line tools:
/// Podman (`podman` with `podman-compose`) or Docker (`docker` with `docker compose`).
///
/// Every call runs the tool to its end on a thread of its own (never on Swift's cooperative
/// pool) and returns its exit status and output; nothing here interprets the deployment.
struct ContainerEngine: Sendable {
    enum Kind: String, Sendable { case podman, docker }

    let kind: Kind
    /// The compose project: containers are named `PROJECT_SERVICE_1` (Podman) or
    /// `PROJECT-SERVICE-1` (Docker).
    let project: String
    /// The compose files, in order (later ones override earlier ones).
    let files: [String]
    /// Extra environment for the compose tool (the file's `${…}` settings).
    let environment: [String: String]

    /// The container of `service`'s first replica.
    func container(_ service: String) -> String {
        kind == .podman ? "\(project)_\(service)_1" : "\(project)-\(service)-1"
    }

    /// Runs the compose tool: `podman-compose -p P -f F… ARGS` or `docker compose -p P -f F… ARGS`.
    func compose(_ arguments: [String]) async -> CommandResult {
        let common = ["-p", project] + files.flatMap { ["-f", $0] }
        switch kind {
        case .podman: return await run("podman-compose", common + arguments)
        case .docker: return await run("docker", ["compose"] + common + arguments)
        }
    }

    /// Runs the engine itself: `podman ARGS` or `docker ARGS`.
    func engine(_ arguments: [String]) async -> CommandResult {
        await run(kind.rawValue, arguments)
    }

    /// Runs `command` inside `service`'s container.
    func exec(_ service: String, _ command: [String]) async -> CommandResult {
        await engine(["exec", container(service)] + command)
    }

    /// Whether `service`'s container passes its health check now. Podman runs the check
    /// (`podman healthcheck run`: no systemd timer runs it here); Docker reports its own.
    func isHealthy(_ service: String) async -> Bool {
        switch kind {
        case .podman:
            return await engine(["healthcheck", "run", container(service)]).status == 0
        case .docker:
            return await engine(["inspect", "--format", "{{.State.Health.Status}}", container(service)]).output
                .trimmingCharacters(in: .whitespacesAndNewlines) == "healthy"
        }
    }

    /// The container's state (`running`, `exited`, …) and exit code, or nil when it does not exist.
    func state(_ service: String) async -> (status: String, exitCode: Int)? {
        let result = await engine(["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", container(service)])
        let words = result.output.split(whereSeparator: \.isWhitespace)
        guard result.status == 0, words.count == 2, let code = Int(words[1]) else { return nil }
        return (String(words[0]), code)
    }

    /// Runs `tool` to its end, its output collected in a file. Not Foundation's `Process`: it
    /// learns of an exit when a socket it hands the child closes, and `podman start` leaves
    /// conmon — a daemon for the container's life — holding that socket (and any output
    /// pipe), so the wait never ended. `waitpid` sees the exit itself.
    private func run(_ tool: String, _ arguments: [String]) async -> CommandResult {
        let environment = ProcessInfo.processInfo.environment.merging(self.environment) { $1 }
        return await withCheckedContinuation { continuation in
            Thread {
                guard let executable = findExecutable(tool, path: environment["PATH"] ?? "/usr/bin:/bin") else {
                    continuation.resume(returning: CommandResult(status: -1, output: "\(tool) is not on the PATH"))
                    return
                }
                let path = NSTemporaryDirectory() + "/swerve-engine-\(UUID().uuidString)"
                defer { try? FileManager.default.removeItem(atPath: path) }
                switch spawnProcess(executable: executable, arguments: arguments, environment: environment, newProcessGroup: false, outputPath: path) {
                case .failure(let error):
                    continuation.resume(returning: CommandResult(status: -1, output: "cannot run \(tool): \(error.message)"))
                case .success(let pid):
                    var status: Int32 = 0
                    while waitpid(pid, &status, 0) == -1, errno == EINTR {}
                    // Exited: its code; killed by a signal: 128 + the signal, as a shell says.
                    let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                    let data = FileManager.default.contents(atPath: path) ?? Data()
                    continuation.resume(returning: CommandResult(status: code, output: String(decoding: data, as: UTF8.self)))
                }
            }.start()
        }
    }
}

/// How a command ended: its exit status and what it wrote (standard output and error).
struct CommandResult: Sendable {
    var status: Int32
    var output: String
    var succeeded: Bool { status == 0 }
}
