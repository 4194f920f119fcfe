import Glibc

/// Starts `executable` (a path, or a name looked up on `PATH`) with `arguments` and exactly
/// `environment`, and returns its pid.
///
/// The child starts clean: no signal blocked and every signal at its default action. (A
/// Swift process blocks signals on its runtime's threads and ignores some it handles through
/// Dispatch — SIGTERM, SIGPIPE — and a child inherits both across `exec`: a program started
/// naively would never see SIGTERM or SIGHUP.) With `newProcessGroup` it leads a process group
/// of its own, so one `kill(-pid, …)` reaches it and everything it starts.
///
/// With `outputPath`, its standard output and error are appended to that file (created if
/// missing) and its standard input is `/dev/null`; without, it shares this process's.
///
/// - Returns: the pid, or the `errno` text when it could not be started.
public func spawnProcess(executable: String, arguments: [String], environment: [String: String], newProcessGroup: Bool,
                         outputPath: String? = nil) -> Result<Int32, SpawnError> {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if let outputPath {
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
    }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
    if newProcessGroup {
        flags |= Int32(POSIX_SPAWN_SETPGROUP)
        posix_spawnattr_setpgroup(&attributes, 0)
    }
    posix_spawnattr_setflags(&attributes, Int16(flags))
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigdefault(&attributes, &all)

    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        for pointer in argv { free(pointer) }
        for pointer in envp { free(pointer) }
    }
    var pid: pid_t = 0
    // A bare name ("python3") is looked up on PATH, as a shell would.
    let result = executable.contains("/")
        ? posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        : posix_spawnp(&pid, executable, &actions, &attributes, argv, envp)
    guard result == 0 else { return .failure(SpawnError(message: "cannot start \(executable): \(String(cString: strerror(result)))")) }
    return .success(pid)
}

/// Why a process could not be started.
public struct SpawnError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// How a reaped child ended, decoded from `waitpid`'s status (Swift does not import the
/// `WIFEXITED` family of macros).
public struct ExitStatus: Sendable, Hashable, CustomStringConvertible {
    public var code: Int32?
    public var signal: Int32?

    public init(waitStatus: Int32) {
        let signal = waitStatus & 0x7F
        if signal == 0 {
            code = (waitStatus >> 8) & 0xFF
            self.signal = nil
        } else {
            code = nil
            self.signal = signal
        }
    }

    /// "exit code 3" or "signal 9".
    public var description: String { signal.map { "signal \($0)" } ?? "exit code \(code ?? -1)" }
}

/// The program `name` names, as `execvp` would find it: `name` itself when it holds a `/`,
/// else the first executable `DIRECTORY/name` along `path` (a `PATH` value); nil when none is.
/// The worker runs a command replica's program with it, and the node agent checks the same path
/// against its `--allow-command` patterns.
public func findExecutable(_ name: String, path: String) -> String? {
    if name.contains("/") { return name }
    for directory in path.split(separator: ":") where access("\(directory)/\(name)", X_OK) == 0 {
        return "\(directory)/\(name)"
    }
    return nil
}
