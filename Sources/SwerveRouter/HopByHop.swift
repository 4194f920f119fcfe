import NIOHTTP1

/// What a proxy must not pass on: the headers that describe one connection rather than the
/// message (RFC 9110 §7.6.1), and the requests it cannot carry. Pure.
///
/// Removed from requests and responses: `Connection` and every header it names, `Keep-Alive`,
/// `Proxy-Connection`, `TE`, `Upgrade`; from requests also `Proxy-Authorization` (credentials
/// meant for this proxy, never for a replica), from responses `Proxy-Authenticate`.
/// `Transfer-Encoding` is left to the HTTP encoder, which frames each hop itself.
enum HopByHop {
    /// The fixed hop-by-hop fields, lowercased.
    static let requestFields: Set<String> = ["connection", "keep-alive", "proxy-connection", "te", "upgrade", "proxy-authorization"]
    static let responseFields: Set<String> = ["connection", "keep-alive", "proxy-connection", "te", "upgrade", "proxy-authenticate"]

    /// Fields a `Connection` header may not remove: they frame or address the message, and a
    /// client that could strip them could make the replica read the stream differently from
    /// the router (request smuggling through the hop-by-hop list).
    static let framingFields: Set<String> = ["host", "content-length", "transfer-encoding"]

    /// `headers` without the fixed `fields` and without every field `Connection` lists (names
    /// compared case-insensitively, as HTTP field names are), framing fields excepted.
    static func stripped(_ headers: HTTPHeaders, fields: Set<String>) -> HTTPHeaders {
        var named = fields
        for value in headers["Connection"] {
            for token in value.split(separator: ",") {
                let name = token.trimmingSpaces.lowercased()
                if !name.isEmpty, !framingFields.contains(name) { named.insert(name) }
            }
        }
        guard headers.contains(where: { named.contains($0.name.lowercased()) }) else { return headers }
        return HTTPHeaders(headers.filter { !named.contains($0.name.lowercased()) })
    }

    /// Why the router will not carry `head`, or nil when it will. A protocol upgrade (a
    /// WebSocket, say) needs a tunnel, which the router does not provide; `h2c` is the one
    /// upgrade a server may simply ignore (the request is then served over HTTP/1.1). `CONNECT`
    /// asks for a tunnel outright.
    static func refusal(of head: HTTPRequestHead) -> String? {
        if head.method == .CONNECT {
            return "the router does not open tunnels: CONNECT is not supported\n"
        }
        let upgrades = head.headers["Upgrade"].flatMap { $0.split(separator: ",") }.map { $0.trimmingSpaces.lowercased() }.filter { !$0.isEmpty }
        let refused = upgrades.filter { $0 != "h2c" }
        guard !refused.isEmpty else { return nil }
        return "the router does not carry protocol upgrades (Upgrade: \(refused.joined(separator: ", "))); send plain HTTP/1.1 requests\n"
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    var trimmingSpaces: Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }
}
