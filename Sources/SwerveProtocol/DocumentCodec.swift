import FoundationEssentials
public import SwerveErrors
import SwerveCore

/// Reads and writes ``ProtocolDocument``s. Decoding checks `schemaVersion` before anything
/// else, and every error names the key (or channel) the value came from.
public enum DocumentCodec {
    private struct VersionOnly: Decodable { var schemaVersion: Int }

    public static func encode<Document: ProtocolDocument>(_ document: Document) -> [UInt8] {
        encodeValue(document)
    }

    /// JSON for a value that is part of a document or entry but not a document itself (a
    /// request's operation), with sorted keys.
    public static func encodeValue(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Protocol values hold plain, finite values; failing to encode one is a programming error.
        guard let data = try? encoder.encode(value) else { preconditionFailure("\(type(of: value)) must encode") }
        return Array(data)
    }

    /// Reads a value that is part of a versioned document or entry (whose version the caller
    /// checked); the error names `source` and the field that was wrong.
    public static func decodeValue<Value: Decodable>(_ type: Value.Type, from bytes: [UInt8], source: String) throws(ProtocolError) -> Value {
        guard !JSONNesting.exceeds(bytes) else {
            throw ProtocolError(.malformed, "\(source) holds a malformed \(Value.self): nested deeper than \(Limits.jsonNesting) levels")
        }
        do {
            return try JSONDecoder().decode(Value.self, from: Data(bytes))
        } catch {
            throw ProtocolError(.malformed, "\(source) holds a malformed \(Value.self): \(reason(error))")
        }
    }

    /// - Parameter source: the key or channel, for the error message.
    public static func decode<Document: ProtocolDocument>(_ type: Document.Type, from bytes: [UInt8], source: String) throws(ProtocolError) -> Document {
        guard !JSONNesting.exceeds(bytes) else {
            throw ProtocolError(.malformed, "\(source) does not hold a \(Document.self) document: nested deeper than \(Limits.jsonNesting) levels")
        }
        let data = Data(bytes)
        let decoder = JSONDecoder()
        let version: Int
        do {
            version = try decoder.decode(VersionOnly.self, from: data).schemaVersion
        } catch {
            throw ProtocolError(.malformed, "\(source) does not hold a \(Document.self) document (no schemaVersion): \(preview(bytes))")
        }
        guard version == Document.currentSchemaVersion else {
            throw ProtocolError(.unknownVersion, "\(source) holds a \(Document.self) of schema version \(version); this Swerve reads version \(Document.currentSchemaVersion): upgrade it, or the process that wrote the key")
        }
        do {
            return try decoder.decode(Document.self, from: data)
        } catch {
            throw ProtocolError(.malformed, "\(source) holds a malformed \(Document.self): \(reason(error))")
        }
    }

    private static func preview(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes.prefix(80), as: UTF8.self)
        return bytes.isEmpty ? "(empty)" : "\"\(text)\(bytes.count > 80 ? "…" : "")\""
    }

    private static func reason(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let at = path(context)
            return "missing field \"\(at.isEmpty ? key.stringValue : at + "." + key.stringValue)\""
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "field \"\(path(context))\": \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
