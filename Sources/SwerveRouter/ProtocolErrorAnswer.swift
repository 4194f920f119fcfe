import NIOCore
import NIOHTTP1

/// Answers a request the HTTP decoder could not read, saying why: `431` when its head has too
/// many fields or too large a one (the decoder's limits), `400` naming the parse error
/// otherwise. Only when no response is under way (a response cannot be interrupted by
/// another); the decoder closes the connection right after. Replaces NIO's handler, which
/// answers a bare `400` to everything.
final class ProtocolErrorAnswer: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let metrics: RouterMetrics
    private let settings: ProxySettings
    private var responding = false

    init(metrics: RouterMetrics, settings: ProxySettings) {
        self.metrics = metrics
        self.settings = settings
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? HTTPParserError, !responding {
            let (status, reason, body): (HTTPResponseStatus, String, String) = error == .headerOverflow
                ? (.requestHeaderFieldsTooLarge, "head_too_large",
                   "the request head is over the router's limits: at most \(settings.maxHeaderFields) fields (--max-header-fields) and \(settings.maxHeadBytes) bytes (--max-head-bytes)\n")
                : (.badRequest, "malformed", "malformed HTTP/1.1 request: \(error)\n")
            metrics.clientClosed(reason: reason)
            let bytes = context.channel.allocator.buffer(string: body)
            let headers = HTTPHeaders([("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "\(bytes.readableBytes)"), ("Connection", "close")])
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            responding = false
        }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200: responding = true
        case .end: responding = false
        case .head, .body: break
        }
        context.write(data, promise: promise)
    }
}
