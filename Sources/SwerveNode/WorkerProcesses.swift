import Glibc
public import SwerveErrors
import SwerveSystem

/// Starting, reaping and killing worker processes, with the raw POSIX calls (Foundation's
/// `Process` cannot start a child in a new process group, and reaps on its own).
enum WorkerProcesses {
    /// Starts `executable arguments…` in a new process group (so a kill reaches the worker and
    /// everything it started) with `environment`; returns its pid.
    static func spawn(executable: String, arguments: [String], environment: [String: String]) throws(NodeError) -> Int32 {
        switch spawnProcess(executable: executable, arguments: arguments, environment: environment, newProcessGroup: true) {
        case .success(let pid): return pid
        case .failure(let error): throw NodeError(.spawnFailed, error.message)
        }
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
            let decoded = ExitStatus(waitStatus: status)
            exits.append(Exit(pid: pid, code: decoded.code, signal: decoded.signal))
        }
    }

    /// Sends `signal` to the worker's whole process group.
    static func signalGroup(_ pid: Int32, _ signal: Int32) {
        _ = kill(-pid, signal)
    }
}

/// Why a node agent could not do something, in words a user can act on.
public typealias NodeError = DomainError<NodeErrorDomain>

/// The codes of ``NodeError``.
public enum NodeErrorDomain {}

extension ErrorCode where Domain == NodeErrorDomain {
    /// A flag or variable is invalid.
    public static let invalidConfiguration = Self("invalidConfiguration")
    /// A worker process could not be started.
    public static let spawnFailed = Self("spawnFailed")
}
