/// One thing wrong with a request: the field (a dotted path such as `config.numReplicas`) and
/// what was wrong with it.
public struct ValidationProblem: Sendable, Hashable, Codable, CustomStringConvertible {
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

/// Every problem found in a request at once, so a user fixes them in one go.
public struct ValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var problems: [ValidationProblem]

    public init(_ problems: [ValidationProblem]) { self.problems = problems }

    /// "invalid request: config.numReplicas: must be ≥ 0, got -1; replicaConfig.command: …"
    public var description: String {
        "invalid request: " + problems.map(\.description).joined(separator: "; ")
    }
}

/// Collects problems while a value is checked.
struct Validator {
    private(set) var problems: [ValidationProblem] = []

    mutating func check(_ condition: Bool, _ field: String, _ message: @autoclosure () -> String) {
        if !condition { problems.append(ValidationProblem(field: field, message: message())) }
    }

    mutating func add(_ more: [ValidationProblem]) { problems += more }

    func result() -> ValidationError? { problems.isEmpty ? nil : ValidationError(problems) }
}
