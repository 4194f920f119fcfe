import Foundation
import SwerveCore
import Testing

struct HostPortTests {
    @Test func parsesNamesIPv4AndBracketedIPv6() throws {
        #expect(HostPort("127.0.0.1:8000") == HostPort(host: "127.0.0.1", port: 8000))
        #expect(HostPort("replica-1.svc:0") == HostPort(host: "replica-1.svc", port: 0))
        #expect(HostPort("[::1]:8000") == HostPort(host: "::1", port: 8000))
        #expect(HostPort("[fe80::1%eth0]:65535")?.host == "fe80::1%eth0")
    }

    @Test func writesIPv6InBracketsAndRoundTrips() throws {
        for text in ["127.0.0.1:80", "[::1]:8000", "[2001:db8::7]:1", "example.org:443"] {
            #expect(HostPort(text)?.description == text)
        }
        let value = HostPort(host: "::1", port: 9)
        #expect(try JSONDecoder().decode(HostPort.self, from: JSONEncoder().encode(value)) == value)
        #expect(String(decoding: try JSONEncoder().encode(value), as: UTF8.self) == #""[::1]:9""#)
    }

    @Test func refusesWhatIsNotHostPortAndSaysWhy() {
        let cases: [(String, String)] = [
            ("127.0.0.1", "expected HOST:PORT"),
            ("::1:8000", "IPv6 host goes in brackets"),
            ("[::1]", "no \":PORT\""),
            ("[::1:80", "does not close"),
            ("[host]:80", "only an IPv6 address"),
            (":80", "the host is empty"),
            ("a b:80", "contains"),
            ("evil/x:80", "contains"),
            ("h:65536", "from 0 to 65535"),
            ("h:-1", "from 0 to 65535"),
            ("h:", "from 0 to 65535"),
            ("h:８０", "from 0 to 65535"),
        ]
        for (text, reason) in cases {
            #expect(HostPort(text) == nil, "\(text) is refused")
            #expect(HostPort.problem(in: text)?.contains(reason) == true, "\(text): \(HostPort.problem(in: text) ?? "no problem")")
        }
    }

    @Test func aStoredAddressThatDoesNotParseIsADecodingError() {
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(HostPort.self, from: Data(#""::1:80""#.utf8)) }
    }
}
