import SwerveRedis

/// Several fenced calls in one script run: one fence check, one script hash and one lease
/// argument for all of them. Alone, each call carries its own (about 80 bytes: most of what a
/// small change writes, when a change makes a dozen calls).
///
/// The batch script holds the body of every named call (``FencedCall/batchable``) as a
/// function and runs the calls in order, each with `KEYS` and `ARGV` as it would see them
/// alone (`KEYS[1]` the lease, `ARGV[1]` its value, then its own), answering their replies in
/// an array. Every key any call touches is declared in the batch's `KEYS`.
///
/// Guarantees: a batch changes nothing unless the lease holds (checked once, before any call);
/// its calls run in order and together, atomically; a batch holds at most ``maximumCalls``
/// calls and, past its first call, about ``maximumBytes`` of arguments, so no batch blocks
/// Redis for long. A call of another script (a test's own) runs alone.
enum FencedBatch {
    static let maximumCalls = 256
    static let maximumBytes = 1 << 20

    /// Each batchable script's position (1-based, as the script's function table has it).
    private static let positions: [FencedScript: Int] = Dictionary(
        FencedCall.batchable.enumerated().map { ($0.element, $0.offset + 1) }, uniquingKeysWith: { first, _ in first })

    /// The batch script: the fence, then every batchable body as a function, then the loop.
    /// ARGV: lease value, n, then for each call (its script's position, its key count, its
    /// argument count), then every call's arguments in order. KEYS: the lease, then every
    /// call's keys in order.
    static let script = RedisScript(LeaseScripts.fencePrologue + "local calls = {}\n"
        + FencedCall.batchable.enumerated().map { "calls[\($0.offset + 1)] = function(KEYS, ARGV)\n\($0.element.body)\nend\n" }.joined()
        + """
        local n = tonumber(ARGV[2])
        local k = 2
        local a = 3 + 3 * n
        local replies = {}
        for i = 1, n do
            local h = 3 * i
            local which, nk, na = tonumber(ARGV[h]), tonumber(ARGV[h + 1]), tonumber(ARGV[h + 2])
            local keys, args = {KEYS[1]}, {ARGV[1]}
            for j = 0, nk - 1 do keys[j + 2] = KEYS[k + j] end
            for j = 0, na - 1 do args[j + 2] = ARGV[a + j] end
            k, a = k + nk, a + na
            replies[i] = calls[which](keys, args)
        end
        return replies
        """)

    /// One command of a round of writes and the calls it carries (positions in the round).
    struct Command {
        var command: RedisCommand
        var calls: Range<Int>
        var batched: Bool
        /// Bytes of the command's arguments by call name (`batch` for a batch's own: its hash,
        /// lease and counts).
        var bytes: [(call: String, count: Int)]
    }

    /// `calls` as commands, in order: runs of batchable calls as batches, others alone.
    static func commands(_ calls: [FencedCall], lease: String, leaseValue: String) -> [Command] {
        var commands: [Command] = []
        var start = 0
        while start < calls.count {
            guard let first = positions[calls[start].script] else {
                let command = calls[start].command(lease: lease, leaseValue: leaseValue)
                commands.append(Command(command: command, calls: start..<(start + 1), batched: false,
                                        bytes: [(calls[start].name, command.arguments.reduce(0) { $0 + $1.count })]))
                start += 1
                continue
            }
            var end = start
            var size = 0
            var headers: [any RedisArgumentConvertible] = []
            var keys: [any RedisArgumentConvertible] = [lease]
            var arguments: [any RedisArgumentConvertible] = []
            var bytes: [(call: String, count: Int)] = []
            while end < calls.count, end - start < maximumCalls, end == start || size < maximumBytes,
                  let position = end == start ? first : positions[calls[end].script] {
                let call = calls[end]
                headers += [position, call.keys.count, call.arguments.count]
                keys += call.keys
                arguments += call.arguments
                let count = call.keys.reduce(0) { $0 + $1.utf8.count } + call.arguments.reduce(0) { $0 + $1.redisArgument.count }
                    + String(position).utf8.count + String(call.keys.count).utf8.count + String(call.arguments.count).utf8.count
                bytes.append((call.name, count))
                size += count
                end += 1
            }
            let command = script.command(keys: keys, arguments: [leaseValue, end - start] + headers + arguments)
            let total = command.arguments.reduce(0) { $0 + $1.count }
            bytes.append(("batch", total - size))
            commands.append(Command(command: command, calls: start..<end, batched: true, bytes: bytes))
            start = end
        }
        return commands
    }

    /// One reply per call of `command`: a batch's array split up, or its refusal (a fence, an
    /// error part-way) given to every call it carried.
    static func replies(of command: Command, _ reply: RedisReply) -> [RedisReply] {
        guard command.batched else { return [reply] }
        if reply.errorMessage != nil { return Array(repeating: reply, count: command.calls.count) }
        guard let replies = reply.array, replies.count == command.calls.count else {
            return Array(repeating: .error("the batch of \(command.calls.count) fenced calls answered \(reply)"), count: command.calls.count)
        }
        return replies
    }
}
