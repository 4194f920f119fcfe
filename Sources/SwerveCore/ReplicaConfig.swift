import FoundationEssentials

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
            v.check(arguments.count <= Limits.commandArguments, "\(prefix).command",
                    "must have at most \(Limits.commandArguments) arguments, got \(arguments.count)")
            v.check(environment.count <= Limits.environmentVariables, "\(prefix).environment",
                    "must have at most \(Limits.environmentVariables) variables, got \(environment.count)")
            let bytes = arguments.reduce(0) { $0.addingSaturated($1.utf8.count + 1) }
                .addingSaturated(environment.reduce(0) { $0.addingSaturated($1.key.utf8.count + $1.value.utf8.count + 2) })
            v.check(bytes <= Limits.commandBytes, "\(prefix).command",
                    "arguments and environment must take at most \(Limits.commandBytes) bytes, got \(bytes)")
            v.check(!arguments.contains { $0.utf8.contains(0) }, "\(prefix).command", "must not contain NUL bytes")
            if environment.count <= Limits.environmentVariables {
                for name in environment.keys.sorted() {
                    v.check(!name.isEmpty && !name.contains("=") && !name.utf8.contains(0), "\(prefix).environment",
                            "variable name \"\(name.prefix(64))\" must be non-empty and contain no \"=\" or NUL")
                }
                v.check(!environment.values.contains { $0.utf8.contains(0) }, "\(prefix).environment", "values must not contain NUL bytes")
            }
            v.check(!environment.keys.contains("PORT"), "\(prefix).environment.PORT", "is set by the worker; remove it")
            if let healthPath {
                v.check(healthPath.hasPrefix("/"), "\(prefix).healthPath", "must start with \"/\", got \"\(healthPath.prefix(Limits.healthPathLength))\"")
                v.check(length: healthPath, atMost: Limits.healthPathLength, "\(prefix).healthPath")
                v.check(!healthPath.contains { $0.isWhitespace || ($0.asciiValue.map { $0 < 0x20 || $0 == 0x7F } ?? false) },
                        "\(prefix).healthPath", "must not contain spaces or control characters")
            }
        case .builtin(let name, let options):
            v.check(Self.builtinHandlers.contains(name), "\(prefix).builtin",
                    "unknown handler \"\(name.prefix(64))\"; known: \(Self.builtinHandlers.sorted().joined(separator: ", "))")
            v.check(encodedSize: options, atMost: Limits.builtinOptionsBytes, "\(prefix).options")
        }
        v.check(finite: resources.cpu, in: Limits.cpu, "\(prefix).resources.cpu")
        v.check(resources.memoryBytes, in: Limits.memoryBytes, "\(prefix).resources.memoryBytes")
        v.check(resources.custom.count <= Limits.customResources, "\(prefix).resources.custom",
                "must name at most \(Limits.customResources) resources, got \(resources.custom.count)")
        if resources.custom.count <= Limits.customResources {
            for (name, amount) in resources.custom.sorted(by: { $0.key < $1.key }) {
                v.check(name != "cpu" && name != "memory" && !name.isEmpty && name.count <= Limits.customResourceNameLength,
                        "\(prefix).resources.custom",
                        "\"\(name.prefix(Limits.customResourceNameLength))\" is not a valid custom resource name (1 to \(Limits.customResourceNameLength) characters, not cpu or memory)")
                v.check(finite: amount, in: Limits.customAmount, "\(prefix).resources.custom.\(name.prefix(Limits.customResourceNameLength))")
            }
        }
        return v.problems
    }
}
