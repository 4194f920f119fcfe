/// A Lua script as a value: its source and the SHA-1 that Redis names it by.
///
/// Run it with ``RedisClient/run(_:keys:arguments:)`` or put ``command(keys:arguments:)``
/// in a pipeline. The client sends `EVALSHA`; on each connection it loads the script
/// (`SCRIPT LOAD`, in the same round trip) before its first use, and when Redis answers
/// `NOSCRIPT` (after a `SCRIPT FLUSH` or a restart) it loads it again and retries once —
/// safe, because a `NOSCRIPT` reply means the script did not run.
public struct RedisScript: Sendable, Hashable {
    public let source: String
    /// The script's SHA-1 in lowercase hex, as `SCRIPT LOAD` returns it.
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        self.sha1 = sha1Hex(Array(source.utf8))
    }

    /// `EVALSHA sha1 numkeys keys… arguments…`, marked so the connection loads it on demand.
    public func command(keys: [any RedisArgumentConvertible] = [], arguments: [any RedisArgumentConvertible] = []) -> RedisCommand {
        var command = RedisCommand("EVALSHA", arguments: [sha1, keys.count] + keys + arguments)
        command.script = self
        return command
    }
}
