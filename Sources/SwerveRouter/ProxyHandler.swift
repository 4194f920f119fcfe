import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// One client connection: routes each request to a replica and streams it both ways.
///
/// Runs on the client channel's event loop; its upstream connection (``UpstreamHandler``) is
/// made on the same loop, so the two talk without locks. Backpressure: while the replica's
/// connection cannot take more, the client is not read; while the client cannot take more,
/// the replica is not read — a large upload or download streams through a bounded buffer.
/// A request is retried on another replica when connecting failed (it cannot have reached the
/// first one); when the replica answered `503` with `X-Swerve-Unprocessed` (a draining worker
/// says so before running anything) and no body was sent; and in the one case where it may
/// have reached the replica: a pooled keep-alive connection that the replica closed as the
/// request was written, when nothing came back, no body was sent and the method is idempotent
/// (the rule HTTP clients use for stale pooled connections: repeating such a request is
/// harmless). Never after response bytes reached the client.
final class ProxyHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let state: ProxyState
    private var context: ChannelHandlerContext?
    /// The client's IP address, for X-Forwarded-For (read once per connection).
    private var remoteAddress: String?

    /// The request being proxied, if any (counted while it is).
    private var exchange: Exchange? {
        didSet {
            if oldValue == nil, exchange != nil { state.requestStarted() }
            if oldValue != nil, exchange == nil { state.requestEnded() }
        }
    }

    private final class Exchange {
        let id: UInt64
        let head: HTTPRequestHead
        let backend: String
        let started = ContinuousClock.now
        /// Parts received before the upstream connection was ready.
        var pending: [HTTPServerRequestPart] = []
        var requestEnded = false
        var tried: Set<String> = []
        var replica: ReplicaBalancer.RoutedReplicaChoice?
        var upstream: UpstreamHandler?
        /// Whether `upstream` came from the pool (it may have been closed by the replica).
        var pooled = false
        var bodySent = false
        /// Times the request was sent again after reaching a replica (bounded by `canResend`).
        var resends = 0
        var responseStarted = false
        var status = 0
        var queueTimeout: Scheduled<Void>?

        init(id: UInt64, head: HTTPRequestHead, backend: String) {
            self.id = id
            self.head = head
            self.backend = backend
        }
    }

    init(state: ProxyState) {
        self.state = state
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch part {
        case .head(let head):
            begin(head, context: context)
        case .body, .end:
            guard let exchange else { return } // a request answered early (404/503): its body is dropped
            if case .end = part { exchange.requestEnded = true }
            if let upstream = exchange.upstream {
                if case .body = part { exchange.bodySent = true }
                upstream.forward(part)
                if !upstream.isWritable { context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in } }
            } else {
                exchange.pending.append(part)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The client left: stop waiting, and drop the upstream connection mid-request.
        if let exchange { abort(exchange) }
        self.context = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        exchange?.upstream?.setReading(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: Routing

    private func begin(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let table = state.table
        guard let backend = table.backend(forPath: head.uri) else {
            let routes = table.routes.map(\.prefix).joined(separator: ", ")
            respondEarly(head, status: .notFound, backend: nil,
                         body: "no backend serves \(head.uri.prefix { $0 != "?" }) (routes: \(routes.isEmpty ? "none yet" : routes))\n")
            return
        }
        let exchange = Exchange(id: state.nextRequestID(), head: head, backend: backend.tag)
        self.exchange = exchange
        // Hold the client's body until a replica connection is ready.
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        choose(exchange)
    }

    private func choose(_ exchange: Exchange) {
        guard let context, let backend = state.table.backends[exchange.backend] else {
            fail(exchange, status: .serviceUnavailable, reason: "no_replicas", body: "backend \(exchange.backend) has no running replica\n")
            return
        }
        let promise = context.eventLoop.makePromise(of: ReplicaBalancer.RoutedReplicaChoice?.self)
        switch state.admit(exchange.id, to: backend, excluding: exchange.tried, waiter: ProxyState.Waiter(backend: backend.tag, promise: promise)) {
        case .send(let choice):
            promise.succeed(nil)
            connect(exchange, to: choice)
        case .queued:
            state.metrics.queueLength(backend.tag, state.queueLength(backend.tag))
            let loop = context.eventLoop.assumeIsolated()
            exchange.queueTimeout = loop.scheduleTask(in: TimeAmount(state.settings.queueTimeout)) { [state] in
                if state.abandon(exchange.id, backend: exchange.backend) { promise.succeed(nil) }
            }
            promise.futureResult.assumeIsolated().whenSuccess { [weak self] choice in
                exchange.queueTimeout?.cancel()
                guard let self, self.exchange === exchange else {
                    if let choice { self?.state.finished(choice.tag, backend: exchange.backend) }
                    return
                }
                if let choice {
                    self.connect(exchange, to: choice)
                } else {
                    self.fail(exchange, status: .serviceUnavailable, reason: "queue_timeout",
                              body: "backend \(exchange.backend) is saturated: every replica is at its concurrency limit and the request waited \(self.state.settings.queueTimeout); retry later\n")
                }
            }
        case .rejected:
            promise.succeed(nil)
            fail(exchange, status: .serviceUnavailable, reason: "queue_full",
                 body: "backend \(exchange.backend) is saturated: every replica is at its concurrency limit and \(state.settings.queueLimit) requests are waiting; retry later\n")
        case .noReplicas:
            promise.succeed(nil)
            if exchange.tried.isEmpty {
                fail(exchange, status: .serviceUnavailable, reason: "no_replicas", body: "backend \(exchange.backend) has no running replica\n")
            } else {
                fail(exchange, status: .badGateway, reason: "unreachable",
                     body: "no replica of backend \(exchange.backend) took the request: each refused the connection or was draining (tried \(exchange.tried.sorted().joined(separator: ", ")))\n")
            }
        }
    }

    private func connect(_ exchange: Exchange, to choice: ReplicaBalancer.RoutedReplicaChoice) {
        guard let context else {
            state.finished(choice.tag, backend: exchange.backend)
            return
        }
        exchange.replica = choice
        exchange.tried.insert(choice.tag)
        let loop = context.eventLoop
        if let channel = state.takeIdle(choice.address, on: loop), let upstream = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) {
            start(exchange, upstream: upstream, pooled: true)
            return
        }
        UpstreamHandler.connect(to: choice.address, on: loop, timeout: state.settings.connectTimeout, setup: state.upstreamSetup).assumeIsolated().whenComplete { [weak self] result in
            guard let self, self.exchange === exchange else {
                // The client left meanwhile; leaving freed the replica's slot.
                if case .success(let upstream) = result { upstream.close() }
                return
            }
            switch result {
            case .success(let upstream):
                self.start(exchange, upstream: upstream, pooled: false)
            case .failure:
                // Nothing was sent: safe to try another replica.
                self.state.finished(choice.tag, backend: exchange.backend)
                exchange.replica = nil
                self.state.metrics.retried(backend: exchange.backend)
                self.choose(exchange)
            }
        }
    }

    private func start(_ exchange: Exchange, upstream: UpstreamHandler, pooled: Bool) {
        guard let context else { return }
        exchange.upstream = upstream
        exchange.pooled = pooled
        upstream.attach(self)
        var head = exchange.head
        head.headers.remove(name: "Connection")
        head.headers.remove(name: "Keep-Alive")
        head.headers.remove(name: "Proxy-Connection")
        if remoteAddress == nil { remoteAddress = context.channel.remoteAddress?.ipAddress ?? "" }
        if let remote = remoteAddress, !remote.isEmpty {
            let forwarded = head.headers.first(name: "X-Forwarded-For").map { "\($0), \(remote)" } ?? remote
            head.headers.replaceOrAdd(name: "X-Forwarded-For", value: forwarded)
        }
        if !head.headers.contains(name: "X-Request-Id") { head.headers.add(name: "X-Request-Id", value: state.requestID(exchange.id)) }
        head.version = .http1_1
        upstream.forward(.head(head))
        for part in exchange.pending {
            if case .body = part { exchange.bodySent = true }
            upstream.forward(part)
        }
        exchange.pending = []
        if !exchange.requestEnded { context.channel.setOption(ChannelOptions.autoRead, value: upstream.isWritable).whenFailure { _ in } }
    }

    // MARK: From the replica

    func upstreamWritable(_ writable: Bool) {
        guard let context, let exchange, !exchange.requestEnded else { return }
        context.channel.setOption(ChannelOptions.autoRead, value: writable).whenFailure { _ in }
    }

    func responsePart(_ part: HTTPClientResponsePart) {
        guard let context, let exchange else { return }
        switch part {
        case .head(var head):
            if head.status == .serviceUnavailable, head.headers.contains(name: "X-Swerve-Unprocessed"), canResend(exchange) {
                // The replica ran nothing (it is draining): another one may, this one is excluded.
                resend(exchange, sameReplicaAllowed: false)
                return
            }
            exchange.responseStarted = true
            exchange.status = Int(head.status.code)
            head.headers.remove(name: "Connection")
            head.headers.remove(name: "Keep-Alive")
            if !exchange.head.isKeepAlive { head.headers.replaceOrAdd(name: "Connection", value: "close") }
            head.version = exchange.head.version
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: head.status, headers: head.headers))), promise: nil)
        case .body(let buffer):
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            if !context.channel.isWritable { exchange.upstream?.setReading(false) }
        case .end(let trailers):
            finish(exchange, trailers: trailers)
        }
    }

    /// The replica's connection closed or failed before its response ended.
    func upstreamLost() {
        guard let context, let exchange else { return }
        if mayRepeat(exchange) {
            // A stale pooled connection: send the request again on a fresh choice (the same
            // replica is allowed; if it is gone, its refused connect is retried elsewhere).
            resend(exchange, sameReplicaAllowed: true)
            return
        }
        let replica = exchange.replica?.tag ?? "?" // named before release forgets it
        release(exchange)
        self.exchange = nil
        if exchange.responseStarted {
            context.close(promise: nil) // a truncated response must not look complete
        } else {
            respond(exchange.head, status: .badGateway, backend: exchange.backend,
                    body: "replica \(replica) of backend \(exchange.backend) closed the connection before answering\n",
                    started: exchange.started)
            resumeReading(after: exchange)
        }
    }

    /// After an answer the router made itself: read the client's next request — unless this
    /// one's body was never read to its end, which leaves the connection unusable.
    private func resumeReading(after exchange: Exchange) {
        guard let context else { return }
        if exchange.requestEnded {
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        } else {
            context.close(promise: nil)
        }
    }

    /// RFC 9110's idempotent methods: repeating one has the effect of sending it once.
    private static func isIdempotent(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: true
        default: false
        }
    }

    /// Whether the request can be sent again as it was: nothing of it but the head went out
    /// (no body part: those are streamed, not kept) and nothing came back to the client.
    /// Bounded, so replicas that turn every request away cannot hold it forever.
    private func canResend(_ exchange: Exchange) -> Bool {
        !exchange.responseStarted && !exchange.bodySent && exchange.resends < 2
    }

    /// Whether a request whose pooled connection was lost may be sent again: see the type's comment.
    private func mayRepeat(_ exchange: Exchange) -> Bool {
        exchange.pooled && canResend(exchange) && Self.isIdempotent(exchange.head.method)
    }

    /// Frees the replica and sends the request again on a new choice.
    private func resend(_ exchange: Exchange, sameReplicaAllowed: Bool) {
        guard let context else { return }
        let replica = exchange.replica
        release(exchange)
        if sameReplicaAllowed, let replica { exchange.tried.remove(replica.tag) }
        exchange.resends += 1
        exchange.pending = exchange.requestEnded ? [.end(nil)] : []
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        state.metrics.retried(backend: exchange.backend)
        choose(exchange)
    }

    private func finish(_ exchange: Exchange, trailers: HTTPHeaders?) {
        guard let context else { return }
        self.exchange = nil
        let keepAlive = exchange.head.isKeepAlive
        state.metrics.request(backend: exchange.backend, status: exchange.status, duration: .now - exchange.started)
        if let upstream = exchange.upstream, let replica = exchange.replica {
            upstream.detach()
            // Reusable only when the replica read the whole request and keeps the connection.
            if exchange.requestEnded, upstream.keepAlive, state.giveIdle(upstream.channel, address: replica.address, on: context.eventLoop) {
                upstream.setReading(true)
            } else {
                upstream.close()
            }
            state.finished(replica.tag, backend: exchange.backend)
        }
        exchange.queueTimeout?.cancel()
        let done = context.writeAndFlush(wrapOutboundOut(.end(trailers)))
        if keepAlive {
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        } else {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    // MARK: Early answers and failures

    private func fail(_ exchange: Exchange, status: HTTPResponseStatus, reason: String, body: String) {
        self.exchange = nil
        state.metrics.rejected(backend: exchange.backend, reason: reason)
        respond(exchange.head, status: status, backend: exchange.backend, body: body, started: exchange.started,
                extra: status == .serviceUnavailable ? [("Retry-After", "1")] : [])
        resumeReading(after: exchange)
    }

    private func respondEarly(_ head: HTTPRequestHead, status: HTTPResponseStatus, backend: String?, body: String) {
        respond(head, status: status, backend: backend, body: body, started: .now)
    }

    private func respond(_ request: HTTPRequestHead, status: HTTPResponseStatus, backend: String?, body: String, started: ContinuousClock.Instant,
                         extra: [(String, String)] = []) {
        guard let context else { return }
        let bytes = Array(body.utf8)
        var headers = HTTPHeaders([("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "\(bytes.count)")] + extra)
        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if let backend { state.metrics.request(backend: backend, status: Int(status.code), duration: .now - started) }
        if !request.isKeepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    private func abort(_ exchange: Exchange) {
        self.exchange = nil
        exchange.queueTimeout?.cancel()
        if exchange.replica == nil, exchange.upstream == nil {
            _ = state.abandon(exchange.id, backend: exchange.backend)
        }
        release(exchange)
    }

    /// Closes the exchange's upstream connection and frees its replica slot.
    private func release(_ exchange: Exchange) {
        if let upstream = exchange.upstream {
            upstream.detach()
            upstream.close()
            exchange.upstream = nil
        }
        if let replica = exchange.replica {
            state.finished(replica.tag, backend: exchange.backend)
            exchange.replica = nil
        }
    }
}
