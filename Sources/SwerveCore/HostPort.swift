/// A TCP endpoint: a host (a name, an IPv4 address, or an IPv6 address without brackets) and a
/// port. Written `host:port`, or `[v6]:port` when the host is an IPv6 address.
///
/// Guarantees: a value always has a non-empty host without whitespace, brackets, `/` or `@`, and
/// a port in 0...65535; its text form parses back to the same value. Parsed once, where the
/// text enters (a flag, a ready record), and carried typed from there.
public struct HostPort: Sendable, Hashable, Codable, LosslessStringConvertible {
    public let host: String
    public let port: UInt16

    /// - Precondition: `host` is valid (see ``problem(host:)``); use ``init(_:)`` for text.
    public init(host: String, port: UInt16) {
        precondition(Self.problem(host: host) == nil, "invalid host \"\(host)\"")
        self.host = host
        self.port = port
    }

    /// Parses `host:port` or `[v6]:port`; nil when ``problem(in:)`` finds one.
    public init?(_ text: String) {
        guard case .success(let value) = Self.parse(text) else { return nil }
        self = value
    }

    /// What is wrong with `text` as a `host:port`, for an error message; nil when it parses.
    public static func problem(in text: String) -> String? {
        if case .failure(let problem) = parse(text) { return problem.message }
        return nil
    }

    /// What is wrong with `host` as the host part; nil when it can be used.
    public static func problem(host: String) -> String? {
        if host.isEmpty { return "the host is empty" }
        if host.count > 253 { return "the host is longer than 253 characters" }
        if let bad = host.unicodeScalars.first(where: { $0.properties.isWhitespace || $0.value < 0x20 || "[]/@\\".unicodeScalars.contains($0) }) {
            return "the host \"\(host)\" contains \"\(bad.escaped(asASCII: true))\""
        }
        return nil
    }

    /// `host:port`, with the host in brackets when it is an IPv6 address.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    private struct Problem: Error { var message: String }

    private static func parse(_ text: String) -> Result<HostPort, Problem> {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure(Problem(message: "\"\(text)\" opens a bracket it does not close")) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return .failure(Problem(message: "\"\(text)\" has no \":PORT\" after the bracketed host")) }
            portText = rest.dropFirst()
            guard host.contains(":") else { return .failure(Problem(message: "\"\(text)\": only an IPv6 address goes in brackets")) }
        } else {
            guard let colon = text.lastIndex(of: ":") else { return .failure(Problem(message: "expected HOST:PORT, e.g. 127.0.0.1:8000, got \"\(text)\"")) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return .failure(Problem(message: "\"\(text)\": an IPv6 host goes in brackets, e.g. [::1]:8000")) }
        }
        if let problem = Self.problem(host: String(host)) { return .failure(Problem(message: "\"\(text)\": \(problem)")) }
        guard !portText.isEmpty, portText.allSatisfy(\.isASCII), let port = UInt16(portText) else {
            return .failure(Problem(message: "\"\(text)\": the port must be a number from 0 to 65535, got \"\(portText)\""))
        }
        return .success(HostPort(host: String(host), port: port))
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        switch Self.parse(text) {
        case .success(let value): self = value
        case .failure(let problem): throw DecodingError.dataCorruptedError(in: container, debugDescription: problem.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
