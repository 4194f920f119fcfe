import Glibc

/// Starting, reaping and killing worker processes, with the raw POSIX calls (Foundation's
/// `Process` cannot start a child in a new process group, and reaps on its own).
enum WorkerProcesses {
    /// Starts `executable arguments…` in a new process group (so a kill reaches the worker and
    /// everything it started) with `environment`; returns its pid.
    static func spawn(executable: String, arguments: [String], environment: [String: String]) throws(NodeError) -> Int32 {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, nil, &attributes, argv, envp)
        guard result == 0 else {
            throw NodeError(.spawnFailed, "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// One exited child, as `waitpid` reports it.
    struct Exit: Equatable {
        var pid: Int32
        var code: Int32?
        var signal: Int32?
    }

    /// Every child that has exited since the last call (never blocks).
    static func reap() -> [Exit] {
        var exits: [Exit] = []
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            guard pid > 0 else { return exits }
            // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import.
            let signal = status & 0x7F
            exits.append(signal == 0 ? Exit(pid: pid, code: (status >> 8) & 0xFF, signal: nil) : Exit(pid: pid, code: nil, signal: signal))
        }
    }

    /// Sends `signal` to the worker's whole process group.
    static func signalGroup(_ pid: Int32, _ signal: Int32) {
        _ = kill(-pid, signal)
    }
}

/// Why a node agent could not do something, in words a user can act on.
public struct NodeError: Error, Sendable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }
        /// A flag or variable is invalid.
        public static let invalidConfiguration = Code("invalidConfiguration")
        /// A worker process could not be started.
        public static let spawnFailed = Code("spawnFailed")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
