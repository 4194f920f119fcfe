import FoundationEssentials
import NIOCore
import NIOHTTP1
import NIOPosix
import SwerveCore
import SwerveErrors
import SwerveHTTP
import Synchronization

/// What the server's connections share: which handler, the replica tag, the user config, the
/// requests in flight and whether new ones are accepted. Every field is behind a lock or
/// atomic, so any event loop may use it.
final class BuiltinServerState: Sendable {
    let handler: BuiltinHandler
    let tag: String
    let options: [String: JSONValue]
    let inFlight = Atomic<Int>(0)
    private let mutable: Mutex<(userConfig: JSONValue?, accepting: Bool, stopped: Bool)>
    /// Called (on an event loop) whenever a request finishes.
    let requestFinished: @Sendable () -> Void

    init(handler: BuiltinHandler, tag: String, options: [String: JSONValue], userConfig: JSONValue?, requestFinished: @escaping @Sendable () -> Void) {
        self.handler = handler
        self.tag = tag
        self.options = options
        self.mutable = Mutex((userConfig, true, false))
        self.requestFinished = requestFinished
    }

    var userConfig: JSONValue? {
        get { mutable.withLock { $0.userConfig } }
        set { mutable.withLock { $0.userConfig = newValue } }
    }

    var accepting: Bool {
        get { mutable.withLock { $0.accepting } }
        set { mutable.withLock { $0.accepting = newValue } }
    }

    /// Set when the worker stopped the code (built-ins have nothing else to stop).
    var stopped: Bool {
        get { mutable.withLock { $0.stopped } }
        set { mutable.withLock { $0.stopped = newValue } }
    }
}

/// An HTTP/1.1 server (SwiftNIO) for the built-in handlers, on an ephemeral port.
final class BuiltinServer: Sendable {
    let state: BuiltinServerState
    let port: Int
    private let channel: any Channel

    private init(state: BuiltinServerState, channel: any Channel, port: Int) {
        self.state = state
        self.channel = channel
        self.port = port
    }

    static func start(host: String, state: BuiltinServerState, setup: ConnectionSetup) async throws -> BuiltinServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                setup.configure(channel) { pipeline in
                    try pipeline.configureHTTPServerPipeline()
                    try pipeline.addHandler(BuiltinRequestHandler(state: state))
                }
            }
            .bind(host: host, port: 0)
            .get()
        guard let port = channel.localAddress?.port else { throw WorkerError(.startFailed, "the built-in server has no local port") }
        return BuiltinServer(state: state, channel: channel, port: port)
    }

    /// Closes the listening socket: new connections are refused; open ones finish their
    /// current request and are then answered 503 with `Connection: close`.
    func stopAccepting() async {
        state.accepting = false
        try? await channel.close()
    }
}

/// One connection's requests. Bodies stream: `echo` sends each part back as it comes (with the
/// request's `Content-Length`, or chunked), reading no faster than the client takes the answer;
/// `sleep` and `fail` discard the body and answer at its end. Nothing holds a whole body.
final class BuiltinRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let state: BuiltinServerState
    private var head: HTTPRequestHead?
    /// Set while an echo streams its body back: whether any byte went back yet.
    private var echoing: (keepAlive: Bool, sentBytes: Bool)?

    init(state: BuiltinServerState) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            if state.accepting, state.handler == .echo, BuiltinHandler.split(head.uri).path != "/-/user-config", let length = Self.bodyLength(head) {
                beginEcho(head, length: length, context: context)
            }
        case .body(let buffer):
            guard echoing != nil else { return } // not echoed: discarded as it comes
            echoing?.sentBytes = true
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            if !context.channel.isWritable { context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in } }
        case .end:
            guard let head else { return }
            self.head = nil
            if let echo = echoing {
                echoing = nil
                endEcho(echo, context: context)
            } else {
                respond(to: head, context: context)
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if echoing != nil { context.channel.setOption(ChannelOptions.autoRead, value: context.channel.isWritable).whenFailure { _ in } }
        context.fireChannelWritabilityChanged()
    }

    /// The body's announced length: `Content-Length` when given and above 0, nil (no stream)
    /// for a request without a body; -1 for a chunked one.
    static func bodyLength(_ head: HTTPRequestHead) -> Int? {
        if let length = head.headers.first(name: "Content-Length").flatMap(Int.init) { return length > 0 ? length : nil }
        return head.headers["Transfer-Encoding"].contains { $0.lowercased().contains("chunked") } ? -1 : nil
    }

    private func beginEcho(_ head: HTTPRequestHead, length: Int, context: ChannelHandlerContext) {
        state.inFlight.add(1, ordering: .relaxed)
        echoing = (head.isKeepAlive, false)
        var headers = HTTPHeaders([("X-Swerve-Replica", state.tag)])
        if length >= 0 { headers.add(name: "Content-Length", value: "\(length)") }
        headers.add(name: "Connection", value: head.isKeepAlive ? "keep-alive" : "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
    }

    private func endEcho(_ echo: (keepAlive: Bool, sentBytes: Bool), context: ChannelHandlerContext) {
        // A chunked request that turned out empty gets what an empty echo answers: the tag.
        if !echo.sentBytes { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "\(state.tag)\n")))), promise: nil) }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        if !echo.keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
        state.inFlight.subtract(1, ordering: .relaxed)
        state.requestFinished()
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard state.accepting else {
            // Said before anything ran: a router may send the request to another replica.
            write(status: .serviceUnavailable, body: Array("\(state.tag) is draining\n".utf8), keepAlive: false,
                  extra: [("Retry-After", "0"), ("X-Swerve-Unprocessed", "draining")], context: context)
            return
        }
        state.inFlight.add(1, ordering: .relaxed)
        let (path, query) = BuiltinHandler.split(head.uri)
        let keepAlive = head.isKeepAlive
        if path == "/-/user-config" {
            let json = state.userConfig.flatMap { try? JSONEncoder().encode($0) }.map { Array($0) } ?? Array("null".utf8)
            finish(status: .ok, body: json, keepAlive: keepAlive, context: context)
            return
        }
        // Only a bodiless echo gets here (a body is streamed back as it comes).
        let response = state.handler.respond(path: path, query: query, body: [], tag: state.tag, options: state.options, random: Double.random(in: 0..<1))
        let status = HTTPResponseStatus(statusCode: response.status)
        guard response.delayMs > 0 else {
            finish(status: status, body: response.body, keepAlive: keepAlive, context: context)
            return
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: .milliseconds(Int64(response.delayMs))) {
            let (handler, context) = bound.value
            handler.finish(status: status, body: response.body, keepAlive: keepAlive, context: context)
        }
    }

    private func finish(status: HTTPResponseStatus, body: [UInt8], keepAlive: Bool, context: ChannelHandlerContext) {
        write(status: status, body: body, keepAlive: keepAlive, extra: [], context: context)
        state.inFlight.subtract(1, ordering: .relaxed)
        state.requestFinished()
    }

    private func write(status: HTTPResponseStatus, body: [UInt8], keepAlive: Bool, extra: [(String, String)], context: ChannelHandlerContext) {
        var headers = HTTPHeaders([("Content-Length", "\(body.count)"), ("X-Swerve-Replica", state.tag)] + extra)
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
