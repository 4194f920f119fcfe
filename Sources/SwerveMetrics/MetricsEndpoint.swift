import Metrics
public import Prometheus
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Prometheus metrics over HTTP for one process: `GET /metrics` answers the text exposition
/// format of every metric the process recorded through swift-metrics; `GET /-/healthz`
/// answers `ok`. Anything else is 404.
///
/// Guarantees: ``bootstrap(durationBuckets:)`` installs the Prometheus backend for
/// swift-metrics once per process (later calls return the same registry); the server runs on
/// SwiftNIO's shared event loops and never blocks the caller; ``close()`` stops listening.
public final class MetricsEndpoint: Sendable {
    /// Where it listens, `host:port` (the port the system chose when 0 was asked for).
    public let address: String
    private let channel: any Channel

    private init(address: String, channel: any Channel) {
        self.address = address
        self.channel = channel
    }

    private static let installed = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Installs the Prometheus backend for swift-metrics (once per process: later calls return
    /// the first registry; call it before any metric is created). `durationBuckets`: histogram
    /// buckets per timer label, for timers far from the default range (5 ms – 10 s).
    @discardableResult
    public static func bootstrap(durationBuckets: [String: [Duration]] = [:]) -> PrometheusCollectorRegistry {
        installed.withLock { installed in
            if let installed { return installed }
            let registry = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: registry)
            factory.durationHistogramBuckets = durationBuckets
            MetricsSystem.bootstrap(factory)
            installed = registry
            return registry
        }
    }

    /// What an extra admin path answers: a content type and a body, made per request.
    public typealias Page = @Sendable () -> (contentType: String, body: [UInt8])

    /// Listens on `host:port` (port 0: any free port); `pages` adds GET paths beside
    /// `/metrics` and `/-/healthz` (a router's `/-/routes`).
    public static func start(host: String, port: Int, registry: PrometheusCollectorRegistry, pages: [String: Page] = [:]) async throws -> MetricsEndpoint {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsRequestHandler(registry: registry, pages: pages))
                }
            }
            .bind(host: host, port: port)
            .get()
        let bound = channel.localAddress?.port ?? port
        return MetricsEndpoint(address: "\(host):\(bound)", channel: channel)
    }

    public func close() async {
        try? await channel.close()
    }
}

/// Answers one request at a time per connection, keep-alive.
private final class MetricsRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registry: PrometheusCollectorRegistry
    let pages: [String: MetricsEndpoint.Page]

    init(registry: PrometheusCollectorRegistry, pages: [String: MetricsEndpoint.Page]) {
        self.registry = registry
        self.pages = pages
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let (status, contentType, body): (HTTPResponseStatus, String, [UInt8])
        let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
        switch (head.method, path) {
        case (.GET, _) where pages[path] != nil:
            let page = pages[path]!()
            (status, contentType, body) = (.ok, page.contentType, page.body)
        case (.GET, "/metrics"):
            (status, contentType, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", registry.emitToBuffer())
        case (.GET, "/-/healthz"):
            (status, contentType, body) = (.ok, "text/plain; charset=utf-8", Array("ok\n".utf8))
        default:
            (status, contentType, body) = (.notFound, "text/plain; charset=utf-8", Array("not found: \(head.method) \(head.uri); try GET /metrics\n".utf8))
        }
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", "\(body.count)")])
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !head.isKeepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
