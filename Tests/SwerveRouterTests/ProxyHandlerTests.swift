import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import SwerveCore
import SwerveHTTP
import SwerveProtocol
@testable import SwerveRouter
import Testing

/// The proxy handler on embedded channels: a client connection and pooled replica connections
/// on one embedded loop, no sockets. Each retry rule of ``ExchangeStateMachine`` is driven
/// through the handler and what reaches each side is read back.
@Suite struct ProxyHandlerExchanges {
    let loop = EmbeddedEventLoop()
    let state = ProxyState(settings: ProxySettings(), metrics: RouterMetrics(),
                           upstreamSetup: ConnectionSetup(server: "router-upstream", logger: Logger(label: "test")))
    let a = HostPort(host: "10.0.0.1", port: 8001)
    let b = HostPort(host: "10.0.0.2", port: 8002)

    /// Routes `/api` to replicas on `addresses`.
    func route(to addresses: [HostPort]) {
        state.updateView { $0.accept(configs: configs(1, ["api": ("/api", 10)])) }
        state.updateView { view in
            view.accept(routing: Snapshot(epoch: 1, view: RoutingView(version: 1, backends: ["api": addresses.enumerated().map { index, address in
                RoutedReplica(tag: "api#\(index)", address: address, node: "n1")
            }])))
        }
    }

    /// An open replica connection waiting in the pool.
    func pooled(_ address: HostPort) async throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandler(UpstreamHandler(channel: channel))
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).get()
        #expect(state.giveIdle(channel, address: address, on: loop))
        return channel
    }

    func client() async throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: ProxyHandler(state: state), loop: loop)
        try await channel.connect(to: SocketAddress(ipAddress: "192.0.2.7", port: 40000)).get()
        return channel
    }

    func send(_ method: HTTPMethod, to client: EmbeddedChannel, body: String? = nil) throws {
        try client.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: "/api/x")))
        if let body { try client.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: body))) }
        try client.writeInbound(HTTPServerRequestPart.end(nil))
    }

    /// The request head a replica connection received, if any.
    func receivedHead(_ upstream: EmbeddedChannel) throws -> HTTPRequestHead? {
        guard let part = try upstream.readOutbound(as: HTTPClientRequestPart.self), case .head(let head) = part else { return nil }
        return head
    }

    func answer(_ upstream: EmbeddedChannel, _ status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: String = "") throws {
        var headers = headers
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        try upstream.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)))
        if !body.isEmpty { try upstream.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: body))) }
        try upstream.writeInbound(HTTPClientResponsePart.end(nil))
    }

    /// The response the client got: its status and body.
    func response(_ client: EmbeddedChannel) throws -> (status: HTTPResponseStatus, body: String)? {
        guard let first = try client.readOutbound(as: HTTPServerResponsePart.self), case .head(let head) = first else { return nil }
        var body = ""
        while let part = try client.readOutbound(as: HTTPServerResponsePart.self) {
            if case .body(.byteBuffer(let buffer)) = part { body += String(buffer: buffer) }
        }
        return (head.status, body)
    }

    @Test func aRequestGoesToTheReplicaAndItsAnswerBack() async throws {
        route(to: [a])
        let upstream = try await pooled(a)
        let client = try await client()
        try send(.GET, to: client)
        let head = try #require(try receivedHead(upstream))
        #expect(head.headers["X-Forwarded-For"] == ["192.0.2.7"])
        #expect(head.headers["X-Request-Id"].count == 1)
        try answer(upstream, .ok, body: "hello")
        let answered = try #require(try response(client))
        #expect(answered.status == .ok && answered.body == "hello")
        #expect(state.activeRequests == 0)
        #expect(state.takeIdle(a, on: loop) === upstream, "the connection went back to the pool")
    }

    @Test func pipelinedRequestsWaitForTheAnswerBeforeThemAndAreAnsweredInOrder() async throws {
        route(to: [a])
        let upstream = try await pooled(a)
        let client = try await client()
        for uri in ["/api/first", "/api/second"] {
            try client.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri)))
            try client.writeInbound(HTTPServerRequestPart.end(nil))
        }
        #expect(try receivedHead(upstream)?.uri == "/api/first")
        #expect(try upstream.readOutbound(as: HTTPClientRequestPart.self).map { if case .end = $0 { true } else { false } } == true)
        #expect(try upstream.readOutbound(as: HTTPClientRequestPart.self) == nil, "the second waits for the first's answer")
        try answer(upstream, .ok, body: "one")
        #expect(try response(client)?.body == "one")
        #expect(try receivedHead(upstream)?.uri == "/api/second", "then goes, on the connection the first gave back")
        _ = try upstream.readOutbound(as: HTTPClientRequestPart.self)
        try answer(upstream, .ok, body: "two")
        #expect(try response(client)?.body == "two")
        #expect(state.activeRequests == 0)
    }

    @Test func partsOfAStreamedBodyGoOnAtTheEndOfEachReadBurstNotOnlyWithTheEnd() async throws {
        route(to: [a])
        let upstream = try await pooled(a)
        let client = try await client()
        try client.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/api/upload")))
        try client.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "first part")))
        #expect(try receivedHead(upstream)?.uri == "/api/upload")
        let sent = try upstream.readOutbound(as: HTTPClientRequestPart.self)
        #expect(sent.map { if case .body(.byteBuffer(let buffer)) = $0 { String(buffer: buffer) == "first part" } else { false } } == true,
                "the request's first part reached the replica before the request ended")
        try client.writeInbound(HTTPServerRequestPart.end(nil))
        _ = try upstream.readOutbound(as: HTTPClientRequestPart.self)

        try upstream.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Transfer-Encoding": "chunked"])))
        try upstream.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: "partial")))
        guard case .head(let head)? = try client.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("the response head did not reach the client before the response ended")
            return
        }
        #expect(head.status == .ok)
        let streamed = try client.readOutbound(as: HTTPServerResponsePart.self)
        #expect(streamed.map { if case .body(.byteBuffer(let buffer)) = $0 { String(buffer: buffer) == "partial" } else { false } } == true,
                "the response's first part reached the client before the response ended")
        try upstream.writeInbound(HTTPClientResponsePart.end(nil))
        #expect(state.activeRequests == 0)
    }

    @Test func anUnprocessed503IsRetriedOnTheOtherReplica() async throws {
        route(to: [a, b])
        let upstreams = [try await pooled(a), try await pooled(b)]
        let client = try await client()
        try send(.POST, to: client)
        let first = try #require(upstreams.firstIndex { (try? receivedHead($0)) != nil }, "one replica got the request")
        try answer(upstreams[first], .serviceUnavailable, headers: ["X-Swerve-Unprocessed": "draining"])
        #expect(try response(client) == nil, "nothing reached the client yet")
        let other = upstreams[1 - first]
        #expect(try receivedHead(other)?.method == .POST, "sent again, to the other replica")
        try answer(other, .created)
        #expect(try response(client)?.status == .created)
        #expect(!upstreams[first].isActive, "the draining replica's connection was closed")
    }

    @Test func aStalePooledConnectionRepeatsAnIdempotentRequest() async throws {
        route(to: [a])
        let older = try await pooled(a)
        let stale = try await pooled(a)
        let client = try await client()
        try send(.GET, to: client)
        #expect(try receivedHead(stale)?.method == .GET)
        try await stale.close()
        #expect(try receivedHead(older)?.method == .GET, "repeated on another connection to the same replica")
        try answer(older, .ok, body: "fine")
        #expect(try response(client)?.body == "fine")
    }

    @Test func aStalePooledConnectionDoesNotRepeatAPost() async throws {
        route(to: [a])
        let older = try await pooled(a)
        let stale = try await pooled(a)
        let client = try await client()
        try send(.POST, to: client)
        #expect(try receivedHead(stale)?.method == .POST)
        try await stale.close()
        let answered = try #require(try response(client))
        #expect(answered.status == .badGateway && answered.body.contains("closed the connection before answering"))
        #expect(try receivedHead(older) == nil, "not sent twice")
    }

    @Test func responseBytesAlreadySentMeanTheClientIsClosed() async throws {
        route(to: [a])
        let upstream = try await pooled(a)
        let client = try await client()
        try send(.GET, to: client)
        _ = try receivedHead(upstream)
        try upstream.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Length": "10"])))
        try upstream.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: "part")))
        try await upstream.close()
        #expect(try response(client)?.body == "part")
        #expect(!client.isActive, "a cut response must not look complete")
    }

    @Test func aPathNoBackendServesIs404() async throws {
        route(to: [a])
        let client = try await client()
        try client.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/nowhere")))
        try client.writeInbound(HTTPServerRequestPart.end(nil))
        let answered = try #require(try response(client))
        #expect(answered.status == .notFound && answered.body.contains("routes: /api"))
    }
}
