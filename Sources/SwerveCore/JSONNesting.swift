/// How deeply JSON text nests its arrays and objects, found by one scan of the bytes (strings
/// and their escapes skipped), before any decoder recurses into it.
///
/// Foundation's `JSONDecoder` refuses more than 512 levels — but with 513 it traps while
/// describing the error (swift-foundation's `JSONError.SourceLocation`), so a 513-byte `[[[…`
/// written by anyone who may write one key would crash the process reading it. Every decode of
/// JSON that crosses a process boundary checks this first (``Limits/jsonNesting``).
public enum JSONNesting {
    /// Whether `bytes` nests deeper than `limit` levels (a malformed text is left to the decoder).
    public static func exceeds(_ bytes: some Sequence<UInt8>, limit: Int = Limits.jsonNesting) -> Bool {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > limit { return true }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return false
    }

    /// How deeply `value` nests (a scalar is 0, `[1]` is 1).
    public static func depth(of value: JSONValue) -> Int {
        switch value {
        case .null, .bool, .number, .string: return 0
        case .array(let items): return 1 + (items.map(depth(of:)).max() ?? 0)
        case .object(let members): return 1 + (members.values.map(depth(of:)).max() ?? 0)
        }
    }
}
