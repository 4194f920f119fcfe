import Glibc
public import SwerveCore

/// Which programs a node agent lets command replicas run (`swerve node --allow-command
/// PATTERN`, repeatable): a defence that holds where Redis ACLs are not used, or where a
/// credential that may write assignments leaked.
///
/// A command replica's program is found as its worker will find it — its first argument when
/// that holds a `/`, else along the `PATH` its program will have (the replica config's own, or
/// the agent's) — and must then be an absolute path without `.` or `..` components that
/// matches one of the patterns as `fnmatch(3)` does with `FNM_PATHNAME` (`*` and `?` never
/// match a `/`: `/opt/app/*` allows `/opt/app/server`, not `/opt/app/sub/server` nor
/// `/opt/app/../../bin/sh`).
///
/// Guarantees: with no pattern every program is allowed (as before the option existed); with
/// any, a program is refused unless it matches, and the refusal says why and names the
/// patterns. Built-in workloads run no program and are always allowed. The decision is pure
/// given the lookup (`find`), which is passed in.
public struct CommandAllowList: Sendable, Hashable {
    public let patterns: [String]

    public init(patterns: [String]) {
        self.patterns = patterns
    }

    /// Why a pattern is unusable (nil when it is fine): each must be an absolute path pattern.
    public static func problem(with pattern: String) -> String? {
        guard pattern.hasPrefix("/") else { return "must be an absolute path pattern (such as /opt/app/bin/*), got \"\(pattern)\"" }
        guard !pattern.contains("\0") else { return "must not contain NUL bytes" }
        return nil
    }

    /// Nil when `workload` may run here, else why not (for the replica's exit record).
    /// - Parameters:
    ///   - agentPath: the agent's `PATH`, which workers inherit.
    ///   - find: `findExecutable(_:path:)`, or a stand-in in tests.
    public func refusal(of workload: ReplicaConfig.Workload, agentPath: String?,
                        find: (String, String) -> String?) -> String? {
        guard !patterns.isEmpty, case .command(let arguments, let environment, _) = workload else { return nil }
        guard let name = arguments.first, !name.isEmpty else { return "the command is empty" }
        let path = environment["PATH"] ?? agentPath ?? "/usr/bin:/bin"
        let allowed = "allowed here: \(patterns.joined(separator: ", ")) (swerve node --allow-command)"
        guard let program = find(name, path) else {
            return "the program \"\(name)\" is not on its PATH (\(path)); \(allowed)"
        }
        guard program.hasPrefix("/") else { return "the program \"\(program)\" is not an absolute path; \(allowed)" }
        if program.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) {
            return "the program \"\(program)\" has . or .. in its path; \(allowed)"
        }
        guard patterns.contains(where: { fnmatch($0, program, FNM_PATHNAME) == 0 }) else {
            return "the program \"\(program)\" is not allowed on this node; \(allowed)"
        }
        return nil
    }
}
