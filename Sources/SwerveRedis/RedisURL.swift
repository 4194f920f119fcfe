import FoundationEssentials
import SwerveErrors
/// The parts of a Redis URL. Parsing is pure and reports every mistake with the URL's field.
struct RedisURL: Equatable {
    var endpoint: RedisEndpoint
    var username: String?
    var password: String?
    var database: Int

    static func parse(_ url: String) throws(RedisError) -> RedisURL {
        func invalid(_ why: String) -> RedisError {
            RedisError(.invalidConfiguration, "invalid Redis URL \"\(redacted(url))\": \(why) (expected redis://[user:password@]host:port[/db], redis-sentinel://[user:password@]host:port[,host:port…][/db]#MASTER or unix:///path/to/redis.sock)")
        }
        guard let schemeEnd = url.firstRange(of: "://") else { throw invalid("missing scheme") }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        var rest = String(url[schemeEnd.upperBound...])

        switch scheme {
        case "unix":
            var database = 0
            if let query = rest.firstIndex(of: "?") {
                database = try parseDatabaseQuery(String(rest[rest.index(after: query)...]), invalid: invalid)
                rest = String(rest[..<query])
            }
            guard rest.hasPrefix("/"), rest.count > 1 else { throw invalid("the socket path must be absolute") }
            return RedisURL(endpoint: .unix(path: try percentDecoded(rest, invalid: invalid)), username: nil, password: nil, database: database)
        case "redis", "redis-sentinel":
            break
        case "rediss":
            throw invalid("TLS (rediss://) is not supported: hiredis 0.14 has no TLS; use a local TLS tunnel such as stunnel")
        default:
            throw invalid("unknown scheme \"\(scheme)\"")
        }

        var master: String?
        if scheme == "redis-sentinel" {
            guard let hash = rest.firstIndex(of: "#") else { throw invalid("a Sentinel URL names its master after #: redis-sentinel://host:26379#mymaster") }
            let name = try percentDecoded(String(rest[rest.index(after: hash)...]), invalid: invalid)
            guard !name.isEmpty, !name.contains(where: { $0.isWhitespace || $0.isNewline }) else {
                throw invalid("the master name after # must be non-empty and without spaces, got \"\(name)\"")
            }
            master = name
            rest = String(rest[..<hash])
        } else if rest.contains("#") {
            throw invalid("a # (a Sentinel master name) belongs in a redis-sentinel:// URL")
        }

        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userinfo = String(rest[..<at])
            rest = String(rest[rest.index(after: at)...])
            if let colon = userinfo.firstIndex(of: ":") {
                let user = String(userinfo[..<colon])
                username = user.isEmpty ? nil : try percentDecoded(user, invalid: invalid)
                password = try percentDecoded(String(userinfo[userinfo.index(after: colon)...]), invalid: invalid)
                if password == "" { password = nil }
            } else if !userinfo.isEmpty {
                username = try percentDecoded(userinfo, invalid: invalid)
            }
        }

        var database = 0
        if let query = rest.firstIndex(of: "?") {
            database = try parseDatabaseQuery(String(rest[rest.index(after: query)...]), invalid: invalid)
            rest = String(rest[..<query])
        }
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            rest = String(rest[..<slash])
            if !path.isEmpty {
                guard let db = Int(path), db >= 0 else { throw invalid("database \"\(path)\" is not a non-negative integer") }
                database = db
            }
        }

        if let master {
            var sentinels: [RedisSentinels.Address] = []
            for item in rest.split(separator: ",", omittingEmptySubsequences: false) {
                let (host, port) = try hostAndPort(String(item), defaultPort: 26379, invalid: invalid)
                sentinels.append(RedisSentinels.Address(host: host, port: port))
            }
            return RedisURL(endpoint: .sentinel(RedisSentinels(addresses: sentinels, master: master)), username: username, password: password, database: database)
        }
        let (host, port) = try hostAndPort(rest, defaultPort: 6379, invalid: invalid)
        return RedisURL(endpoint: .tcp(host: host, port: port), username: username, password: password, database: database)
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`.
    private static func hostAndPort(_ text: String, defaultPort: Int, invalid: (String) -> RedisError) throws(RedisError) -> (String, Int) {
        var host = text
        var port = defaultPort
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw invalid("unclosed [ in IPv6 host") }
            let after = host[host.index(after: close)...]
            let inner = String(host[host.index(after: host.startIndex)..<close])
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()) else { throw invalid("port \"\(after.dropFirst())\" is not a number") }
                port = p
            } else if !after.isEmpty {
                throw invalid("unexpected \"\(after)\" after the IPv6 host")
            }
            host = inner
        } else if let colon = host.lastIndex(of: ":") {
            let portText = host[host.index(after: colon)...]
            guard let p = Int(portText) else { throw invalid("port \"\(portText)\" is not a number") }
            port = p
            host = String(host[..<colon])
        }
        guard !host.isEmpty else { throw invalid("missing host") }
        guard (1...65535).contains(port) else { throw invalid("port \(port) is out of range 1-65535") }
        return (host, port)
    }

    private static func parseDatabaseQuery(_ query: String, invalid: (String) -> RedisError) throws(RedisError) -> Int {
        var database = 0
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[0] == "db" else { throw invalid("unknown query parameter \"\(pair)\" (only db=N is understood)") }
            guard let db = Int(parts[1]), db >= 0 else { throw invalid("db \"\(parts[1])\" is not a non-negative integer") }
            database = db
        }
        return database
    }

    private static func percentDecoded(_ text: String, invalid: (String) -> RedisError) throws(RedisError) -> String {
        guard text.contains("%") else { return text }
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next(), let low = iterator.next(),
                      let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
                else { throw invalid("bad percent-escape") }
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The URL with any password replaced by `***`, for messages.
    static func redacted(_ url: String) -> String {
        guard let schemeEnd = url.firstRange(of: "://"), let at = url.lastIndex(of: "@"), at > schemeEnd.upperBound else { return url }
        let userinfo = url[schemeEnd.upperBound..<at]
        guard let colon = userinfo.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }
}
