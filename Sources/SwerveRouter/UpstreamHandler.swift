import NIOCore
import NIOHTTP1
import NIOPosix
import SwerveCore
import SwerveHTTP

/// One connection to a replica: carries one request at a time for the ``ProxyHandler``
/// attached to it, and waits in the pool between requests. Lives on one event loop.
///
/// While a request is attached it watches for silence: when no byte moved either way (none of
/// the response read, none of the request written) for the backend's upstream timeout, it
/// tells the consumer once. One timer per request, re-armed only when it fires early.
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let channel: any Channel
    private var context: ChannelHandlerContext?
    private var consumer: ProxyHandler?
    /// Whether the replica will keep the connection open after the current response.
    private(set) var keepAlive = true
    /// The silence allowed while a request is attached, and when a byte last moved.
    private var silenceLimit: TimeAmount?
    private var lastActivity = NIODeadline.now()
    private var silenceTimer: Scheduled<Void>?

    init(channel: any Channel) {
        self.channel = channel
    }

    /// Connects to `address` on `loop`.
    static func connect(to address: HostPort, on loop: any EventLoop, timeout: Duration, setup: ConnectionSetup) -> EventLoopFuture<UpstreamHandler> {
        ClientBootstrap(group: loop)
            .connectTimeout(TimeAmount(timeout))
            .channelInitializer { channel in
                setup.configure(channel) { pipeline in
                    try pipeline.addHTTPClientHandlers()
                    try pipeline.addHandler(UpstreamHandler(channel: channel))
                }
            }
            .connect(host: address.host, port: Int(address.port))
            .flatMapThrowing { channel in try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) }
    }

    var isWritable: Bool { channel.isWritable }

    func attach(_ consumer: ProxyHandler) {
        self.consumer = consumer
        keepAlive = true
    }

    func detach() {
        consumer = nil
        stopWatching()
    }

    /// Tells the consumer (``ProxyHandler/upstreamSilent()``) once nothing moved for `limit`.
    func watchSilence(_ limit: TimeAmount) {
        guard let context else { return }
        silenceLimit = limit
        lastActivity = .now()
        armSilenceTimer(at: lastActivity + limit, on: context.eventLoop)
    }

    private func stopWatching() {
        silenceLimit = nil
        silenceTimer?.cancel()
        silenceTimer = nil
    }

    private func armSilenceTimer(at deadline: NIODeadline, on loop: any EventLoop) {
        silenceTimer?.cancel()
        silenceTimer = loop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            guard let self, let limit = self.silenceLimit else { return }
            let due = self.lastActivity + limit
            if due <= .now() {
                self.stopWatching()
                self.consumer?.upstreamSilent()
            } else {
                self.armSilenceTimer(at: due, on: loop)
            }
        }
    }

    /// Writes `part`; only the request's end is flushed at once. The consumer flushes the rest
    /// (``flush()``) when its client's read burst ends, so a streamed body costs a system call
    /// per burst rather than per part.
    func forward(_ part: HTTPServerRequestPart) {
        guard let context else { return }
        if silenceLimit != nil { lastActivity = .now() }
        switch part {
        case .head(let head): context.write(wrapOutboundOut(.head(head)), promise: nil)
        case .body(let buffer): context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers): context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
        }
    }

    func flush() {
        context?.flush()
    }

    /// Whether the replica's connection is read (`autoRead`). Changed only when it differs:
    /// each change is an `epoll_ctl` system call.
    private var reading = true

    func setReading(_ on: Bool) {
        guard on != reading else { return }
        reading = on
        channel.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in }
    }

    func close() {
        consumer = nil
        stopWatching()
        channel.close(promise: nil)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .head(let head) = part { keepAlive = head.isKeepAlive }
        if silenceLimit != nil { lastActivity = .now() }
        consumer?.responsePart(part)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        consumer?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        consumer?.upstreamWritable(context.channel.isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let consumer = self.consumer
        self.consumer = nil
        self.context = nil
        stopWatching()
        consumer?.upstreamLost()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
