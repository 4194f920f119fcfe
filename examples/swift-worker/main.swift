// A replica written in Swift on the worker SDK (`SwerveWorker`): it answers every request with
// a greeting taken from its user config, and lets the worker speak the protocol for it (ready
// key, heartbeats, drains, config updates).
//
// Build it with `swift build --product hello-replica` and start a node agent that runs it
// instead of `swerve worker`:
//
//     swerve node --worker-command "$(swift build --show-bin-path)/hello-replica"
//     swerve apply -f examples/backends.yaml          # any backend; user config {"greeting": "hi"}
import FoundationEssentials
import Glibc
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SwerveCore
import SwerveProtocol
import SwerveWorker
import Synchronization

/// The service: an HTTP server on a port the system picks, counting its requests in flight.
final class HelloService: ReplicaService {
    let port: Int
    private let channel: any Channel
    private let state: HelloState

    init(_ context: ReplicaContext) async throws {
        state = HelloState(greeting: Self.greeting(in: context.assignment.userConfig), requestFinished: context.requestFinished)
        let state = self.state
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(HelloHandler(state: state))
                }
            }
            .bind(host: context.host, port: 0)
            .get()
        port = channel.localAddress?.port ?? 0
    }

    static func greeting(in userConfig: JSONValue?) -> String {
        if case .object(let fields) = userConfig, case .string(let greeting) = fields["greeting"] { return greeting }
        return "hello"
    }

    var requestsInFlight: Int? { state.inFlight.load(ordering: .relaxed) }
    func isHealthy() async -> Bool { channel.isActive }
    func exitStatus() -> String? { state.stopped.load(ordering: .relaxed) ? "stopped" : nil }
    func userConfigChanged(_ userConfig: JSONValue?) async { state.greeting.withLock { $0 = Self.greeting(in: userConfig) } }
    func stopAccepting() async { try? await channel.close() }
    func stop() async { state.stopped.store(true, ordering: .relaxed) }
    func abandon() {}
}

/// What the connections share.
final class HelloState: Sendable {
    let greeting: Mutex<String>
    let inFlight = Atomic<Int>(0)
    let stopped = Atomic<Bool>(false)
    let requestFinished: @Sendable () -> Void

    init(greeting: String, requestFinished: @escaping @Sendable () -> Void) {
        self.greeting = Mutex(greeting)
        self.requestFinished = requestFinished
    }
}

/// Answers each request with the greeting.
final class HelloHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let state: HelloState

    init(state: HelloState) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            state.inFlight.add(1, ordering: .relaxed)
        case .body:
            break
        case .end:
            let body = ByteBuffer(string: state.greeting.withLock { $0 } + "\n")
            let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Length": "\(body.readableBytes)"])
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            state.inFlight.subtract(1, ordering: .relaxed)
            state.requestFinished()
        }
    }
}

var logger = Logger(label: "hello-replica")
logger.logLevel = .info
do {
    let configuration = try WorkerConfiguration.fromEnvironment(ProcessInfo.processInfo.environment)
    exit(try await Worker.run(configuration, logger: logger) { context in try await HelloService(context) })
} catch {
    let message = Array("hello-replica: \(error)\n".utf8)
    _ = write(STDERR_FILENO, message, message.count)
    exit(2)
}
