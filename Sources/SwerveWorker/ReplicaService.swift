import Glibc
public import Logging
public import SwerveCore
public import SwerveProtocol
import Synchronization

/// A replica's code as `swerve worker` drives it — the Swift worker SDK.
///
/// Conform a Swift service to this protocol and call ``Worker/run(_:logger:service:)``: the
/// worker speaks the whole protocol for it (ready key and heartbeat, wake-ups, drain with the
/// wait loop, user-config updates, exit when its node agent dies). The built-in handlers and
/// command replicas are the two conformances Swerve ships.
public protocol ReplicaService: Sendable {
    /// The port it serves on, on the worker's node address.
    var port: Int { get }
    /// Requests in flight, when the service counts them; nil when it finishes its own requests
    /// once told to stop (the worker then does not wait for them).
    var requestsInFlight: Int? { get }
    /// Whether it serves right now. Probed every second while ready; while false the ready key
    /// is not renewed, so the leader replaces the replica if it stays unhealthy.
    func isHealthy() async -> Bool
    /// Why it stopped, once it has stopped (after ``stop()``, or on its own); nil while it runs.
    func exitStatus() -> String?
    /// A new user config, to apply without restarting.
    func userConfigChanged(_ userConfig: JSONValue?) async
    /// Refuse new connections from now on (the drain's wait loop is over).
    func stopAccepting() async
    /// Begin stopping; ``exitStatus()`` becomes non-nil once it has.
    func stop() async
    /// The worker is exiting abnormally (its node agent is gone): release everything now.
    func abandon()
}

/// What a ``ReplicaService`` is started with.
public struct ReplicaContext: Sendable {
    public var assignment: AssignmentDocument
    /// The host to bind (the node's address).
    public var host: String
    public var tag: String
    /// Call when a request finishes, so a drain notices the last one at once (optional: the
    /// worker also checks every 100 ms).
    public var requestFinished: @Sendable () -> Void
    /// The worker's logger, with the replica's tag as metadata.
    public var logger: Logger
}

extension BuiltinServer: ReplicaService {
    var requestsInFlight: Int? { state.inFlight.load(ordering: .relaxed) }
    func isHealthy() async -> Bool { true }
    func exitStatus() -> String? { state.stopped ? "stopped" : nil }
    func userConfigChanged(_ userConfig: JSONValue?) async { state.userConfig = userConfig }
    func stop() async { state.stopped = true }
    func abandon() {}
}

extension CommandCode: ReplicaService {
    var requestsInFlight: Int? { nil }
    func isHealthy() async -> Bool { await probe() }
    func exitStatus() -> String? {
        let status = exited()
        if status != nil { cleanUp() }
        return status
    }
    func userConfigChanged(_ userConfig: JSONValue?) async { try? updateUserConfig(userConfig) }
    func stopAccepting() async {}
    func stop() async { terminate() }
    func abandon() {
        kill(pid, SIGKILL)
        cleanUp()
    }
}
