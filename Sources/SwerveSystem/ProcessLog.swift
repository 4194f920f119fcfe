import Glibc
public import Logging
public import SwerveErrors
import SwerveCore
import Synchronization

/// How every long-running `swerve` process logs, to stderr: `SWERVE_LOG_LEVEL` (`trace` …
/// `critical`, default `info`) and `SWERVE_LOG_FORMAT` — `text` (the default, for people) or
/// `json` (one object per line, for log shippers: ``JSONLogHandler``).
public enum ProcessLog {
    public enum Format: String, Sendable, CaseIterable {
        case text, json
    }

    /// The process's logger named `label` (`swerve.controller`, …).
    /// - Throws: ``ProcessLogError`` naming the variable whose value is not one it knows.
    public static func logger(_ label: String, environment: [String: String]) throws(ProcessLogError) -> Logger {
        let format = try self.format(environment)
        let level = try self.level(environment)
        var logger = Logger(label: label) { label in
            switch format {
            case .text: StreamLogHandler.standardError(label: label)
            case .json: JSONLogHandler(label: label)
            }
        }
        logger.logLevel = level
        return logger
    }

    static func format(_ environment: [String: String]) throws(ProcessLogError) -> Format {
        guard let text = environment["SWERVE_LOG_FORMAT"], !text.isEmpty else { return .text }
        guard let format = Format(rawValue: text.lowercased()) else {
            throw ProcessLogError(.invalid, "SWERVE_LOG_FORMAT: must be text or json, got \"\(text.prefix(40))\"")
        }
        return format
    }

    static func level(_ environment: [String: String]) throws(ProcessLogError) -> Logger.Level {
        guard let text = environment["SWERVE_LOG_LEVEL"], !text.isEmpty else { return .info }
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            let levels = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw ProcessLogError(.invalid, "SWERVE_LOG_LEVEL: must be one of \(levels), got \"\(text.prefix(40))\"")
        }
        return level
    }
}

/// Why the process's logging cannot be set up.
public typealias ProcessLogError = DomainError<ProcessLogErrorDomain>

/// The codes of ``ProcessLogError``.
public enum ProcessLogErrorDomain {}

extension ErrorCode where Domain == ProcessLogErrorDomain {
    /// A logging variable has a value it does not know.
    public static let invalid = Self("invalid")
}

/// One JSON object per line on stderr: `time` (UTC, RFC 3339 with milliseconds), `level`,
/// `component` (the logger's label), `message`, and `metadata` (the logger's and the
/// message's, nested values as JSON objects and arrays) when there is any.
///
/// Guarantees: each record is one line (newlines and control characters in any string are
/// escaped), written with one `write` call, so lines from several threads never interleave.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    let label: String

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let own = event.metadata { merged.merge(own) { $1 } }
        let line = Self.line(time: wallClockMilliseconds(), level: event.level, component: label, message: "\(event.message)", metadata: merged)
        Self.output.withLock { _ in
            line.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                    if written < 0, errno == EINTR { continue }
                    guard written > 0 else { return }
                    offset += written
                }
            }
        }
    }

    /// Serialises writes (a line longer than a pipe's atomic size could otherwise interleave).
    private static let output = Mutex(())

    /// The line for one record, newline included. Pure.
    public static func line(time milliseconds: Int64, level: Logger.Level, component: String, message: String, metadata: Logger.Metadata) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + message.utf8.count)
        out += Array(#"{"time":""#.utf8)
        out += Array(rfc3339(milliseconds).utf8)
        out += Array(#"","level":""#.utf8)
        out += Array(level.rawValue.utf8)
        out += Array(#"","component":"#.utf8)
        JSONString.append(component, to: &out)
        out += Array(#","message":"#.utf8)
        JSONString.append(message, to: &out)
        if !metadata.isEmpty {
            out += Array(#","metadata":"#.utf8)
            appendValue(.dictionary(metadata), to: &out)
        }
        out += Array("}\n".utf8)
        return out
    }

    private static func appendValue(_ value: Logger.Metadata.Value, to out: inout [UInt8]) {
        switch value {
        case .string(let text): JSONString.append(text, to: &out)
        case .stringConvertible(let convertible): JSONString.append(convertible.description, to: &out)
        case .array(let values):
            out.append(UInt8(ascii: "["))
            for (index, element) in values.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                appendValue(element, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .dictionary(let entries):
            out.append(UInt8(ascii: "{"))
            for (index, key) in entries.keys.sorted().enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                JSONString.append(key, to: &out)
                out.append(UInt8(ascii: ":"))
                appendValue(entries[key]!, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// `2026-11-30T20:41:07.123Z`.
    static func rfc3339(_ milliseconds: Int64) -> String {
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let millis = Int(milliseconds % 1000)
        let fraction = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(fraction)Z"
    }
}
