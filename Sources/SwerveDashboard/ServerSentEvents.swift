/// The `text/event-stream` framing (WHATWG HTML, "Server-sent events"). Pure.
///
/// Guarantees: a message's data never breaks its framing — each line of `data` becomes its own
/// `data:` field (the page's `EventSource` joins them with newlines again), so a payload with a
/// newline cannot end a message early or inject a field.
enum ServerSentEvents {
    static func message(event: String, data: [UInt8]) -> [UInt8] {
        var out = Array("event: \(event)\n".utf8)
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            out += Array("data: ".utf8)
            out += line.filter { $0 != UInt8(ascii: "\r") }
            out.append(UInt8(ascii: "\n"))
        }
        out.append(UInt8(ascii: "\n"))
        return out
    }

    /// How long a page's `EventSource` waits before reconnecting.
    static func retry(milliseconds: Int) -> [UInt8] {
        Array("retry: \(milliseconds)\n\n".utf8)
    }

    static func comment(_ text: String) -> [UInt8] {
        Array(": \(text.filter { $0 != "\n" && $0 != "\r" })\n\n".utf8)
    }
}
