import SwerveErrors
@testable import SwerveRedis
import SwerveTestSupport
import Testing

@Suite struct RedisURLParsing {
    @Test func hostPortAndDatabase() throws {
        let url = try RedisURL.parse("redis://10.0.0.5:6380/3")
        #expect(url == RedisURL(endpoint: .tcp(host: "10.0.0.5", port: 6380), username: nil, password: nil, database: 3))
    }

    @Test func defaultsPortTo6379AndDatabaseTo0() throws {
        let url = try RedisURL.parse("redis://localhost")
        #expect(url.endpoint == .tcp(host: "localhost", port: 6379))
        #expect(url.database == 0)
    }

    @Test func userAndPercentEncodedPassword() throws {
        let url = try RedisURL.parse("redis://swerve:p%40ss%3Aword@127.0.0.1:6379")
        #expect(url.username == "swerve")
        #expect(url.password == "p@ss:word")
    }

    @Test func passwordAloneMeansTheDefaultUser() throws {
        let url = try RedisURL.parse("redis://:secret@127.0.0.1")
        #expect(url.username == nil)
        #expect(url.password == "secret")
    }

    @Test func ipv6Host() throws {
        #expect(try RedisURL.parse("redis://[::1]:7000").endpoint == .tcp(host: "::1", port: 7000))
    }

    @Test func sentinelsTheirDefaultPortAndTheMasterName() throws {
        let url = try RedisURL.parse("redis-sentinel://swerve:s%40cret@10.0.0.1:26380,10.0.0.2,[::1]:26381/2#prod-main")
        #expect(url.endpoint == .sentinel(RedisSentinels(addresses: [
            .init(host: "10.0.0.1", port: 26380), .init(host: "10.0.0.2", port: 26379), .init(host: "::1", port: 26381),
        ], master: "prod-main")))
        #expect(url.username == "swerve" && url.password == "s@cret" && url.database == 2, "the credentials and database are the master's")
    }

    @Test(arguments: [
        ("redis-sentinel://10.0.0.1:26379", "a Sentinel URL names its master after #"),
        ("redis-sentinel://10.0.0.1:26379#", "the master name after # must be non-empty"),
        ("redis-sentinel://10.0.0.1:26379,#main", "missing host"),
        ("redis-sentinel://10.0.0.1:99999#main", "port 99999 is out of range"),
        ("redis://10.0.0.1#main", "a # (a Sentinel master name) belongs in a redis-sentinel:// URL"),
    ])
    func badSentinelURLsSayWhatIsWrong(url: String, problem: String) {
        #expect {
            _ = try RedisURL.parse(url)
        } throws: { error in
            (error as? RedisError)?.message.contains(problem) == true
        }
    }

    @Test func sentinelCredentialsComeFromTheirOwnVariables() throws {
        let configuration = try RedisConfiguration(url: "redis-sentinel://127.0.0.1#main", environment: [
            "SWERVE_REDIS_PASSWORD": "for-redis", "SWERVE_SENTINEL_USER": "watcher", "SWERVE_SENTINEL_PASSWORD_FILE": "/run/secrets/sentinel",
        ], readFile: { path in path == "/run/secrets/sentinel" ? Array("for-sentinels\n".utf8) : [] })
        #expect(configuration.password == "for-redis")
        guard case .sentinel(let sentinels) = configuration.endpoint else { throw TestFailure("not a Sentinel endpoint") }
        #expect(sentinels.username == "watcher" && sentinels.password == "for-sentinels")
        #expect(!configuration.description.contains("for-"), "no password in what is logged")
    }

    @Test func unixSocketWithDatabase() throws {
        let url = try RedisURL.parse("unix:///run/redis/redis.sock?db=2")
        #expect(url.endpoint == .unix(path: "/run/redis/redis.sock"))
        #expect(url.database == 2)
    }

    @Test(arguments: [
        ("127.0.0.1:6379", "missing scheme"),
        ("http://127.0.0.1", "unknown scheme"),
        ("rediss://127.0.0.1", "no TLS"),
        ("redis://127.0.0.1:abc", "port \"abc\" is not a number"),
        ("redis://127.0.0.1:70000", "out of range"),
        ("redis://127.0.0.1/x", "database \"x\""),
        ("redis://:6379", "missing host"),
        ("unix://relative.sock", "must be absolute"),
        ("redis://127.0.0.1?timeout=3", "unknown query parameter"),
    ])
    func invalidURLsNameTheProblem(url: String, expected: String) {
        #expect {
            try RedisURL.parse(url)
        } throws: { error in
            let error = error as! RedisError
            return error.code == .invalidConfiguration && error.message.contains(expected) && error.message.contains("expected redis://")
        }
    }

    @Test func errorsNeverShowThePassword() {
        #expect {
            try RedisURL.parse("redis://user:hunter2@host:notaport")
        } throws: { error in
            !(error as! RedisError).message.contains("hunter2")
        }
    }
}

@Suite struct PasswordSources {
    private func noFile(_ path: String) throws -> [UInt8] { throw TestFailure("unexpected read of \(path)") }

    @Test func urlPasswordWinsOverTheEnvironment() throws {
        let configuration = try RedisConfiguration(url: "redis://:fromurl@h", environment: ["SWERVE_REDIS_PASSWORD": "fromenv"], readFile: noFile)
        #expect(configuration.password == "fromurl")
    }

    @Test func passwordFromTheEnvironment() throws {
        let configuration = try RedisConfiguration(url: "redis://h", environment: ["SWERVE_REDIS_PASSWORD": "fromenv"], readFile: noFile)
        #expect(configuration.password == "fromenv")
    }

    @Test func passwordFromAFileLosesItsTrailingNewline() throws {
        let configuration = try RedisConfiguration(url: "redis://h", environment: ["SWERVE_REDIS_PASSWORD_FILE": "/run/secrets/redis"]) { path in
            #expect(path == "/run/secrets/redis")
            return Array("s3cret\n".utf8)
        }
        #expect(configuration.password == "s3cret")
    }

    @Test func theUserComesFromTheURLElseTheEnvironment() throws {
        let fromEnvironment = try RedisConfiguration(url: "redis://h", environment: ["SWERVE_REDIS_USER": "swerve-node", "SWERVE_REDIS_PASSWORD": "p"], readFile: noFile)
        #expect(fromEnvironment.username == "swerve-node")
        let fromURL = try RedisConfiguration(url: "redis://app:p@h", environment: ["SWERVE_REDIS_USER": "swerve-node"], readFile: noFile)
        #expect(fromURL.username == "app")
    }

    @Test func aUserWithoutAPasswordIsAnErrorRatherThanTheDefaultUser() {
        #expect {
            try RedisConfiguration(url: "redis://h", environment: ["SWERVE_REDIS_USER": "swerve-node"], readFile: noFile)
        } throws: { ($0 as! RedisError).message.contains("\"swerve-node\"") && ($0 as! RedisError).message.contains("SWERVE_REDIS_PASSWORD_FILE") }
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis://app@h", readFile: noFile) }
    }

    @Test func bothSourcesAtOnceIsAnError() {
        #expect(throws: RedisError.self) {
            try RedisConfiguration(url: "redis://h", environment: ["SWERVE_REDIS_PASSWORD": "a", "SWERVE_REDIS_PASSWORD_FILE": "/f"], readFile: noFile)
        }
    }

    @Test func anUnreadableOrEmptyFileIsAnErrorNamingTheVariable() {
        #expect {
            try RedisConfiguration(url: "redis://h", environment: ["SWERVE_REDIS_PASSWORD_FILE": "/nope"], readFile: RedisConfiguration.readWholeFile)
        } throws: { ($0 as! RedisError).message.contains("SWERVE_REDIS_PASSWORD_FILE") && ($0 as! RedisError).message.contains("/nope") }
        #expect {
            try RedisConfiguration(url: "redis://h", environment: ["SWERVE_REDIS_PASSWORD_FILE": "/empty"]) { _ in [] }
        } throws: { ($0 as! RedisError).message.contains("is empty") }
    }

    @Test func descriptionHidesThePassword() throws {
        let configuration = try RedisConfiguration(url: "redis://app:hunter2@h:1/4")
        #expect(configuration.description == "app@h:1/4 (with password)")
    }
}

@Suite struct StreamReplies {
    @Test func entriesAreReadFromRangeAndReadReplies() {
        let entry = RedisReply.array([.bulkString(Array("1-0".utf8)), .array([.bulkString(Array("a".utf8)), .bulkString(Array("x".utf8)), .bulkString(Array("b".utf8)), .bulkString([])])])
        let odd = RedisReply.array([.bulkString(Array("2-0".utf8))])
        #expect(RedisReply.array([entry, odd]).streamEntries == [RedisStreamEntry(id: "1-0", fields: ["a": Array("x".utf8), "b": []])])
        let read = RedisReply.array([.array([.bulkString(Array("other".utf8)), .array([entry])]), .array([.bulkString(Array("s".utf8)), .array([entry])])])
        #expect(read.streamEntries(readFrom: "s").map(\.id) == ["1-0"])
        #expect(RedisReply.null.streamEntries(readFrom: "s").isEmpty, "XREAD timed out")
    }
}
