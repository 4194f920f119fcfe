import Foundation
import Glibc
import Logging
import SwerveCore
import SwerveProtocol
import SwerveRedis
import SwerveTestSupport
import Synchronization
@testable import SwerveWorker
import Testing

/// A Swift service of the test's own, made a replica through the SDK: it "serves" on a port
/// (a listening socket), counts requests the test says are in flight, and records what it is told.
final class RecordingService: ReplicaService {
    let port: Int
    private let socketDescriptor: Int32
    private let state = Mutex<(inFlight: Int, stopped: Bool, configs: [JSONValue?])>((0, false, []))
    /// Yields once the worker told the service to stop accepting.
    let acceptingStopped: AsyncStream<Void>
    private let acceptingStoppedContinuation: AsyncStream<Void>.Continuation

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(descriptor, 8)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
        socketDescriptor = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
        (acceptingStopped, acceptingStoppedContinuation) = AsyncStream.makeStream(of: Void.self)
    }

    deinit { close(socketDescriptor) }

    func setInFlight(_ count: Int) { state.withLock { $0.inFlight = count } }
    var configs: [JSONValue?] { state.withLock { $0.configs } }

    var requestsInFlight: Int? { state.withLock { $0.inFlight } }
    func isHealthy() async -> Bool { true }
    func exitStatus() -> String? { state.withLock { $0.stopped } ? "stopped" : nil }
    func userConfigChanged(_ userConfig: JSONValue?) async { state.withLock { $0.configs.append(userConfig) } }
    func stopAccepting() async { acceptingStoppedContinuation.yield() }
    func stop() async { state.withLock { $0.stopped = true } }
    func abandon() {}
}

@Suite(.timeLimit(.minutes(1))) struct WorkerSDK {
    @Test func aSwiftServiceBecomesAReplicaThroughTheSDK() async throws {
        let url = try #require(ProcessInfo.processInfo.environment["SWERVE_TEST_REDIS_URL"], "run the tests with ops/test")
        let keys = try ClusterKeys(cluster: "sdk\(UInt32.random(in: 0...UInt32.max))")
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let redis = try RedisConfiguration(url: url)
        let client = RedisClient(configuration: redis, logger: logger)
        let tag = "svc#1"
        let document = AssignmentDocument(ReplicaAssignment(
            replica: ReplicaReference(tag: tag, backend: "svc", node: "n1"), version: "v9",
            replicaConfig: ReplicaConfig(workload: .builtin(name: "echo")), userConfig: .number(1),
            maxConcurrentQueries: 1, gracefulShutdownWaitLoopS: 0))
        try await client.send("HSET", keys.assignments("n1"), tag, DocumentCodec.encode(document))
        let service = try RecordingService()
        let configuration = WorkerConfiguration(redis: redis, keys: keys, nodeID: "n1", nodeAddress: "127.0.0.1", tag: tag,
                                                controlPollInterval: .milliseconds(200))

        let subscriber = RedisSubscriber(configuration: redis, logger: logger)
        try await subscriber.subscribe(to: [keys.wake]) { subscription in
            var iterator = subscription.makeAsyncIterator()
            #expect(await iterator.next() == .subscribed)
            async let exitCode = Worker.run(configuration, logger: logger) { context in
                #expect(context.assignment.version == "v9")
                return service
            }
            func next() async throws -> WakeUp {
                while let event = await iterator.next() {
                    if case .message(let message) = event { return try DocumentCodec.decode(WakeUp.self, from: message.payload, source: keys.wake) }
                }
                throw TestFailure("subscription ended")
            }
            #expect(try await next() == WakeUp(event: .ready, subject: tag))
            let ready = try DocumentCodec.decode(ReadyRecord.self, from: try #require(try await client.send("GET", keys.ready(tag)).bytes), source: "ready")
            #expect(ready.address.description == "127.0.0.1:\(service.port)")

            // A request is in flight when the drain comes: the worker must wait for it.
            service.setInFlight(1)
            try await client.send("SET", keys.userConfig(tag), DocumentCodec.encode(UserConfigDocument(tag: tag, userConfig: .number(2))))
            try await client.send("SET", keys.drain(tag), DocumentCodec.encode(DrainRequest(tag: tag, deadline: Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000) + 60_000), force: false)))
            try await client.send("PUBLISH", keys.control(tag), DocumentCodec.encode(ControlMessage(event: .drain)))
            var stops = service.acceptingStopped.makeAsyncIterator()
            _ = await stops.next()
            #expect(try await client.send("EXISTS", keys.drained(tag)) == .integer(0), "not drained while a request is in flight")
            service.setInFlight(0)
            #expect(try await next() == WakeUp(event: .drained, subject: tag))
            #expect(try await exitCode == 0)
            #expect(service.configs == [.number(2)])
        }
    }
}
