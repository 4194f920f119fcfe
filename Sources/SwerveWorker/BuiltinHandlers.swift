public import SwerveCore

/// The built-in replica code `swerve worker` serves itself, for demos, tests and benchmarks.
///
/// - `echo`: answers the request body (or, for an empty body, the replica tag and a newline);
/// - `sleep`: waits `ms` milliseconds (query `?ms=N`, else the option `ms`, else 100), then answers;
/// - `fail`: answers 500 with probability `probability` (query `?p=0.3`, else the option, else
///   0.5), else 200.
///
/// Every response carries `X-Swerve-Replica: TAG`. `GET /-/user-config` answers the user config
/// the replica was last given, as JSON.
public enum BuiltinHandler: String, Sendable, CaseIterable {
    case echo, sleep, fail

    /// What to answer: the status, the body, and how long to wait first.
    public struct Response: Sendable, Equatable {
        public var status: Int
        public var body: [UInt8]
        public var delayMs: Int
    }

    /// Decides the response (pure; `random` in 0..<1 decides `fail`).
    public func respond(path: String, query: [String: String], body: [UInt8], tag: String, options: [String: JSONValue], random: Double) -> Response {
        switch self {
        case .echo:
            return Response(status: 200, body: body.isEmpty ? Array("\(tag)\n".utf8) : body, delayMs: 0)
        case .sleep:
            let ms = query["ms"].flatMap(Int.init) ?? options["ms"].flatMap(Self.number).map(Int.init) ?? 100
            return Response(status: 200, body: Array("slept \(ms) ms on \(tag)\n".utf8), delayMs: max(0, ms))
        case .fail:
            let probability = query["p"].flatMap(Double.init) ?? options["probability"].flatMap(Self.number) ?? 0.5
            return random < probability
                ? Response(status: 500, body: Array("\(tag) failed on purpose (probability \(probability))\n".utf8), delayMs: 0)
                : Response(status: 200, body: Array("\(tag) ok\n".utf8), delayMs: 0)
        }
    }

    private static func number(_ value: JSONValue) -> Double? {
        if case .number(let number) = value { return number }
        return nil
    }

    /// Splits `/path?a=1&b=2`.
    public static func split(_ uri: String) -> (path: String, query: [String: String]) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, [:]) }
        var query: [String: String] = [:]
        for pair in uri[uri.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            query[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return (String(uri[..<mark]), query)
    }
}
