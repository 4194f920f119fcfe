import NIOCore
import NIOHTTP1
import NIOPosix
import SwerveCore
import SwerveHTTP

/// The router's listening socket: HTTP/1.1 with keep-alive and pipelining (answered in
/// order by the ``ProxyHandler``), one per client connection, on SwiftNIO's shared event loops. Each
/// connection's bytes pass a ``ClientGuard`` (timeouts, head size, connection cap) before the
/// decoder, whose field limits come from the settings too.
final class ProxyServer: Sendable {
    let address: String
    private let channel: any Channel

    private init(address: String, channel: any Channel) {
        self.address = address
        self.channel = channel
    }

    static func start(host: String, port: Int, state: ProxyState, setup: ConnectionSetup) async throws -> ProxyServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let admitted = state.connectionOpened()
                channel.closeFuture.whenComplete { _ in state.connectionClosed() }
                let settings = state.settings
                return setup.configure(channel) { pipeline in
                    let refusal = admitted ? nil : "the router is at its limit of \(settings.maxConnections) open connections (--max-connections); retry later\n"
                    try pipeline.addHandler(ClientGuard(settings: settings, metrics: state.metrics, refusal: refusal))
                    guard admitted else { return }
                    var limits = NIOHTTPDecoderLimitConfiguration()
                    limits.maxHeaderFieldCount = settings.maxHeaderFields
                    limits.maxHeaderFieldSize = settings.maxHeadBytes
                    limits.maxHeaderListSize = settings.maxHeadBytes
                    try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false,
                                                             withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
                    try pipeline.addHandler(ProtocolErrorAnswer(metrics: state.metrics, settings: settings))
                    try pipeline.addHandler(ProxyHandler(state: state))
                }
            }
            .bind(host: host, port: port)
            .get()
        return ProxyServer(address: HostPort(host: host, port: UInt16(channel.localAddress?.port ?? port)).description, channel: channel)
    }

    /// Stops accepting connections; open ones go on.
    func stopAccepting() async {
        try? await channel.close()
    }
}
