import NIOCore

/// The first handler of every client connection: it sees the raw bytes before the HTTP
/// decoder and enforces what a client may not do to the router (``ClientDeadlines``).
///
/// - A connection over the router's cap is answered `503` and closed at once.
/// - A head that does not arrive in full within the header timeout (slowloris) gets `408` and
///   the connection is closed; one that sent nothing at all is closed silently.
/// - A keep-alive connection with no request for the idle timeout is closed.
/// - A head larger than the limit (request line included, which the decoder does not bound)
///   gets `431` and the connection is closed.
///
/// Each closing is counted in `swerve_router_client_closed_total{reason}`. ``ProxyHandler``
/// tells the guard when a head arrived and when its request finished. One timer per
/// connection, re-armed only when it fires before a deadline.
final class ClientGuard: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var deadlines: ClientDeadlines
    private let metrics: RouterMetrics
    /// Why the connection is refused outright (over the connection cap), if it is.
    private let refusal: String?
    private var context: ChannelHandlerContext?
    private var timer: Scheduled<Void>?
    private var armedAt: NIODeadline?
    private var closing = false

    init(settings: ProxySettings, metrics: RouterMetrics, refusal: String?) {
        deadlines = ClientDeadlines(opened: .now(), idleTimeout: TimeAmount(settings.clientIdleTimeout),
                                    headerTimeout: TimeAmount(settings.clientHeaderTimeout), maxHeadBytes: settings.maxHeadBytes)
        self.metrics = metrics
        self.refusal = refusal
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        if let refusal {
            answer(status: "503 Service Unavailable", body: refusal, reason: "connection_limit", extra: "Retry-After: 1\r\n")
        } else {
            rearm()
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        let began = deadlines.received(unwrapInboundIn(data).readableBytes, at: .now())
        context.fireChannelRead(data)
        if deadlines.headTooLarge {
            answer(status: "431 Request Header Fields Too Large",
                   body: "the request head is over the router's limit of \(deadlines.maxHeadBytes) bytes (--max-head-bytes)\n",
                   reason: "head_too_large")
        } else if began {
            rearm()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
        context.fireChannelInactive()
    }

    /// A complete head went to the ``ProxyHandler``.
    func headReceived() {
        deadlines.headReceived()
    }

    /// The router answered the request in full: the connection is idle.
    func requestFinished() {
        deadlines.requestFinished(at: .now())
        rearm()
    }

    private func rearm() {
        guard let context, !closing, let at = deadlines.wakeUp(after: .now()) else { return }
        if let armedAt, armedAt <= at { return } // an earlier timer will look again
        timer?.cancel()
        armedAt = at
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: at) { [weak self] in self?.fire() }
    }

    private func fire() {
        armedAt = nil
        timer = nil
        switch deadlines.expired(at: .now()) {
        case .idle?:
            close(reason: ClientDeadlines.Expiry.idle.rawValue)
        case .header?:
            if case .readingHead(_, let bytes) = deadlines.phase, bytes > 0 {
                answer(status: "408 Request Timeout",
                       body: "the request head did not arrive within \(deadlines.headerTimeout.seconds) (--client-header-timeout-ms)\n",
                       reason: ClientDeadlines.Expiry.header.rawValue)
            } else {
                close(reason: ClientDeadlines.Expiry.header.rawValue) // connected and sent nothing
            }
        case nil:
            rearm()
        }
    }

    private func close(reason: String) {
        guard let context, !closing else { return }
        closing = true
        metrics.clientClosed(reason: reason)
        context.close(promise: nil)
    }

    /// Writes a whole response below the HTTP encoder, then closes in two steps (a lingering
    /// close, as nginx does): first the sending side, while what the client still sends is
    /// read and dropped, then the socket, when the client closed or after ``lingering``.
    /// Closing at once with unread bytes would make the kernel reset the connection, and a
    /// reset can destroy the answer before the client reads it.
    private func answer(status: String, body: String, reason: String, extra: String = "") {
        guard let context, !closing else { return }
        closing = true
        metrics.clientClosed(reason: reason)
        let text = "HTTP/1.1 \(status)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n\(extra)Connection: close\r\n\r\n\(body)"
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(string: text))).whenComplete { _ in
            channel.close(mode: .output, promise: nil)
        }
        channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        context.eventLoop.scheduleTask(in: Self.lingering) { channel.close(promise: nil) }
    }

    /// How long a refused client may go on sending before its connection is closed outright.
    static let lingering = TimeAmount.seconds(2)
}

extension TimeAmount {
    /// "10 s", "250 ms".
    var seconds: String {
        nanoseconds % 1_000_000_000 == 0 ? "\(nanoseconds / 1_000_000_000) s" : "\(nanoseconds / 1_000_000) ms"
    }
}
