import Foundation
public import SwerveCore
public import SwerveErrors
import Yams

/// One backend as a user writes it for `swerve apply -f`, in YAML or JSON:
///
/// ```yaml
/// tag: api
/// config:                 # BackendConfig's fields; all optional
///   numReplicas: 3
///   routePrefix: /api
///   userConfig: {greeting: hello}
/// replicaConfig:
///   builtin: echo          # or command: "python3 app.py" (or a list of arguments)
///   options: {}            # built-ins only
///   environment: {}        # commands only
///   healthPath: /healthz   # commands only
///   resources: {cpu: 0.5, memoryBytes: 268435456, custom: {gpu: 1}}
/// ```
///
/// A file holds one such mapping, a list of them, `backends:` with a list, or several YAML
/// documents of these (`---`), like `kubectl apply -f`.
///
/// Guarantees: ``parse(_:source:)`` returns every backend or throws a ``SpecError`` whose
/// message names the file, the backend and the field (with its line), including fields it does
/// not know — a typo never silently becomes a default.
public struct BackendSpec: Sendable, Hashable {
    public var tag: String
    public var config: BackendConfig
    public var replicaConfig: ReplicaConfig

    public init(tag: String, config: BackendConfig, replicaConfig: ReplicaConfig) {
        self.tag = tag
        self.config = config
        self.replicaConfig = replicaConfig
    }

    /// The request that creates it, or changes it to this.
    public var operation: Request.Operation {
        .createBackend(tag: tag, config: config, replicaConfig: replicaConfig)
    }

    /// Every backend in `text`; `source` names it in errors (a path, or "standard input").
    public static func parse(_ text: String, source: String) throws(SpecError) -> [BackendSpec] {
        var specs: [BackendSpec] = []
        do {
            var documents = try Yams.compose_all(yaml: text)
            while let document = documents.next() {
                specs += try backends(in: document, source: source)
            }
            if let error = documents.error { throw error }
        } catch let error as SpecError {
            throw error
        } catch {
            throw SpecError(.unreadable, "\(source): not valid YAML or JSON: \(firstLine(of: error))")
        }
        guard !specs.isEmpty else { throw SpecError(.invalid, "\(source): no backends in it") }
        var seen: Set<String> = []
        for spec in specs where !seen.insert(spec.tag).inserted {
            throw SpecError(.invalid, "\(source): backend \"\(spec.tag)\" appears twice")
        }
        return specs
    }

    private static func backends(in node: Node, source: String) throws -> [BackendSpec] {
        switch node {
        case .sequence(let list):
            return try list.enumerated().map { try backend(SpecField(node: $1, path: "[\($0)]", source: source)) }
        case .mapping(let mapping) where mapping.count == 1 && mapping.first?.key.string == "backends":
            guard case .sequence(let list) = mapping.first!.value else {
                throw SpecField(node: mapping.first!.value, path: "backends", source: source).error("must be a list of backends")
            }
            return try list.enumerated().map { try backend(SpecField(node: $1, path: "backends[\($0)]", source: source)) }
        default:
            return [try backend(SpecField(node: node, path: "", source: source))]
        }
    }

    private static func backend(_ field: SpecField) throws -> BackendSpec {
        let fields = try field.mapping(allowed: ["tag", "config", "replicaConfig"])
        guard let tagField = fields["tag"] else { throw field.error("missing \"tag\"") }
        let tag = try tagField.string()
        // From here on, errors name the backend rather than its position.
        let named = { (child: SpecField?) in child.map { SpecField(node: $0.node, path: "", source: "\(field.source): \(tag)").child($0.key) } }
        let config = try named(fields["config"]).map(backendConfig) ?? BackendConfig()
        guard let replicaField = named(fields["replicaConfig"]) else {
            throw SpecField(node: field.node, path: "", source: "\(field.source): \(tag)").error("missing \"replicaConfig\"")
        }
        return BackendSpec(tag: tag, config: config, replicaConfig: try replicaConfig(replicaField))
    }

    private static let configFields = ["numReplicas", "maxConcurrentQueries", "userConfig", "gracefulShutdownTimeoutS",
                                       "gracefulShutdownWaitLoopS", "routePrefix", "maxSurge", "maxUnavailable",
                                       "upstreamTimeoutS", "retryIdempotentRequests", "autoscaling"]

    private static func backendConfig(_ field: SpecField) throws -> BackendConfig {
        let fields = try field.mapping(allowed: configFields)
        // Each field is checked for its type here (naming it); BackendConfig's decoder then
        // fills in the defaults and reads the budgets ("25%" or 2).
        var object: [String: JSONValue] = [:]
        for (name, child) in fields {
            switch name {
            case "numReplicas", "maxConcurrentQueries": object[name] = .number(Double(try child.integer()))
            case "gracefulShutdownTimeoutS", "gracefulShutdownWaitLoopS", "upstreamTimeoutS": object[name] = .number(try child.number())
            case "retryIdempotentRequests": object[name] = .bool(try child.bool())
            case "routePrefix": object[name] = .string(try child.string())
            case "autoscaling": object[name] = try autoscaling(child)
            case "userConfig":
                let value = try child.json()
                let depth = JSONNesting.depth(of: value)
                guard depth <= Limits.userConfigNesting else {
                    throw child.error("must nest at most \(Limits.userConfigNesting) levels of arrays and objects, got \(depth)")
                }
                object[name] = value
            case "maxSurge", "maxUnavailable":
                if child.node.tagName == .int {
                    guard let count = child.wholeNumber else { throw child.error("must be a count such as 2 or a percentage such as \"25%\", got \(try child.scalarText())") }
                    object[name] = .number(Double(count))
                } else {
                    object[name] = .string(try child.string())
                }
            default: object[name] = try child.json()
            }
        }
        do {
            return try JSONDecoder().decode(BackendConfig.self, from: JSONEncoder().encode(JSONValue.object(object)))
        } catch let DecodingError.dataCorrupted(context) {
            let name = context.codingPath.first?.stringValue ?? ""
            throw (fields[name] ?? field).error(context.debugDescription)
        }
    }

    /// The `autoscaling` section: each field checked for its type here, naming it.
    private static func autoscaling(_ field: SpecField) throws -> JSONValue {
        var object: [String: JSONValue] = [:]
        for (name, child) in try field.mapping(allowed: AutoscalingConfig.fields) {
            switch name {
            case "minReplicas", "maxReplicas", "initialReplicas": object[name] = .number(Double(try child.integer()))
            default: object[name] = .number(try child.number())
            }
        }
        return .object(object)
    }

    private static func replicaConfig(_ field: SpecField) throws -> ReplicaConfig {
        let fields = try field.mapping(allowed: ["builtin", "options", "command", "environment", "healthPath", "resources"])
        let workload: ReplicaConfig.Workload
        switch (fields["builtin"], fields["command"]) {
        case (let builtin?, nil):
            for name in ["environment", "healthPath"] where fields[name] != nil {
                throw fields[name]!.error("applies to commands, not built-ins")
            }
            let options = try fields["options"].map { try $0.json() } ?? .object([:])
            guard case .object(let map) = options else { throw fields["options"]!.error("must be a mapping") }
            workload = .builtin(name: try builtin.string(), options: map)
        case (nil, let command?):
            if let options = fields["options"] { throw options.error("applies to built-ins, not commands") }
            let arguments: [String]
            if case .sequence = command.node {
                arguments = try command.list().map { try $0.string() }
            } else {
                arguments = try command.string().split(separator: " ").map(String.init)
            }
            var environment: [String: String] = [:]
            if let env = fields["environment"] {
                for (name, value) in try env.mapping(allowed: nil) { environment[name] = try value.scalarText() }
            }
            workload = .command(arguments: arguments, environment: environment, healthPath: try fields["healthPath"]?.string())
        case (.some, .some):
            throw fields["command"]!.error("give either builtin or command, not both")
        case (nil, nil):
            throw field.error("needs builtin (echo, sleep, fail) or command")
        }
        var resources = Resources(cpu: 1)
        if let resourcesField = fields["resources"] {
            let parts = try resourcesField.mapping(allowed: ["cpu", "memoryBytes", "custom"])
            if let cpu = parts["cpu"] { resources.cpu = try cpu.number() }
            if let memory = parts["memoryBytes"] { resources.memoryBytes = Int64(try memory.integer()) }
            if let custom = parts["custom"] {
                for (name, amount) in try custom.mapping(allowed: nil) { resources.custom[name] = try amount.number() }
            }
        }
        return ReplicaConfig(workload: workload, resources: resources)
    }

    private static func firstLine(of error: any Error) -> String {
        String(describing: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
    }
}

/// A node of a spec with where it is, for errors that say so.
private struct SpecField {
    let node: Node
    /// Dotted from the backend (or the document, before the tag is known).
    let path: String
    let source: String
    var key: String { path.split(separator: ".").last.map(String.init) ?? path }

    init(node: Node, path: String, source: String) {
        self.node = node
        self.path = path
        self.source = source
    }

    func child(_ name: String) -> SpecField {
        SpecField(node: node, path: path.isEmpty ? name : "\(path).\(name)", source: source)
    }

    func error(_ problem: String) -> SpecError {
        let field = path
        let line = node.mark.map { " (line \($0.line))" } ?? ""
        return SpecError(.invalid, "\(source): \(field.isEmpty ? "" : field + ": ")\(problem)\(line)")
    }

    /// Its entries; `allowed` nil accepts any key. Unknown and repeated keys are errors.
    func mapping(allowed: [String]?) throws -> [String: SpecField] {
        guard case .mapping(let mapping) = node else { throw error("must be a mapping, got \(describe(node))") }
        var fields: [String: SpecField] = [:]
        for (keyNode, value) in mapping {
            guard let name = keyNode.string else { throw error("keys must be text") }
            let child = SpecField(node: value, path: path.isEmpty ? name : "\(path).\(name)", source: source)
            if let allowed, !allowed.contains(name) {
                throw child.error("unknown field; known: \(allowed.joined(separator: ", "))")
            }
            guard fields[name] == nil else { throw child.error("appears twice") }
            fields[name] = child
        }
        return fields
    }

    func list() throws -> [SpecField] {
        guard case .sequence(let sequence) = node else { throw error("must be a list, got \(describe(node))") }
        return sequence.enumerated().map { SpecField(node: $1, path: "\(path)[\($0)]", source: source) }
    }

    func string() throws -> String {
        guard case .scalar = node, node.tagName == .str, let text = node.string else { throw error("must be text, got \(describe(node))") }
        return text
    }

    /// A scalar of any kind, as written (environment values: `PORT_OFFSET: 3` means "3").
    func scalarText() throws -> String {
        guard case .scalar(let scalar) = node else { throw error("must be a single value, got \(describe(node))") }
        return scalar.string
    }

    func integer() throws -> Int {
        guard node.tagName == .int, let value = wholeNumber else { throw error("must be a whole number, got \(describe(node))") }
        return value
    }

    /// The scalar as a YAML 1.1 integer (decimal, `0x`, `0o`, `0b`, or sexagesimal `1:30`),
    /// nil when it is none or does not fit an `Int`. Not Yams' `Node.int`, which traps on an
    /// overflowing sexagesimal (`184467440737095516:6` crashed `swerve apply`; found by
    /// `ops/fuzz`).
    var wholeNumber: Int? {
        guard case .scalar(let scalar) = node else { return nil }
        var text = scalar.string.replacingOccurrences(of: "_", with: "")
        var negative = false
        if let sign = text.first, sign == "-" || sign == "+" {
            negative = sign == "-"
            text.removeFirst()
        }
        var magnitude: Int?
        if text.contains(":") {
            var total = 0
            for part in text.split(separator: ":", omittingEmptySubsequences: false) {
                guard let digit = Int(part), digit >= 0 else { return nil }
                let (shifted, overflow) = total.multipliedReportingOverflow(by: 60)
                let (sum, overflowAgain) = shifted.addingReportingOverflow(digit)
                guard !overflow, !overflowAgain else { return nil }
                total = sum
            }
            magnitude = total
        } else if text.hasPrefix("0x") {
            magnitude = Int(text.dropFirst(2), radix: 16)
        } else if text.hasPrefix("0o") {
            magnitude = Int(text.dropFirst(2), radix: 8)
        } else if text.hasPrefix("0b") {
            magnitude = Int(text.dropFirst(2), radix: 2)
        } else {
            magnitude = Int(text)
        }
        guard let magnitude, magnitude >= 0 else { return nil }
        return negative ? -magnitude : magnitude
    }

    func number() throws -> Double {
        if node.tagName == .int, let value = wholeNumber { return Double(value) }
        guard node.tagName == .float, let value = node.float else { throw error("must be a number, got \(describe(node))") }
        return value
    }

    func bool() throws -> Bool {
        guard node.tagName == .bool, let value = node.bool else { throw error("must be true or false, got \(describe(node))") }
        return value
    }

    /// Any value, as JSON (user configs, built-in options).
    func json() throws -> JSONValue {
        switch node {
        case .scalar:
            switch node.tagName {
            case .null: return .null
            case .bool: return .bool(node.bool ?? false)
            case .int, .float: return .number(try number())
            default: return .string(node.string ?? "")
            }
        case .sequence:
            return .array(try list().map { try $0.json() })
        case .mapping:
            return .object(try mapping(allowed: nil).mapValues { try $0.json() })
        case .alias:
            throw error("aliases are not supported")
        }
    }

    private func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): return node.tagName == .str ? "\"\(scalar.string)\"" : scalar.string
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }
}

/// A spec that cannot be read, or that is not a valid set of backends.
public typealias SpecError = DomainError<SpecErrorDomain>

/// The codes of ``SpecError``.
public enum SpecErrorDomain {}

extension ErrorCode where Domain == SpecErrorDomain {
    /// Not YAML or JSON at all.
    public static let unreadable = Self("unreadable")
    /// Readable, but a field is missing, unknown, repeated or of the wrong type.
    public static let invalid = Self("invalid")
}

extension Node {
    /// The resolved tag's name (`Tag.name` is not public; its description is the name).
    fileprivate var tagName: Tag.Name { Tag.Name(rawValue: tag.description) }
}
