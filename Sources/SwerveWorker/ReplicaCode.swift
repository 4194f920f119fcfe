import SwerveCore

/// The code a worker runs for its replica: a built-in handler it serves itself, or a command.
enum ReplicaCode: Sendable {
    case builtin(BuiltinServer)
    case command(CommandCode)

    var port: Int {
        switch self {
        case .builtin(let server): return server.port
        case .command(let command): return command.port
        }
    }

    /// Requests in flight, where the worker can know them (built-ins); a command's program
    /// finishes its own requests when told to stop.
    var inFlight: Int {
        switch self {
        case .builtin(let server): return server.state.inFlight.load(ordering: .relaxed)
        case .command: return 0
        }
    }

    func stopAccepting() async {
        if case .builtin(let server) = self { await server.stopAccepting() }
    }

    var userConfig: JSONValue? {
        get { if case .builtin(let server) = self { server.state.userConfig } else { nil } }
        nonmutating set { if case .builtin(let server) = self { server.state.userConfig = newValue } }
    }
}
