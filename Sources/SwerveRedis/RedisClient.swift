public import Logging
public import SwerveErrors

/// A Redis client: one connection, owned by a dedicated thread, shared by any number of tasks.
///
/// Guarantees:
/// - No hiredis call ever runs on Swift's cooperative pool; an `await` here suspends the caller
///   and costs one hop to the connection's thread and one back.
/// - Commands are binary-safe argument vectors; replies are Swift values.
/// - Concurrent callers are pipelined together automatically; one call's commands are sent
///   contiguously and in order.
/// - When the server goes away the client reconnects on demand with capped exponential
///   backoff (``ReconnectBackoff``). While the server is known to be away and the next attempt
///   is not due, commands fail at once with ``RedisError/Code/unavailable`` — they never hang.
///   A command that was in flight when the connection broke fails with
///   ``RedisError/Code/connectionLost``: it may or may not have run, so it is never retried
///   behind the caller's back.
/// - After ``close()`` (or when the client is released) queued commands fail with
///   ``RedisError/Code/closed`` and the thread and socket are released.
///
/// Not for blocking commands (`BLPOP`, `XREAD BLOCK`) shared with other callers: they hold
/// the connection. Give those a client of their own and a ``send(_:timeout:)`` timeout longer
/// than their block time.
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    private let queue: CommandQueue
    private let executor: ConnectionExecutor

    /// Creates the client and its thread; the connection opens with the first command.
    public init(configuration: RedisConfiguration, logger: Logger) {
        self.configuration = configuration
        self.queue = CommandQueue()
        self.executor = ConnectionExecutor(queue: queue)
        let worker = CommandThread(executor: executor, configuration: configuration, logger: logger)
        startDedicatedThread(name: "swerve-redis") { worker.run() }
    }

    /// Runs `body` with this connection's thread as its task's preferred executor.
    ///
    /// A loop that talks to Redis one command after another (a control loop, a reader) pays two
    /// thread wake-ups per `await` when it runs on Swift's pool: one to hand the command to the
    /// connection's thread, one to resume. Inside `body` its nonisolated code runs on the
    /// connection's thread itself, between round trips, so those hops disappear (the sequential
    /// benchmark in `ops/bench redis` measures both). Nothing blocking ever runs on the
    /// cooperative pool either way. While `body` computes, this client sends nothing: keep CPU-heavy
    /// work out of it. Child tasks created inside inherit the preference.
    public func withConnectionThread<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> Result
    ) async rethrows -> Result {
        queue.preferenceScopeEntered()
        defer { queue.preferenceScopeLeft() }
        return try await withTaskExecutorPreference(executor, isolation: isolation, operation: body)
    }

    deinit { queue.close() }

    /// Sends one command and returns its reply. An error reply throws ``RedisError/Code/server``.
    @discardableResult
    public func send(_ command: RedisCommand, timeout: Duration? = nil) async throws(RedisError) -> RedisReply {
        let replies = try await submit([command], timeout: timeout)
        return try replies[0].throwingServerError(for: command.name)
    }

    /// `send(RedisCommand(name, arguments…))`.
    @discardableResult
    public func send(_ name: String, _ arguments: any RedisArgumentConvertible...) async throws(RedisError) -> RedisReply {
        try await send(RedisCommand(name, arguments: arguments))
    }

    /// Sends every command in one round trip and returns one reply per command, in order.
    /// Error replies are returned as ``RedisReply/error(_:)`` (the other commands still ran);
    /// only a connection failure throws.
    public func pipeline(_ commands: [RedisCommand], timeout: Duration? = nil) async throws(RedisError) -> [RedisReply] {
        guard !commands.isEmpty else { return [] }
        return try await submit(commands, timeout: timeout)
    }

    /// Runs `commands` as one transaction (`MULTI` … `EXEC`, in one round trip): no other
    /// client's command runs between them. Returns one reply per command; throws
    /// ``RedisError/Code/server`` naming the command when Redis refused one (or the whole
    /// transaction).
    public func transaction(_ commands: [RedisCommand], timeout: Duration? = nil) async throws(RedisError) -> [RedisReply] {
        guard !commands.isEmpty else { return [] }
        let replies = try await submit([RedisCommand("MULTI")] + commands + [RedisCommand("EXEC")], timeout: timeout)
        for (command, reply) in zip([RedisCommand("MULTI")] + commands, replies) {
            if let message = reply.errorMessage { throw RedisError(.server, "Redis refused \(command.name) in a transaction: \(message)") }
        }
        guard let results = replies.last?.array, results.count == commands.count else {
            throw RedisError(.server, "Redis refused the transaction: EXEC answered \(replies.last.map { "\($0)" } ?? "nothing")")
        }
        for (command, reply) in zip(commands, results) {
            if let message = reply.errorMessage { throw RedisError(.server, "Redis refused \(command.name): \(message)") }
        }
        return results
    }

    /// Runs a Lua script by `EVALSHA`, loading it on this connection when needed.
    @discardableResult
    public func run(_ script: RedisScript, keys: [any RedisArgumentConvertible] = [], arguments: [any RedisArgumentConvertible] = []) async throws(RedisError) -> RedisReply {
        try await send(script.command(keys: keys, arguments: arguments))
    }

    /// Fails queued commands with ``RedisError/Code/closed``, closes the connection and ends
    /// its thread. Idempotent.
    public func close() {
        queue.close()
    }

    private func submit(_ commands: [RedisCommand], timeout: Duration?) async throws(RedisError) -> [RedisReply] {
        let result = await withCheckedContinuation { continuation in
            let request = CommandQueue.Request(commands: commands, timeout: timeout, continuation: continuation)
            if !queue.enqueue(request) {
                continuation.resume(returning: .failure(RedisError(.closed, "the Redis client for \(configuration.description) is closed")))
            }
        }
        return try result.get()
    }
}
