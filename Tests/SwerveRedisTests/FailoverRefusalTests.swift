import SwerveErrors
import SwerveRedis
import Testing

/// Error replies a server gives instead of running a command while its store fails over are
/// "try again" (`.unavailable`); every other error reply stays a `.server` error.
@Suite struct FailoverRefusals {
    @Test(arguments: [
        "NOREPLICAS Not enough good replicas to write.",
        "READONLY You can't write against a read only replica.",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "LOADING Redis is loading the dataset in memory",
        "TRYAGAIN Multiple keys request during rehashing of slot",
    ])
    func aRefusalDuringAFailoverIsUnavailableAndSaysItDidNothing(message: String) {
        let reply = RedisReply.error(message)
        #expect(reply.isRefusalUntilFailoverEnds)
        #expect {
            try reply.throwingServerError(for: "XADD")
        } throws: { error in
            guard let error = error as? RedisError else { return false }
            return error.code == .unavailable && error.message.contains("XADD") && error.message.contains(message) && error.message.contains("did nothing")
        }
    }

    @Test(arguments: ["WRONGTYPE Operation against a key holding the wrong kind of value", "NOPERM this user has no permissions",
                      "ERR unknown command", "NOREPLICASX lookalike", "FENCED the lease is held by c2"])
    func anyOtherErrorReplyIsAServerError(message: String) {
        let reply = RedisReply.error(message)
        #expect(!reply.isRefusalUntilFailoverEnds)
        #expect {
            try reply.throwingServerError(for: "SET")
        } throws: { error in
            (error as? RedisError)?.code == .server
        }
        #expect(!RedisReply.simpleString("NOREPLICAS").isRefusalUntilFailoverEnds, "only error replies")
    }
}
