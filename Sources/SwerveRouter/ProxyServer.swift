import NIOCore
import NIOHTTP1
import NIOPosix
import SwerveCore
import SwerveHTTP

/// The router's listening socket: HTTP/1.1 with keep-alive and pipelining (answered in
/// order), one ``ProxyHandler`` per client connection, on SwiftNIO's shared event loops.
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
                setup.configure(channel) { pipeline in
                    try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
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
