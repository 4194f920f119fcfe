import Foundation

/// What one replica runs, and what it needs.
///
/// ``version`` is a digest of the content, stable across processes and releases (it is taken
/// over a canonical JSON encoding with sorted keys): two configs with the same content have the
/// same version, and any change of content changes it. Replicas whose version differs from
/// their backend's are replaced by a rolling update.
public struct ReplicaConfig: Sendable, Hashable, Codable {
    public var workload: Workload
    public var resources: Resources

    public init(workload: Workload, resources: Resources = Resources(cpu: 1)) {
        self.workload = workload
        self.resources = resources
    }

    /// The code a replica runs.
    public enum Workload: Sendable, Hashable, Codable {
        /// A program that serves HTTP on the port in `PORT`; `healthPath`, if given, must answer 2xx.
        case command(arguments: [String], environment: [String: String] = [:], healthPath: String? = nil)
        /// A handler built into `swerve worker` (`echo`, `sleep`, `fail`), with its options.
        case builtin(name: String, options: [String: JSONValue] = [:])
    }

    /// The built-in handlers `swerve worker` provides.
    public static let builtinHandlers: Set<String> = ["echo", "sleep", "fail"]

    /// A stable digest of the content.
    public var version: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding these plain values cannot fail; a failure would be a programming error.
        guard let data = try? encoder.encode(self) else { preconditionFailure("ReplicaConfig must encode") }
        return stableDigest(data)
    }

    public func problems(prefix: String = "replicaConfig") -> [ValidationProblem] {
        var v = Validator()
        switch workload {
        case .command(let arguments, let environment, let healthPath):
            v.check(!arguments.isEmpty && !(arguments.first ?? "").isEmpty, "\(prefix).command", "must name a program to run")
            for name in environment.keys.sorted() {
                v.check(!name.isEmpty && !name.contains("="), "\(prefix).environment", "variable name \"\(name)\" must be non-empty and contain no \"=\"")
            }
            v.check(!environment.keys.contains("PORT"), "\(prefix).environment.PORT", "is set by the worker; remove it")
            if let healthPath { v.check(healthPath.hasPrefix("/"), "\(prefix).healthPath", "must start with \"/\", got \"\(healthPath)\"") }
        case .builtin(let name, _):
            v.check(Self.builtinHandlers.contains(name), "\(prefix).builtin", "unknown handler \"\(name)\"; known: \(Self.builtinHandlers.sorted().joined(separator: ", "))")
        }
        v.check(resources.cpu >= 0 && resources.cpu.isFinite, "\(prefix).resources.cpu", "must be ≥ 0, got \(resources.cpu)")
        v.check(resources.memoryBytes >= 0, "\(prefix).resources.memoryBytes", "must be ≥ 0, got \(resources.memoryBytes)")
        for (name, amount) in resources.custom.sorted(by: { $0.key < $1.key }) {
            v.check(amount >= 0 && amount.isFinite, "\(prefix).resources.custom.\(name)", "must be ≥ 0, got \(amount)")
            v.check(name != "cpu" && name != "memory" && !name.isEmpty, "\(prefix).resources.custom", "\"\(name)\" is not a valid custom resource name")
        }
        return v.problems
    }
}
