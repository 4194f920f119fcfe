import Dispatch
import FoundationEssentials
import Glibc
import SwerveCore
import SwerveErrors
import SwerveSystem
import Synchronization

/// A replica's code given as a command: a program that serves HTTP on the port in `PORT`.
///
/// It runs in the worker's process group, so the node agent's kill reaches it too. Readiness
/// and health are probed from outside: a TCP connection (or, with a health path, a `GET` that
/// answers 2xx). User config updates are written to the file named by `SWERVE_USER_CONFIG_FILE`
/// and announced with SIGHUP. Stopping it is SIGTERM, then waiting for it to exit.
final class CommandCode: Sendable {
    let pid: Int32
    let host: String
    let port: Int
    let healthPath: String?
    let userConfigFile: String
    private let waitStatus = Mutex<Int32?>(nil)

    private init(pid: Int32, host: String, port: Int, healthPath: String?, userConfigFile: String) {
        self.pid = pid
        self.host = host
        self.port = port
        self.healthPath = healthPath
        self.userConfigFile = userConfigFile
    }

    static func start(arguments: [String], environment: [String: String], healthPath: String?, host: String, tag: String, userConfig: JSONValue?) throws -> CommandCode {
        let port = try freePort(host: host)
        let configFile = FileManager.default.temporaryDirectory.appending(path: "swerve-user-config-\(getpid()).json").path
        try writeUserConfig(userConfig, to: configFile)
        var env = programEnvironment(worker: ProcessInfo.processInfo.environment, replica: environment)
        env["PORT"] = "\(port)"
        env["SWERVE_USER_CONFIG_FILE"] = configFile
        env["SWERVE_REPLICA_TAG"] = tag
        let program = try which(arguments[0], path: env["PATH"] ?? "/usr/bin:/bin")
        // In the worker's process group (the node agent's kill reaches both), signals reset.
        let pid: Int32
        switch spawnProcess(executable: program, arguments: Array(arguments.dropFirst()), environment: env, newProcessGroup: false) {
        case .success(let started): pid = started
        case .failure(let error): throw WorkerError(.startFailed, "swerve worker: \(error.message)")
        }
        return CommandCode(pid: pid, host: host, port: port, healthPath: healthPath, userConfigFile: configFile)
    }

    /// The environment a replica's program starts with: the worker's own without any
    /// `SWERVE_` variable — the launch contract and every Redis credential (`SWERVE_REDIS_URL`
    /// may hold a password, `SWERVE_REDIS_PASSWORD[_FILE]`, the user): the program is the
    /// replica's code, which the worker does not trust with the cluster's store — then the
    /// replica config's `environment` (the backend owner's choice, so it may name anything).
    /// The worker adds `PORT`, `SWERVE_USER_CONFIG_FILE` and `SWERVE_REPLICA_TAG` after this.
    static func programEnvironment(worker: [String: String], replica: [String: String]) -> [String: String] {
        worker.filter { !$0.key.hasPrefix("SWERVE_") }.merging(replica) { $1 }
    }

    /// The exit status once the program has exited ("exit code N" / "signal N"), else nil.
    func exited() -> String? {
        waitStatus.withLock { status in
            if status == nil {
                var raw: Int32 = 0
                if waitpid(pid, &raw, WNOHANG) == pid { status = raw }
            }
            return status.map { ExitStatus(waitStatus: $0).description }
        }
    }

    /// Whether the program answers now (run on a Dispatch thread, off the cooperative pool: it
    /// blocks up to `timeout`).
    func probe(timeout: Duration = .seconds(1)) async -> Bool {
        let (host, port, path) = (host, port, healthPath)
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: Self.blockingProbe(host: host, port: port, healthPath: path, timeout: timeout)) }
        }
    }

    func updateUserConfig(_ userConfig: JSONValue?) throws {
        try Self.writeUserConfig(userConfig, to: userConfigFile)
        kill(pid, SIGHUP)
    }

    func terminate() { kill(pid, SIGTERM) }

    func cleanUp() { unlink(userConfigFile) }

    // MARK: Helpers

    private static func writeUserConfig(_ userConfig: JSONValue?, to path: String) throws {
        let data = try JSONEncoder().encode(userConfig ?? .null)
        let temporary = path + ".tmp"
        try data.write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, path) == 0 else { throw WorkerError(.startFailed, "cannot write the user config file \(path)") }
    }

    private static func which(_ name: String, path: String) throws -> String {
        guard let found = findExecutable(name, path: path) else {
            throw WorkerError(.startFailed, "swerve worker: no program \"\(name)\" on PATH (\(path))")
        }
        return found
    }

    private static func freePort(host: String) throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr(host)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
        guard bound == 0, named == 0 else { throw WorkerError(.startFailed, "swerve worker: cannot find a free port on \(host)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private static func blockingProbe(host: String, port: Int, healthPath: String?, timeout: Duration) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var limit = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr(host)
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { return false }
        guard let healthPath else { return true }
        let request = Array("GET \(healthPath) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else { return false }
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        // "HTTP/1.1 2xx"
        return count >= 10 && buffer[9] == UInt8(ascii: "2")
    }
}
