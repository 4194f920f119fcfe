import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The dashboard's HTTP server, on SwiftNIO's shared event loops: the page and its assets
/// (embedded in the binary), `GET /api/state` (the current ``DashboardSnapshot`` as JSON),
/// `GET /api/stream` (server-sent events: `state` with each new snapshot, `events` with new
/// events), `GET /-/healthz`.
///
/// What a hostile page or client cannot do: read it from another site (no CORS headers; a
/// `Host` that is neither an IP address, `localhost` nor an allowed name is refused, which
/// defeats DNS rebinding), frame it or run other scripts in it (CSP `default-src 'self'`,
/// `frame-ancestors 'none'`), change anything (GET and HEAD only, and the process holds only
/// read rights in Redis), or exhaust it (at most ``maxConnections`` connections, each closed
/// after ``idleTimeout`` without a request unless it follows the stream, and ``maxStreams``
/// streams; a stream that stops reading is dropped).
public final class DashboardServer: Sendable {
    public static let maxConnections = 256
    public static let maxStreams = 64
    public static let idleTimeout: Duration = .seconds(30)

    /// Where it listens, `host:port` (the port chosen when 0 was asked for).
    public let address: String
    private let channel: any Channel

    private init(address: String, channel: any Channel) {
        self.address = address
        self.channel = channel
    }

    /// - Parameter allowedHosts: names besides IP addresses and `localhost` that clients may
    ///   reach it by (the `Host` header), lowercased.
    public static func start(host: String, port: Int, feed: DashboardFeed, allowedHosts: Set<String>) async throws -> DashboardServer {
        let limits = ConnectionLimits()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let admitted = limits.connections.wrappingAdd(1, ordering: .relaxed).newValue <= maxConnections
                channel.closeFuture.whenComplete { _ in limits.connections.wrappingSubtract(1, ordering: .relaxed) }
                guard admitted else { return channel.close() }
                return channel.eventLoop.makeCompletedFuture {
                    // A connection that sends nothing for this long is closed (unless it follows
                    // the stream): idle clients cannot hold the connection cap.
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: TimeAmount(idleTimeout)))
                    var decoderLimits = NIOHTTPDecoderLimitConfiguration()
                    decoderLimits.maxHeaderFieldCount = 64
                    decoderLimits.maxHeaderListSize = 16 << 10
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true, withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits)
                    try channel.pipeline.syncOperations.addHandler(DashboardRequestHandler(feed: feed, allowedHosts: allowedHosts, limits: limits))
                }
            }
            .bind(host: host, port: port)
            .get()
        let bound = channel.localAddress?.port ?? port
        let shown = host.contains(":") ? "[\(host)]:\(bound)" : "\(host):\(bound)"
        return DashboardServer(address: shown, channel: channel)
    }

    public func close() async {
        try? await channel.close()
    }
}

final class ConnectionLimits: Sendable {
    let connections = Atomic<Int>(0)
    let streams = Atomic<Int>(0)
}

/// One connection's requests, answered in order (NIO's pipelining handler holds the next
/// until this one is answered); a `/api/stream` request keeps the connection for itself.
private final class DashboardRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let feed: DashboardFeed
    private let allowedHosts: Set<String>
    private let limits: ConnectionLimits
    private var streaming = false

    init(feed: DashboardFeed, allowedHosts: Set<String>, limits: ConnectionLimits) {
        self.feed = feed
        self.allowedHosts = allowedHosts
        self.limits = limits
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data), !streaming else { return }
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        guard head.method == .GET || head.method == .HEAD else {
            respond(context, head, .methodNotAllowed, text: "the dashboard only reads: \(head.method) is not allowed\n", extra: [("Allow", "GET, HEAD")])
            return
        }
        let hosts = head.headers["Host"]
        guard hosts.count <= 1 else {
            respond(context, head, .badRequest, text: "a request has one Host header; this one has \(hosts.count)\n")
            return
        }
        if let refusal = DashboardHosts.refusal(of: hosts.first, allowed: allowedHosts) {
            respond(context, head, .misdirectedRequest, text: refusal)
            return
        }
        switch path {
        case "/api/state":
            let promise = context.eventLoop.makePromise(of: [UInt8]?.self)
            promise.completeWithTask { [feed] in await feed.currentSnapshot() }
            promise.futureResult.assumeIsolated().whenSuccess { [weak self] snapshot in
                guard let self else { return }
                if let snapshot {
                    self.respond(context, head, .ok, contentType: "application/json", body: snapshot)
                } else {
                    self.respond(context, head, .serviceUnavailable, text: "the dashboard cannot read the cluster from Redis yet; see its log\n")
                }
            }
        case "/api/stream":
            startStream(context, head)
        case "/-/healthz":
            respond(context, head, .ok, text: "ok\n")
        default:
            if let asset = DashboardAssets.file(at: path) {
                respond(context, head, .ok, contentType: asset.contentType, body: asset.bytes)
            } else {
                respond(context, head, .notFound, text: "not found: \(path.prefix(200)); the dashboard is at /\n")
            }
        }
    }

    private func startStream(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        guard limits.streams.wrappingAdd(1, ordering: .relaxed).newValue <= DashboardServer.maxStreams else {
            limits.streams.wrappingSubtract(1, ordering: .relaxed)
            respond(context, head, .serviceUnavailable, text: "the dashboard serves at most \(DashboardServer.maxStreams) live pages; close one\n")
            return
        }
        streaming = true
        var headers = Self.securityHeaders
        headers.add(name: "Content-Type", value: "text/event-stream; charset=utf-8")
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "X-Accel-Buffering", value: "no")
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
        guard head.method == .GET else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            streaming = false
            limits.streams.wrappingSubtract(1, ordering: .relaxed)
            return
        }
        feed.startStreaming(to: context.channel)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read, !streaming {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if streaming {
            streaming = false
            feed.stopStreaming(to: context.channel)
            limits.streams.wrappingSubtract(1, ordering: .relaxed)
        }
        context.fireChannelInactive()
    }

    static var securityHeaders: HTTPHeaders {
        HTTPHeaders([
            ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
        ])
    }

    private func respond(_ context: ChannelHandlerContext, _ request: HTTPRequestHead, _ status: HTTPResponseStatus, text: String,
                         extra: [(String, String)] = []) {
        respond(context, request, status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8), extra: extra)
    }

    private func respond(_ context: ChannelHandlerContext, _ request: HTTPRequestHead, _ status: HTTPResponseStatus, contentType: String, body: [UInt8],
                         extra: [(String, String)] = []) {
        var headers = Self.securityHeaders
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: "\(body.count)")
        headers.add(name: "Cache-Control", value: "no-store")
        for (name, value) in extra { headers.add(name: name, value: value) }
        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !request.isKeepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

/// Which `Host` headers the dashboard answers. Pure.
///
/// A page on another site can point its own DNS name at 127.0.0.1 (DNS rebinding) and then
/// read anything served there as same-origin; its requests carry its name as `Host`. Only IP
/// literals, `localhost` and the names an operator allowed are answered.
enum DashboardHosts {
    static func refusal(of header: String?, allowed: Set<String>) -> String? {
        guard let header, !header.isEmpty else { return nil } // HTTP/1.0 without Host: no browser sends that
        let name = hostName(header).lowercased()
        if name == "localhost" || isIPLiteral(name) || allowed.contains(name) { return nil }
        return "the dashboard is not served as \"\(name.prefix(100))\": reach it by IP address or localhost, or start it with --allowed-host \(name.prefix(100)) (SWERVE_DASHBOARD_ALLOWED_HOSTS)\n"
    }

    /// `name` without its port (`[v6]:port` keeps the brackets' content).
    static func hostName(_ header: String) -> String {
        if header.hasPrefix("["), let close = header.firstIndex(of: "]") {
            return String(header[header.index(after: header.startIndex)..<close])
        }
        return String(header.split(separator: ":", maxSplits: 1).first ?? "")
    }

    static func isIPLiteral(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4, parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) && Int($0)! <= 255 }) { return true }
        return name.contains(":") && name.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
    }
}
