import CHiredis
import FoundationEssentials
import Glibc
import SwerveErrors
import Synchronization

/// The sentinels' last answer for one connection, and whether a question is out. Shared with the
/// thread that asks.
private final class MasterCheck: Sendable {
    private let state = Mutex<(asking: Bool, answer: RedisEndpoint?)>((false, nil))

    var lastAnswer: RedisEndpoint? { state.withLock { $0.answer } }

    /// True (and marked) when no question is out.
    func begin() -> Bool {
        state.withLock { state in
            guard !state.asking else { return false }
            state.asking = true
            return true
        }
    }

    func finish(_ answer: RedisEndpoint?) {
        state.withLock { state in
            state.asking = false
            if let answer { state.answer = answer }
        }
    }
}

/// One hiredis connection, confined to the thread that opened it.
///
/// This is the only type that touches hiredis. Its C pointers never leave it: every reply is
/// copied into a ``RedisReply`` as it is read, and every C error becomes a ``RedisError`` in
/// ``connectionError(_:)``. It is deliberately not `Sendable`: each instance is created,
/// used and freed by one dedicated thread (``CommandThread`` or ``SubscriptionThread``),
/// never by Swift's cooperative pool, because every call here may block.
final class HiredisConnection {
    private let context: UnsafeMutablePointer<redisContext>
    private let configuration: RedisConfiguration
    /// The server this connection reaches (with Sentinels: the master they named).
    let endpoint: RedisEndpoint
    /// With Sentinels: when they were last asked whether the master is still this one, and
    /// what the last answer was.
    private var masterCheckedAt = ContinuousClock.now
    private let masterCheck = MasterCheck()
    private var currentTimeout: Duration
    /// Scripts loaded on this connection (by SHA-1); a new connection starts with none.
    private var loadedScripts: Set<String> = []

    /// The socket, for `poll()`.
    var fileDescriptor: Int32 { context.pointee.fd }

    private init(context: UnsafeMutablePointer<redisContext>, configuration: RedisConfiguration, endpoint: RedisEndpoint) {
        self.context = context
        self.configuration = configuration
        self.endpoint = endpoint
        self.currentTimeout = configuration.commandTimeout
    }

    deinit { redisFree(context) }

    /// Connects within the connect timeout, then authenticates, selects the database, names
    /// the client and checks with `PING` that the server answers — all in one round trip. With
    /// Sentinels, asks them for the master first, and checks with `ROLE` that it is one.
    static func open(_ configuration: RedisConfiguration) throws(RedisError) -> HiredisConnection {
        let endpoint: RedisEndpoint
        if case .sentinel(let sentinels) = configuration.endpoint {
            endpoint = try SentinelDiscovery.master(of: sentinels, configuration: configuration)
        } else {
            endpoint = configuration.endpoint
        }
        let (seconds, microseconds) = configuration.connectTimeout.timeval
        let connectTimeout = timeval(tv_sec: seconds, tv_usec: microseconds)
        let raw: UnsafeMutablePointer<redisContext>?
        switch endpoint {
        case .tcp(let host, let port):
            raw = redisConnectWithTimeout(host, Int32(port), connectTimeout)
        case .unix(let path):
            raw = redisConnectUnixWithTimeout(path, connectTimeout)
        case .sentinel:
            throw RedisError(.connectFailed, "the sentinels named another sentinel set as the master") // resolved above: never
        }
        guard let raw else {
            throw RedisError(.connectFailed, "cannot connect to Redis at \(endpoint): out of memory")
        }
        if raw.pointee.err != 0 {
            let reason = errorText(raw)
            let timedOut = reason.lowercased().contains("timed out") || reason.contains("in progress")
            redisFree(raw)
            throw RedisError(.connectFailed, "cannot connect to Redis at \(endpoint): \(reason)"
                + (timedOut ? " (connect timeout \(configuration.connectTimeout.milliseconds) ms)" : ""))
        }
        let connection = HiredisConnection(context: raw, configuration: configuration, endpoint: endpoint)
        let (commandSeconds, commandMicroseconds) = configuration.commandTimeout.timeval
        _ = redisSetTimeout(raw, timeval(tv_sec: commandSeconds, tv_usec: commandMicroseconds))
        if case .tcp = endpoint { _ = redisEnableKeepAlive(raw) }
        try connection.handshake()
        return connection
    }

    /// With Sentinels, true when they named another server as the master at their last answer
    /// (a failover while this one still answers). They are asked at most every
    /// ``RedisConfiguration/masterCheckInterval``, on a thread of its own: the caller never
    /// waits on a sentinel (an unreachable one costs a connect timeout), it sees the answer at
    /// its next call. No answer means no news: the connection's own errors will tell.
    func masterMoved(now: ContinuousClock.Instant) -> Bool {
        guard case .sentinel(let sentinels) = configuration.endpoint else { return false }
        if let named = masterCheck.lastAnswer, named != endpoint { return true }
        if now - masterCheckedAt >= configuration.masterCheckInterval, masterCheck.begin() {
            masterCheckedAt = now
            let (check, configuration) = (masterCheck, configuration)
            startDedicatedThread(name: "swerve-sentinel") { check.finish(try? SentinelDiscovery.master(of: sentinels, configuration: configuration)) }
        }
        return false
    }

    private func handshake() throws(RedisError) {
        var commands: [RedisCommand] = []
        if let password = configuration.password {
            if let username = configuration.username {
                commands.append(RedisCommand("AUTH", username, password))
            } else {
                commands.append(RedisCommand("AUTH", password))
            }
        }
        if configuration.database != 0 { commands.append(RedisCommand("SELECT", configuration.database)) }
        if let name = configuration.clientName { commands.append(RedisCommand("CLIENT", "SETNAME", name)) }
        commands.append(RedisCommand("PING"))
        // The sentinels may name a master that was just demoted: writes would answer READONLY.
        let checksRole = if case .sentinel = configuration.endpoint { true } else { false }
        if checksRole { commands.append(RedisCommand("ROLE")) }

        let (replies, error) = execute(commands)
        if let error {
            throw RedisError(.connectFailed, "cannot connect to Redis at \(endpoint): \(error.message)")
        }
        for (command, reply) in zip(commands, replies) {
            guard let message = reply.errorMessage else { continue }
            switch command.name {
            case "AUTH":
                let who = configuration.username.map { "user \"\($0)\"" } ?? "the default user"
                throw RedisError(.authenticationFailed, "authentication to Redis at \(endpoint) as \(who) failed: \(message) — check the user (the URL or \(RedisConfiguration.userVariable)) and the password (the URL, \(RedisConfiguration.passwordVariable) or \(RedisConfiguration.passwordFileVariable))")
            case "SELECT":
                throw RedisError(.authenticationFailed, "Redis at \(endpoint) refused database \(configuration.database): \(message)")
            case "PING" where message.hasPrefix("NOAUTH"):
                throw RedisError(.authenticationFailed, "Redis at \(endpoint) requires a password: put it in the URL, \(RedisConfiguration.passwordVariable) or \(RedisConfiguration.passwordFileVariable)")
            default:
                throw RedisError(.connectFailed, "Redis at \(endpoint) is not ready: \(command.name) answered \(message)")
            }
        }
        if checksRole, let role = replies.last?.array?.first?.string, role != "master" {
            throw RedisError(.connectFailed, "Redis at \(endpoint), which the sentinels named \(configuration.endpoint), is a \(role), not a master: a failover is under way")
        }
    }

    /// True when the server closed or broke this idle connection (it is readable or hung up
    /// although no command is outstanding). Checked before reusing a connection so that the
    /// first command after a server restart reconnects instead of failing.
    func isBroken() -> Bool {
        var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, 0)
        return ready != 0
    }

    /// Writes every command, then reads every reply, in one round trip.
    ///
    /// Scripts this connection has not loaded are loaded first in the same round trip. Returns
    /// the replies read (one per command, in order) and, if the connection failed part-way, the
    /// error; after an error this connection must be discarded.
    func execute(_ commands: [RedisCommand], timeout: Duration? = nil) -> (replies: [RedisReply], error: RedisError?) {
        if let error = applyTimeout(timeout ?? configuration.commandTimeout) { return ([], error) }

        // What each reply read belongs to: a command's index, or a script load to check.
        enum Slot { case command(Int), scriptLoad(String) }
        var slots: [Slot] = []
        slots.reserveCapacity(commands.count)
        var loadingNow: Set<String> = []
        for (index, command) in commands.enumerated() {
            if let script = command.script, !loadedScripts.contains(script.sha1), !loadingNow.contains(script.sha1) {
                loadingNow.insert(script.sha1)
                guard append(RedisCommand("SCRIPT", "LOAD", script.source).arguments) else { return ([], connectionError("sending SCRIPT LOAD")) }
                slots.append(.scriptLoad(script.sha1))
            }
            guard append(command.arguments) else { return ([], connectionError("sending \(command.name)")) }
            slots.append(.command(index))
        }

        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        var loadFailures: [String: String] = [:]
        for slot in slots {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
                return (replies, connectionError("waiting for a reply"))
            }
            let reply = Self.convert(raw.assumingMemoryBound(to: redisReply.self))
            freeReplyObject(raw)
            switch slot {
            case .scriptLoad(let sha):
                if let message = reply.errorMessage { loadFailures[sha] = message } else { loadedScripts.insert(sha) }
            case .command(let index):
                if let script = commands[index].script, let message = reply.errorMessage, message.hasPrefix("NOSCRIPT") {
                    loadedScripts.remove(script.sha1)
                    if let failure = loadFailures[script.sha1] {
                        replies.append(.error(failure))
                        continue
                    }
                }
                replies.append(reply)
            }
        }
        return (replies, nil)
    }

    /// Queues a command in hiredis's output buffer (no I/O). Used by subscribers, with ``flush()``.
    func append(_ arguments: [[UInt8]]) -> Bool {
        var total = 0
        for argument in arguments { total += argument.count }
        var flat: [UInt8] = []
        flat.reserveCapacity(max(total, 1))
        var lengths: [Int] = []
        lengths.reserveCapacity(arguments.count)
        for argument in arguments {
            flat.append(contentsOf: argument)
            lengths.append(argument.count)
        }
        if flat.isEmpty { flat.append(0) }
        return flat.withUnsafeBufferPointer { bytes in
            withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: arguments.count) { argv in
                let base = UnsafeRawPointer(bytes.baseAddress!)
                var offset = 0
                for (index, length) in lengths.enumerated() {
                    argv[index] = (base + offset).assumingMemoryBound(to: CChar.self)
                    offset += length
                }
                return lengths.withUnsafeBufferPointer { lengthPointer in
                    redisAppendCommandArgv(context, Int32(arguments.count), argv.baseAddress, lengthPointer.baseAddress) == REDIS_OK
                }
            }
        }
    }

    /// Writes hiredis's whole output buffer.
    func flush() throws(RedisError) {
        var done: Int32 = 0
        repeat {
            guard redisBufferWrite(context, &done) == REDIS_OK else { throw connectionError("sending") }
        } while done == 0
    }

    /// Reads what the socket holds (call only when `poll()` says it is readable, so it does not
    /// block) and returns every complete reply.
    func readAvailable() throws(RedisError) -> [RedisReply] {
        guard redisBufferRead(context) == REDIS_OK else { throw connectionError("reading") }
        var replies: [RedisReply] = []
        while true {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReplyFromReader(context, &raw) == REDIS_OK else { throw connectionError("decoding a reply") }
            guard let raw else { return replies }
            replies.append(Self.convert(raw.assumingMemoryBound(to: redisReply.self)))
            freeReplyObject(raw)
        }
    }

    private func applyTimeout(_ timeout: Duration) -> RedisError? {
        guard timeout != currentTimeout else { return nil }
        let (seconds, microseconds) = timeout.timeval
        guard redisSetTimeout(context, timeval(tv_sec: seconds, tv_usec: microseconds)) == REDIS_OK else {
            return connectionError("setting the command timeout")
        }
        currentTimeout = timeout
        return nil
    }

    /// The one place a hiredis error becomes a Swift error.
    private func connectionError(_ doing: String) -> RedisError {
        let code = errno
        let reason = Self.errorText(context)
        if context.pointee.err == REDIS_ERR_IO && (code == EAGAIN || code == EWOULDBLOCK || reason.contains("temporarily unavailable")) {
            return RedisError(.timedOut, "Redis at \(endpoint) timed out after \(currentTimeout.milliseconds) ms \(doing); the connection was dropped")
        }
        if context.pointee.err == REDIS_ERR_EOF {
            return RedisError(.connectionLost, "connection to Redis at \(endpoint) lost while \(doing): the server closed it")
        }
        return RedisError(.connectionLost, "connection to Redis at \(endpoint) lost while \(doing): \(reason)")
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            let end = bytes.firstIndex(of: 0) ?? bytes.count
            return String(decoding: bytes[..<end], as: UTF8.self)
        }
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STRING:
            guard let str = value.str else { return .bulkString([]) }
            return .bulkString(Array(UnsafeRawBufferPointer(start: str, count: value.len)))
        case REDIS_REPLY_STATUS:
            return .simpleString(text(value.str, value.len))
        case REDIS_REPLY_ERROR:
            return .error(text(value.str, value.len))
        case REDIS_REPLY_INTEGER:
            return .integer(value.integer)
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            elements.reserveCapacity(value.elements)
            for index in 0..<value.elements {
                if let element = value.element[index] { elements.append(convert(element)) }
            }
            return .array(elements)
        default:
            return .null
        }
    }

    private static func text(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> String {
        guard let pointer else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }
}
