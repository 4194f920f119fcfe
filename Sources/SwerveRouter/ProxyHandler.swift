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
/// What happens to a request, and when it is retried on another replica, is decided by its
/// ``ExchangeStateMachine``; this handler feeds it events and carries out its actions.
final class ProxyHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let state: ProxyState
    private var context: ChannelHandlerContext?
    /// The connection's ``ClientGuard``: told when a head arrived and when its request ended.
    private var clientGuard: ClientGuard?
    /// The client's IP address, for X-Forwarded-For (read once per connection).
    private var remoteAddress: String?

    /// The request being proxied, if any (counted while it is).
    private var exchange: Exchange? {
        didSet {
            if oldValue == nil, exchange != nil { state.requestStarted() }
            if oldValue != nil, exchange == nil {
                state.requestEnded()
                if !readingRequest { clientGuard?.requestFinished() }
            }
        }
    }
    /// Between a request's head and its end: the bytes coming are its body, not a new head.
    private var readingRequest = false

    /// One request's decisions (``machine``) and the I/O they drive.
    private final class Exchange {
        let id: UInt64
        let head: HTTPRequestHead
        let backend: String
        let started = ContinuousClock.now
        var machine: ExchangeStateMachine
        /// The replica connection while one carries the request.
        var upstream: UpstreamHandler?
        /// The response status, for metrics.
        var status = 0
        var queueTimeout: Scheduled<Void>?

        /// How long the replica may stay silent.
        let upstreamTimeout: TimeAmount

        init(id: UInt64, head: HTTPRequestHead, backend: RoutingTable.Backend) {
            self.id = id
            self.head = head
            self.backend = backend.tag
            upstreamTimeout = TimeAmount(backend.upstreamTimeout)
            machine = ExchangeStateMachine(method: head.method, retryIdempotentRequests: backend.retryIdempotentRequests)
        }
    }

    init(state: ProxyState) {
        self.state = state
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        clientGuard = try? context.pipeline.syncOperations.handler(type: ClientGuard.self)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        // A pipelined request (its head came while the one before is still being answered)
        // waits, and the client is not read meanwhile: responses go out in request order.
        if !pipelined.isEmpty || startsPipelinedRequest(part) {
            pipelined.append(part)
            readClient(false)
            return
        }
        handle(part)
    }

    /// Whether `part` is the head of a request that came before the current one was answered.
    private func startsPipelinedRequest(_ part: HTTPServerRequestPart) -> Bool {
        guard exchange != nil, !readingRequest, case .head = part else { return false }
        return true
    }

    /// Parts of pipelined requests, held in order until the request before them is answered.
    /// NIO's `HTTPServerPipelineHandler` would do this too, but it stops reading the client
    /// after every request and starts again after every response: two `epoll_ctl` system
    /// calls per request for clients that never pipeline. Here only a client that pipelines
    /// pays for it.
    private var pipelined = CircularBuffer<HTTPServerRequestPart>()

    private func handle(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            clientGuard?.headReceived()
            readingRequest = true
            begin(head)
        case .body, .end:
            if case .end = part {
                readingRequest = false
                // Answered before its body ended: the connection is idle only now.
                if exchange == nil { clientGuard?.requestFinished() }
            }
            guard let exchange else { return } // a request answered early (404/503): its body is dropped
            run(exchange.machine.requestPart(part), for: exchange)
        }
    }

    /// After a response went out in full on a connection that stays open: the requests that
    /// were pipelined behind it go on, and the client is read again once none waits.
    private func resumeAfterResponse() {
        while let next = pipelined.first, !startsPipelinedRequest(next) {
            pipelined.removeFirst()
            handle(next)
        }
        guard pipelined.isEmpty else { return }
        if let exchange {
            // A replayed request is under way: reading is as its own progress decides.
            guard exchange.machine.requestSent, exchange.machine.requestEnded || (exchange.upstream?.isWritable ?? false) else { return }
        }
        readClient(true)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Parts of a streamed request body written during this read burst go out together.
        if let upstream = exchange?.upstream, exchange?.machine.requestSent == true { upstream.flush() }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The client left: stop waiting, and drop the upstream connection mid-request.
        if let exchange { run(exchange.machine.clientClosed(), for: exchange) }
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

    private func begin(_ head: HTTPRequestHead) {
        if let refusal = HopByHop.refusal(of: head) {
            // The body (if any) is not read: the connection closes after the answer.
            respondEarly(head, status: .notImplemented, backend: nil, body: refusal, close: true)
            return
        }
        let table = state.table
        guard let backend = table.backend(forPath: head.uri) else {
            let routes = table.routes.map(\.prefix).joined(separator: ", ")
            respondEarly(head, status: .notFound, backend: nil,
                         body: "no backend serves \(head.uri.prefix { $0 != "?" }) (routes: \(routes.isEmpty ? "none yet" : routes))\n")
            return
        }
        let exchange = Exchange(id: state.nextRequestID(), head: head, backend: backend)
        self.exchange = exchange
        choose(exchange)
        // Hold the client's body until a replica connection takes it; a pooled connection
        // took it already, and reading goes on without a pause (two system calls saved).
        if self.exchange === exchange, !exchange.machine.requestSent { readClient(false) }
    }

    /// Whether the client's connection is read (`autoRead`). Changed only when it differs:
    /// each change is an `epoll_ctl` system call.
    private var clientReading = true

    private func readClient(_ on: Bool) {
        guard on != clientReading, let context else { return }
        clientReading = on
        context.channel.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in }
    }

    /// Carries out what the exchange's state machine decided.
    private func run(_ action: ExchangeStateMachine.Action, for exchange: Exchange) {
        switch action {
        case .none:
            break
        case .retry(let previous, let reason):
            release(exchange, previous)
            readClient(false)
            state.metrics.retried(backend: exchange.backend, reason: reason)
            choose(exchange)
        case .connect(let choice):
            connect(exchange, to: choice)
        case .sendRequest(let buffered):
            sendRequest(exchange, buffered: buffered)
        case .forward(let part):
            guard context != nil, let upstream = exchange.upstream else { return }
            upstream.forward(part)
            if !upstream.isWritable { readClient(false) }
        case .forwardResponseHead:
            break // `responsePart` writes it: it has the head
        case .awaitTable:
            awaitTable(exchange)
        case .finish(let choice, let reusable):
            finish(exchange, choice, reusable: reusable, trailers: nil)
        case .fail(let failure, let previous):
            if let previous { release(exchange, previous) }
            fail(exchange, failure)
        case .closeClient(let previous):
            release(exchange, previous)
            self.exchange = nil
            context?.close(promise: nil)
        case .abandon(let previous, let dequeue):
            self.exchange = nil
            exchange.queueTimeout?.cancel()
            if dequeue {
                _ = state.abandon(exchange.id, backend: exchange.backend)
                state.stopAwaitingTable(exchange.id)?.succeed(())
            }
            if let previous { release(exchange, previous) }
        }
    }

    private func choose(_ exchange: Exchange) {
        guard let context, let backend = state.table.backends[exchange.backend] else {
            run(exchange.machine.backendGone(), for: exchange)
            return
        }
        let loop = context.eventLoop
        var waiting: EventLoopPromise<ReplicaBalancer.RoutedReplicaChoice?>?
        let decision = state.admit(exchange.id, to: backend, excluding: exchange.machine.tried) {
            let promise = loop.makePromise(of: ReplicaBalancer.RoutedReplicaChoice?.self)
            waiting = promise
            return ProxyState.Waiter(backend: backend.tag, promise: promise)
        }
        switch decision {
        case .send(let choice):
            run(exchange.machine.chosen(choice), for: exchange)
        case .queued:
            guard let promise = waiting else { preconditionFailure("a queued request always has its waiter made") }
            state.metrics.queueLength(backend.tag, state.queueLength(backend.tag))
            exchange.queueTimeout = loop.assumeIsolated().scheduleTask(in: TimeAmount(state.settings.queueTimeout)) { [state] in
                if state.abandon(exchange.id, backend: exchange.backend) { promise.succeed(nil) }
            }
            promise.futureResult.assumeIsolated().whenSuccess { [weak self] choice in
                exchange.queueTimeout?.cancel()
                guard let self, self.exchange === exchange else {
                    if let choice { self?.state.finished(choice.tag, backend: exchange.backend) }
                    return
                }
                self.run(choice.map { exchange.machine.chosen($0) } ?? exchange.machine.queueTimedOut(), for: exchange)
            }
        case .rejected:
            run(exchange.machine.queueFull(), for: exchange)
        case .noReplicas:
            run(exchange.machine.noReplicaLeft(mayWait: ContinuousClock.now < exchange.started + state.settings.queueTimeout,
                                               autoscaled: backend.loadReportInterval != nil), for: exchange)
        }
    }

    /// Every replica in the table was tried: waits for the next table (the leader replaces what
    /// died), or for the queue timeout since the request came, then chooses again.
    private func awaitTable(_ exchange: Exchange) {
        guard let context else { return }
        let loop = context.eventLoop.assumeIsolated()
        let promise = context.eventLoop.makePromise(of: Void.self)
        guard state.awaitTable(exchange.id, backend: exchange.backend, promise: promise) else {
            promise.succeed(())
            run(exchange.machine.queueFull(), for: exchange)
            return
        }
        let remaining = max(.zero, exchange.started + state.settings.queueTimeout - ContinuousClock.now)
        exchange.queueTimeout = loop.scheduleTask(in: TimeAmount(remaining)) { [state] in
            state.stopAwaitingTable(exchange.id)?.succeed(())
        }
        promise.futureResult.assumeIsolated().whenSuccess { [weak self] in
            exchange.queueTimeout?.cancel()
            guard let self, self.exchange === exchange else { return }
            self.choose(exchange)
        }
    }

    private func connect(_ exchange: Exchange, to choice: ReplicaBalancer.RoutedReplicaChoice) {
        guard let context else {
            state.finished(choice.tag, backend: exchange.backend)
            return
        }
        let loop = context.eventLoop
        if let channel = state.takeIdle(choice.address, on: loop), let upstream = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) {
            attach(exchange, upstream)
            run(exchange.machine.connected(pooled: true), for: exchange)
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
                self.attach(exchange, upstream)
                self.run(exchange.machine.connected(pooled: false), for: exchange)
            case .failure:
                self.state.eject(choice.tag, backend: exchange.backend)
                self.run(exchange.machine.connectFailed(), for: exchange)
            }
        }
    }

    private func attach(_ exchange: Exchange, _ upstream: UpstreamHandler) {
        exchange.upstream = upstream
        upstream.attach(self)
    }

    private func sendRequest(_ exchange: Exchange, buffered: [HTTPServerRequestPart]) {
        guard let context, let upstream = exchange.upstream else { return }
        var head = exchange.head
        head.headers = HopByHop.stripped(head.headers, fields: HopByHop.requestFields)
        if remoteAddress == nil { remoteAddress = context.channel.remoteAddress?.ipAddress ?? "" }
        if let remote = remoteAddress, !remote.isEmpty {
            let forwarded = head.headers.first(name: "X-Forwarded-For").map { "\($0), \(remote)" } ?? remote
            head.headers.replaceOrAdd(name: "X-Forwarded-For", value: forwarded)
        }
        if !head.headers.contains(name: "X-Request-Id") { head.headers.add(name: "X-Request-Id", value: state.requestID(exchange.id)) }
        head.version = .http1_1
        upstream.forward(.head(head))
        for part in buffered { upstream.forward(part) }
        upstream.watchSilence(exchange.upstreamTimeout)
        if !exchange.machine.requestEnded {
            upstream.flush() // the end flushes itself; a body still coming may not come soon
            readClient(upstream.isWritable)
        }
    }

    // MARK: From the replica

    func upstreamWritable(_ writable: Bool) {
        guard context != nil, let exchange, !exchange.machine.requestEnded else { return }
        readClient(writable)
    }

    func responsePart(_ part: HTTPClientResponsePart) {
        guard let context, let exchange else { return }
        switch part {
        case .head(var head):
            let action = exchange.machine.responseHead(status: head.status, unprocessed: head.headers.contains(name: "X-Swerve-Unprocessed"))
            guard action == .forwardResponseHead else {
                run(action, for: exchange)
                return
            }
            exchange.status = Int(head.status.code)
            head.headers = HopByHop.stripped(head.headers, fields: HopByHop.responseFields)
            if !exchange.head.isKeepAlive { head.headers.replaceOrAdd(name: "Connection", value: "close") }
            head.version = exchange.head.version
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: head.status, headers: head.headers))), promise: nil)
        case .body(let buffer):
            // Flushed when the replica's read burst ends (``upstreamReadComplete()``) or with the
            // response's end: one system call per burst, not per part.
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            if !context.channel.isWritable { exchange.upstream?.setReading(false) }
        case .end(let trailers):
            let action = exchange.machine.responseEnded()
            guard case .finish(let choice, let reusable) = action else {
                run(action, for: exchange)
                return
            }
            finish(exchange, choice, reusable: reusable, trailers: trailers)
        }
    }

    /// The replica's connection has nothing more to read for now: what it sent goes out.
    func upstreamReadComplete() {
        context?.flush()
    }

    /// The replica's connection closed or failed before its response ended.
    func upstreamLost() {
        guard context != nil, let exchange else { return }
        run(exchange.machine.upstreamLost(), for: exchange)
    }

    /// Nothing moved between the router and the replica for the backend's upstream timeout.
    func upstreamSilent() {
        guard context != nil, let exchange else { return }
        run(exchange.machine.upstreamTimedOut(), for: exchange)
    }

    /// After an answer the router made itself: read the client's next request — unless this
    /// one's body was never read to its end, which leaves the connection unusable.
    private func resumeReading(after exchange: Exchange) {
        guard let context else { return }
        if exchange.machine.requestEnded {
            resumeAfterResponse()
        } else {
            context.close(promise: nil)
        }
    }

    private func finish(_ exchange: Exchange, _ choice: ReplicaBalancer.RoutedReplicaChoice, reusable: Bool, trailers: HTTPHeaders?) {
        guard let context else { return }
        state.responseWriting()
        self.exchange = nil
        let keepAlive = exchange.head.isKeepAlive
        state.metrics.request(backend: exchange.backend, status: exchange.status, duration: .now - exchange.started)
        if let upstream = exchange.upstream {
            upstream.detach()
            // Reusable only when the replica read the whole request and keeps the connection.
            if reusable, upstream.keepAlive, state.giveIdle(upstream.channel, address: choice.address, on: context.eventLoop) {
                upstream.setReading(true)
            } else {
                upstream.close()
            }
            exchange.upstream = nil
        }
        state.finished(choice.tag, backend: exchange.backend)
        exchange.queueTimeout?.cancel()
        let done = context.writeAndFlush(wrapOutboundOut(.end(trailers)))
        done.whenComplete { [state] _ in state.responseWritten() }
        if keepAlive {
            resumeAfterResponse()
        } else {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    // MARK: Early answers and failures

    private func fail(_ exchange: Exchange, _ failure: ExchangeStateMachine.Failure) {
        // Counted in flight from the exchange's end until the answer holds its own count.
        state.responseWriting()
        defer { state.responseWritten() }
        self.exchange = nil
        let backend = exchange.backend
        let status: HTTPResponseStatus, reason: String, body: String
        switch failure {
        case .noReplicas:
            (status, reason, body) = (.serviceUnavailable, "no_replicas", "backend \(backend) has no running replica\n")
        case .unreachable(let tried):
            (status, reason, body) = (.badGateway, "unreachable",
                                      "no replica of backend \(backend) took the request: each refused the connection or was draining (tried \(tried.joined(separator: ", ")))\n")
        case .queueFull:
            (status, reason, body) = (.serviceUnavailable, "queue_full",
                                      "backend \(backend) is saturated: every replica is at its concurrency limit and \(state.settings.queueLimit) requests are waiting; retry later\n")
        case .queueTimeout:
            (status, reason, body) = (.serviceUnavailable, "queue_timeout",
                                      "backend \(backend) is saturated: every replica is at its concurrency limit and the request waited \(state.settings.queueTimeout); retry later\n")
        case .replicaClosed(let replica):
            // Not a rejection: the replica took the request and lost it.
            respond(exchange.head, status: .badGateway, backend: backend,
                    body: "replica \(replica) of backend \(backend) closed the connection before answering\n", started: exchange.started)
            resumeReading(after: exchange)
            return
        case .upstreamTimeout(let replica):
            state.metrics.upstreamTimedOut(backend: backend)
            respond(exchange.head, status: .gatewayTimeout, backend: backend,
                    body: "replica \(replica) of backend \(backend) sent nothing for \(exchange.upstreamTimeout.seconds) (the backend's upstreamTimeoutS); it may still be working on the request\n",
                    started: exchange.started)
            resumeReading(after: exchange)
            return
        }
        state.metrics.rejected(backend: backend, reason: reason)
        respond(exchange.head, status: status, backend: backend, body: body, started: exchange.started,
                extra: status == .serviceUnavailable ? [("Retry-After", "1")] : [])
        resumeReading(after: exchange)
    }

    /// Answers a request that reaches no replica. `close`: the connection closes after it (its
    /// body, if any, is left unread).
    private func respondEarly(_ head: HTTPRequestHead, status: HTTPResponseStatus, backend: String?, body: String, close: Bool = false) {
        respond(head, status: status, backend: backend, body: body, started: .now, close: close)
    }

    private func respond(_ request: HTTPRequestHead, status: HTTPResponseStatus, backend: String?, body: String, started: ContinuousClock.Instant,
                         extra: [(String, String)] = [], close: Bool = false) {
        guard let context else { return }
        state.responseWriting()
        let bytes = Array(body.utf8)
        var headers = HTTPHeaders([("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "\(bytes.count)")] + extra)
        let closing = close || !request.isKeepAlive
        if closing { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        done.whenComplete { [state] _ in state.responseWritten() }
        if let backend { state.metrics.request(backend: backend, status: Int(status.code), duration: .now - started) }
        if closing {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// Closes the exchange's upstream connection, if any, and frees `choice`'s replica slot.
    private func release(_ exchange: Exchange, _ choice: ReplicaBalancer.RoutedReplicaChoice) {
        if let upstream = exchange.upstream {
            upstream.detach()
            upstream.close()
            exchange.upstream = nil
        }
        state.finished(choice.tag, backend: exchange.backend)
    }
}
