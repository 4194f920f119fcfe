import SwerveRedis
import Testing

@Suite struct TimeReplies {
    @Test func aTimeReplyIsReadAsUnixMillisecondsAndAnythingElseIsNot() {
        let time = RedisReply.array([.bulkString(Array("1700000000".utf8)), .bulkString(Array("123999".utf8))])
        #expect(time.timeMilliseconds == 1_700_000_000_123)
        #expect(RedisReply.array([.bulkString(Array("1700000000".utf8))]).timeMilliseconds == nil)
        #expect(RedisReply.array([.bulkString(Array("x".utf8)), .bulkString(Array("1".utf8))]).timeMilliseconds == nil)
        #expect(RedisReply.null.timeMilliseconds == nil)
    }
}
