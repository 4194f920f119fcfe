import NIOCore
import NIOHTTP1
@testable import SwerveRouter
import Testing

/// When a client connection is cut off, one event at a time (no sockets, no clock).
@Suite struct ClientDeadlineRules {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    func at(_ ms: Int64) -> NIODeadline { start + .milliseconds(ms) }
    func opened() -> ClientDeadlines {
        ClientDeadlines(opened: start, idleTimeout: .seconds(60), headerTimeout: .seconds(10), maxHeadBytes: 100)
    }

    @Test func aConnectionThatSendsNothingRunsIntoTheHeaderTimeoutFromItsAccept() {
        let deadlines = opened()
        #expect(deadlines.wakeUp(after: start) == at(10_000))
        #expect(deadlines.expired(at: at(9_999)) == nil)
        #expect(deadlines.expired(at: at(10_000)) == .header)
    }

    @Test func aTrickledHeadIsTimedFromItsFirstByteNotItsLast() {
        var deadlines = opened()
        deadlines.requestFinished(at: at(0))
        let began = deadlines.received(1, at: at(1_000))
        #expect(began, "a new head began")
        for ms in stride(from: Int64(2_000), through: 10_900, by: 100) {
            let again = deadlines.received(1, at: at(ms))
            #expect(!again)
        }
        #expect(deadlines.expired(at: at(10_999)) == nil)
        #expect(deadlines.expired(at: at(11_000)) == .header, "slowloris: each byte in time, the head never whole")
    }

    @Test func aKeptAliveConnectionIsClosedAfterTheIdleTimeoutAndNeedsNoNewTimerPerRequest() {
        var deadlines = opened()
        deadlines.headReceived()
        #expect(deadlines.wakeUp(after: at(5)) == nil && deadlines.expired(at: at(100_000)) == nil, "the exchange's timeouts apply")
        deadlines.requestFinished(at: at(10))
        #expect(deadlines.wakeUp(after: at(10)) == at(10_010), "first a header timeout after going idle…")
        #expect(deadlines.wakeUp(after: at(10_010)) == at(60_010), "…then the idle deadline")
        #expect(deadlines.expired(at: at(60_009)) == nil && deadlines.expired(at: at(60_010)) == .idle)
        _ = deadlines.received(10, at: at(500))
        #expect(deadlines.wakeUp(after: at(500)) == at(10_500), "later than the armed timer at 10 010: no new timer")
    }

    @Test func aHeadLargerThanTheLimitIsCaughtAcrossReads() {
        var deadlines = opened()
        _ = deadlines.received(60, at: at(1))
        #expect(!deadlines.headTooLarge)
        _ = deadlines.received(41, at: at(2))
        #expect(deadlines.headTooLarge)
        deadlines.headReceived()
        _ = deadlines.received(10_000, at: at(3))
        #expect(!deadlines.headTooLarge, "a body is not a head")
        _ = deadlines.received(.max, at: at(4))
        deadlines.requestFinished(at: at(5))
        _ = deadlines.received(.max, at: at(6))
        _ = deadlines.received(.max, at: at(7))
        #expect(deadlines.headTooLarge, "counted without overflow")
    }
}

/// What the router passes on and what it refuses (RFC 9110 §7.6.1).
@Suite struct HopByHopRules {
    @Test func connectionScopedFieldsAndTheOnesConnectionNamesAreRemoved() {
        let headers = HTTPHeaders([("Host", "a"), ("Connection", "keep-alive, X-Secret"), ("connection", "x-other"), ("X-Secret", "1"), ("X-Other", "2"),
                                   ("Keep-Alive", "5"), ("TE", "trailers"), ("Upgrade", "h2c"), ("Proxy-Authorization", "Basic eA=="),
                                   ("Proxy-Connection", "keep-alive"), ("X-Kept", "yes"), ("Content-Length", "0")])
        let request = HopByHop.stripped(headers, fields: HopByHop.requestFields)
        #expect(request.map { $0.name } == ["Host", "X-Kept", "Content-Length"])
        let response = HopByHop.stripped(HTTPHeaders([("Proxy-Authenticate", "Basic"), ("Proxy-Authorization", "kept: not a response field"), ("X-Kept", "1")]),
                                         fields: HopByHop.responseFields)
        #expect(response.map { $0.name } == ["Proxy-Authorization", "X-Kept"])
    }

    @Test func connectionCannotRemoveTheFieldsThatFrameTheMessage() {
        let headers = HTTPHeaders([("Connection", "Content-Length, Host, Transfer-Encoding"), ("Host", "a"), ("Content-Length", "3"), ("Transfer-Encoding", "chunked")])
        #expect(HopByHop.stripped(headers, fields: HopByHop.requestFields).map { $0.name } == ["Host", "Content-Length", "Transfer-Encoding"])
    }

    @Test func headersWithNothingToRemoveAreReturnedAsTheyAre() {
        let headers = HTTPHeaders([("Host", "a"), ("Accept", "*/*")])
        #expect(HopByHop.stripped(headers, fields: HopByHop.requestFields) == headers)
    }

    @Test func upgradesAndTunnelsAreRefusedSayingWhyButH2cIsIgnored() {
        func head(_ headers: [(String, String)], method: HTTPMethod = .GET) -> HTTPRequestHead {
            HTTPRequestHead(version: .http1_1, method: method, uri: "/", headers: HTTPHeaders(headers))
        }
        #expect(HopByHop.refusal(of: head([("Upgrade", "websocket"), ("Connection", "Upgrade")]))?.contains("Upgrade: websocket") == true)
        #expect(HopByHop.refusal(of: head([("Upgrade", "h2c, WebSocket")]))?.contains("websocket") == true)
        #expect(HopByHop.refusal(of: head([("Upgrade", "h2c")])) == nil, "a server may ignore an h2c upgrade and answer over HTTP/1.1")
        #expect(HopByHop.refusal(of: head([], method: .CONNECT))?.contains("CONNECT") == true)
        #expect(HopByHop.refusal(of: head([])) == nil)
    }
}

/// A router's metrics do not grow with every replica the cluster ever ran.
@Suite struct RouterMetricSeries {
    @Test func aReplicaNoViewListsLosesItsInFlightSeriesOnceNothingIsInFlight() {
        let metrics = RouterMetrics()
        metrics.inFlightChanged("api#busy", by: 1)
        metrics.inFlightChanged("api#idle", by: 1)
        metrics.inFlightChanged("api#idle", by: -1)
        metrics.inFlightChanged("api#routed", by: 0)
        metrics.forgetInFlight(except: ["api#routed"])
        #expect(metrics.inFlightSeries == ["api#busy", "api#routed"], "gone and idle: dropped; still in flight or routed: kept")
        metrics.inFlightChanged("api#busy", by: -1)
        metrics.forgetInFlight(except: [])
        #expect(metrics.inFlightSeries.isEmpty)
    }
}
