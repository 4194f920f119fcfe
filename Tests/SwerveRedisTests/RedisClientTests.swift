import Foundation
import SwerveErrors
@testable import SwerveRedis
import SwerveTestSupport
import Testing

@Suite(.timeLimit(.minutes(1))) struct RedisClientAgainstARealServer {
    @Test func everyReplyTypeDecodes() async throws {
        let client = try TestEnvironment.sharedClient()
        let key = TestEnvironment.uniquePrefix()
        #expect(try await client.send("PING") == .simpleString("PONG"))
        #expect(try await client.send("SET", key + "s", "héllo") == .simpleString("OK"))
        #expect(try await client.send("GET", key + "s") == .bulkString(Array("héllo".utf8)))
        #expect(try await client.send("INCRBY", key + "n", 41) == .integer(41))
        #expect(try await client.send("GET", key + "missing") == .null)
        #expect(try await client.send("RPUSH", key + "l", "a", "b") == .integer(2))
        #expect(try await client.send("LRANGE", key + "l", 0, -1) == .array([.bulkString([97]), .bulkString([98])]))
        let nested = try await client.send("EVAL", "return {1, {'x', 2}, false}", 0)
        #expect(nested == .array([.integer(1), .array([.bulkString([120]), .integer(2)]), .null]))
        let replies = try await client.pipeline([RedisCommand("LPUSH", key + "s", "x")])
        #expect(replies.first?.errorMessage?.hasPrefix("WRONGTYPE") == true)
    }

    @Test func anErrorReplyThrowsAServerErrorNamingTheCommand() async throws {
        let client = try TestEnvironment.sharedClient()
        let key = TestEnvironment.uniquePrefix()
        try await client.send("SET", key, "text")
        await #expect {
            try await client.send("INCR", key)
        } throws: { error in
            let error = error as! RedisError
            return error.code == .server && error.message.contains("INCR") && error.message.contains("not an integer")
        }
        #expect(try await client.send("GET", key).string == "text", "the connection is still usable")
    }

    @Test func valuesAreBinarySafeIncludingNULAndOneMebibyte() async throws {
        let client = try TestEnvironment.sharedClient()
        let key = TestEnvironment.uniquePrefix()
        let withNUL: [UInt8] = [0, 1, 0, 255, 0x0D, 0x0A, 0]
        try await client.send("SET", Array((key + "nul\0key").utf8), withNUL)
        #expect(try await client.send("GET", Array((key + "nul\0key").utf8)) == .bulkString(withNUL))
        #expect(try await client.send("GET", key + "nul") == .null, "the key's NUL byte was not a terminator")

        let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try await client.send("SET", key + "big", big)
        #expect(try await client.send("STRLEN", key + "big") == .integer(1 << 20))
        #expect(try await client.send("GET", key + "big").bytes == big)
    }

    @Test func aThousandCommandPipelineAnswersInOrder() async throws {
        let client = try TestEnvironment.sharedClient()
        let key = TestEnvironment.uniquePrefix()
        let commands = (0..<1000).map { RedisCommand("RPUSH", key, $0) }
        let replies = try await client.pipeline(commands)
        #expect(replies == (1...1000).map { RedisReply.integer(Int64($0)) })
        let stored = try await client.send("LRANGE", key, 0, -1).array?.compactMap(\.integer)
        #expect(stored == (0..<1000).map(Int64.init))
    }

    @Test func concurrentCallersEachGetTheirOwnReplies() async throws {
        let client = try TestEnvironment.sharedClient()
        let key = TestEnvironment.uniquePrefix()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<200 {
                group.addTask {
                    let value = "value-\(task)"
                    try await client.send("SET", key + "\(task)", value)
                    let replies = try await client.pipeline([RedisCommand("GET", key + "\(task)"), RedisCommand("ECHO", value)])
                    #expect(replies == [.bulkString(Array(value.utf8)), .bulkString(Array(value.utf8))])
                }
            }
            try await group.waitForAll()
        }
    }

    @Test func aTransactionSentAsOnePipelineIsNotInterleaved() async throws {
        let client = try TestEnvironment.sharedClient()
        let key = TestEnvironment.uniquePrefix()
        try await withThrowingTaskGroup(of: [RedisReply].self) { group in
            for _ in 0..<20 {
                group.addTask {
                    try await client.pipeline([RedisCommand("MULTI"), RedisCommand("INCR", key), RedisCommand("INCR", key), RedisCommand("EXEC")])
                }
            }
            for try await replies in group {
                guard let exec = replies.last?.array, exec.count == 2, let first = exec[0].integer, let second = exec[1].integer else {
                    Issue.record("bad EXEC reply \(replies)")
                    continue
                }
                #expect(second == first + 1)
            }
        }
    }

    /// On a server of its own: a SCRIPT FLUSH on the shared one lands between other tests'
    /// pipelined scripts (a leader's step), where a script loaded before it answers NOSCRIPT
    /// and a script loaded in the same pipeline runs — a step half applied, seen as a
    /// duplicated event in `InspectionCommands`.
    @Test func aScriptSurvivesScriptFlush() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        defer { server.kill() }
        let client = RedisClient(configuration: try RedisConfiguration(url: server.url), logger: TestEnvironment.logger)
        defer { client.close() }
        let key = TestEnvironment.uniquePrefix()
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        #expect(try await client.run(script, keys: [key], arguments: [5]) == .integer(5))
        #expect(try await client.send("SCRIPT", "EXISTS", script.sha1) == .array([.integer(1)]), "our SHA-1 is the one Redis computed")
        try await client.send("SCRIPT", "FLUSH")
        #expect(try await client.run(script, keys: [key], arguments: [5]) == .integer(10), "reloaded after NOSCRIPT, applied once")
        #expect(try await client.send("GET", key).integer == 10)
    }

    @Test func scriptsRunInsidePipelines() async throws {
        let client = try TestEnvironment.sharedClient()
        let key = TestEnvironment.uniquePrefix()
        let script = RedisScript("redis.call('SET', KEYS[1], ARGV[1]); return ARGV[1] .. '!'")
        let replies = try await client.pipeline([
            script.command(keys: [key + "a"], arguments: ["1"]),
            RedisCommand("GET", key + "a"),
            script.command(keys: [key + "b"], arguments: ["2"]),
        ])
        #expect(replies == [.bulkString(Array("1!".utf8)), .bulkString(Array("1".utf8)), .bulkString(Array("2!".utf8))])
    }

    @Test func aScriptThatDoesNotCompileReportsTheCompileError() async throws {
        let client = try TestEnvironment.sharedClient()
        await #expect {
            try await client.run(RedisScript("this is not lua"))
        } throws: { error in
            (error as! RedisError).message.contains("compiling")
        }
    }

    @Test func blockingCallsDoNotStallTheCooperativePool() async throws {
        // Four clients block their own threads in BLPOP. If any blocking ran on Swift's pool
        // (two threads here), the task that pushes the values could never run and every BLPOP
        // would time out with nil instead.
        let key = TestEnvironment.uniquePrefix()
        let pusher = try TestEnvironment.sharedClient()
        let blocked = try (0..<4).map { _ in try TestEnvironment.sharedClient() }
        try await withThrowingTaskGroup(of: RedisReply.self) { group in
            for client in blocked {
                group.addTask { try await client.send(RedisCommand("BLPOP", key, 20), timeout: .seconds(30)) }
            }
            while try await pusher.send("CLIENT", "LIST", "TYPE", "normal").string.map({ $0.components(separatedBy: "cmd=blpop").count - 1 }) ?? 0 < 4 {
                try await Task.sleep(for: .milliseconds(5))
            }
            try await pusher.send("RPUSH", key, "1", "2", "3", "4")
            var values: [String] = []
            for try await reply in group { values.append(reply.array?.last?.string ?? "timed out") }
            #expect(values.sorted() == ["1", "2", "3", "4"])
        }
    }

    @Test func aSlowReplyTimesOutWithTheConfiguredTimeoutAndTheClientRecovers() async throws {
        var configuration = try RedisConfiguration(url: TestEnvironment.sharedRedisURL())
        configuration.commandTimeout = .milliseconds(200)
        let client = RedisClient(configuration: configuration, logger: TestEnvironment.logger)
        await #expect {
            try await client.send("BLPOP", TestEnvironment.uniquePrefix(), 2)
        } throws: { error in
            let error = error as! RedisError
            return error.code == .timedOut && error.message.contains("timed out after 200 ms")
        }
        #expect(try await client.send("PING") == .simpleString("PONG"), "a fresh connection replaced the timed-out one")
    }

    @Test func withConnectionThreadRunsTheBodyOnTheConnectionsThread() async throws {
        let client = try TestEnvironment.sharedClient()
        let threads = try await client.withConnectionThread {
            var names: [String] = [currentThreadName()]
            for _ in 0..<3 {
                try await client.send("PING")
                names.append(currentThreadName())
            }
            return names
        }
        #expect(threads == ["swerve-redis", "swerve-redis", "swerve-redis", "swerve-redis"])
        #expect(currentThreadName() != "swerve-redis")
    }

    @Test func theServerClosingTheConnectionMidPipelineIsConnectionLostAndTheClientRecovers() async throws {
        // The server closes the connection after the first command while 8 MiB are still being
        // written: the call fails as connectionLost (it may have partly run) and the next
        // command reconnects.
        let client = try TestEnvironment.sharedClient()
        let id = try #require(try await client.send("CLIENT", "ID").integer)
        let big = [UInt8](repeating: 120, count: 8 << 20)
        await #expect {
            try await client.pipeline([RedisCommand("CLIENT", "KILL", "ID", id, "SKIPME", "no"), RedisCommand("SET", TestEnvironment.uniquePrefix(), big)])
        } throws: { ($0 as! RedisError).code == .connectionLost }
        #expect(try await client.send("PING") == .simpleString("PONG"))
    }

    @Test func aLongerTimeoutInTheSameBatchIsNotCutShortByAShorterOne() async throws {
        // Both requests are queued together, so they share one round trip and one socket
        // timeout, which must be the longer: the BLPOP (default 5 s timeout) blocks for 1 s.
        let client = try TestEnvironment.sharedClient()
        let key = TestEnvironment.uniquePrefix()
        try await client.withConnectionThread { () async throws in
            async let blocked = client.send(RedisCommand("BLPOP", key, 1))
            async let quick = client.send(RedisCommand("PING"), timeout: .milliseconds(100))
            #expect(try await blocked == .null)
            #expect(try await quick == .simpleString("PONG"))
        }
    }

    @Test func closeFailsLaterCommands() async throws {
        let client = try TestEnvironment.sharedClient()
        try await client.send("PING")
        client.close()
        await #expect {
            try await client.send("PING")
        } throws: { ($0 as! RedisError).code == .closed }
    }

    @Test func selectsTheDatabaseAndNamesTheClient() async throws {
        var configuration = try RedisConfiguration(url: TestEnvironment.sharedRedisURL() + "/5")
        configuration.clientName = "swerve-test-\(UUID().uuidString.prefix(6))"
        let client = RedisClient(configuration: configuration, logger: TestEnvironment.logger)
        let info = try await client.send("CLIENT", "INFO").string ?? ""
        #expect(info.contains("db=5"))
        #expect(info.contains("name=\(configuration.clientName!)"))
    }
}

@Suite(.timeLimit(.minutes(1))) struct RedisConnectionFailures {
    @Test func aClosedPortFailsWithinTheConnectTimeoutNamingTheAddress() async throws {
        let port = try freeLoopbackPort()
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:\(port)")
        // A refused connect fails at once, not when the timeout ends: a long timeout tells the two
        // apart without timing the refusal itself (a busy 2-core machine once took 3.4 s for it).
        configuration.connectTimeout = .seconds(40)
        configuration.reconnectBackoff = ReconnectBackoff(initial: .seconds(30), maximum: .seconds(30))
        let client = RedisClient(configuration: configuration, logger: TestEnvironment.logger)
        let started = ContinuousClock.now
        await #expect {
            try await client.send("PING")
        } throws: { error in
            let error = error as! RedisError
            return error.code == .connectFailed && error.message == "cannot connect to Redis at 127.0.0.1:\(port): Connection refused"
        }
        #expect(ContinuousClock.now - started < .seconds(40))
        await #expect {
            try await client.send("PING")
        } throws: { error in
            let error = error as! RedisError
            return error.code == .unavailable && error.message.contains("next reconnect attempt")
        }
    }

    @Test func aServerThatNeverAnswersTheConnectTimesOut() async throws {
        // A listener whose backlog is full: the kernel drops further SYNs, so connect() hangs.
        let listener = try LoopbackListener(backlog: 0)
        let fillers = try (0..<4).map { _ -> RedisClient in
            var configuration = try RedisConfiguration(url: "redis://127.0.0.1:\(listener.port)")
            configuration.connectTimeout = .milliseconds(200)
            configuration.commandTimeout = .milliseconds(200)
            return RedisClient(configuration: configuration, logger: TestEnvironment.logger)
        }
        var messages: [String] = []
        for client in fillers {
            do { try await client.send("PING") } catch { messages.append(error.message) }
        }
        #expect(messages.count == 4)
        #expect(messages.contains { $0.contains("(connect timeout 200 ms)") }, "\(messages)")
    }

    @Test func aWrongPasswordSaysAuthenticationFailedAndWhereToFixIt() async throws {
        let server = try RedisServerProcess(extraArguments: ["--requirepass", "right"])
        try await server.start()
        let wrong = RedisClient(configuration: try RedisConfiguration(url: "redis://:wrong@127.0.0.1:\(server.port)"), logger: TestEnvironment.logger)
        await #expect {
            try await wrong.send("PING")
        } throws: { error in
            let error = error as! RedisError
            return error.code == .authenticationFailed && error.message.contains("WRONGPASS") && error.message.contains("SWERVE_REDIS_PASSWORD")
        }
        let none = RedisClient(configuration: try RedisConfiguration(url: server.url), logger: TestEnvironment.logger)
        await #expect {
            try await none.send("PING")
        } throws: { ($0 as! RedisError).message.contains("requires a password") }
        let right = RedisClient(configuration: try RedisConfiguration(url: server.url, environment: ["SWERVE_REDIS_PASSWORD": "right"]), logger: TestEnvironment.logger)
        #expect(try await right.send("PING") == .simpleString("PONG"))
    }

    @Test func anACLUserAuthenticatesWithUsernameAndPassword() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        let admin = RedisClient(configuration: try RedisConfiguration(url: server.url), logger: TestEnvironment.logger)
        try await admin.send("ACL", "SETUSER", "swerve", "on", ">pw", "~swerve:*", "+@all")
        let user = RedisClient(configuration: try RedisConfiguration(url: "redis://swerve:pw@127.0.0.1:\(server.port)"), logger: TestEnvironment.logger)
        #expect(try await user.send("ACL", "WHOAMI").string == "swerve")
        await #expect {
            try await user.send("SET", "elsewhere", "1")
        } throws: { ($0 as! RedisError).message.contains("NOPERM") }
    }

    @Test func connectsOverAUnixSocket() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        let client = RedisClient(configuration: try RedisConfiguration(url: "unix://" + server.socketPath), logger: TestEnvironment.logger)
        #expect(try await client.send("PING") == .simpleString("PONG"))
    }
}

/// The OS name of the calling thread (as set by `Thread.name`), from Linux's /proc.
func currentThreadName() -> String {
    let data = FileManager.default.contents(atPath: "/proc/thread-self/comm") ?? Data()
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}
