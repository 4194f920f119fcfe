import Foundation
import Glibc
import SwerveClient
import SwerveCore
import SwerveLauncher
import SwerveProtocol
import SwerveRedis

/// Finds the chaos harness's victims through what the cluster records in Redis — the leader
/// record, node records, the checkpoint's worker pids, Redis's own INFO — so the same faults
/// work on a cluster the harness started and on one it attached to. Pids are signalled on this
/// host: a record from another host is refused.
struct Victims {
    let client: ClusterClient
    let redis: RedisClient

    /// The leading controller (as the leader watch reports elections) and its pid.
    func leader() async throws -> (LeaderWatch.Election, Int32) {
        guard let leader = try await client.leader() else { throw LauncherError("no controller leads") }
        guard leader.host == ProcessInfo.processInfo.hostName else {
            throw LauncherError("the leader \(leader.id) runs on \(leader.host), not here: run the chaos harness on the cluster's host")
        }
        return (LeaderWatch.Election(epoch: leader.epoch, id: leader.id, at: .now), leader.pid)
    }

    /// A random RUNNING replica's worker: its tag and pid.
    func worker() async throws -> (String, Int32)? {
        let running = try await client.checkpoint().backends.flatMap(\.replicas).filter { $0.state == .running }
        return running.compactMap { replica in replica.endpoint?.pid.map { (replica.tag, $0) } }.randomElement()
    }

    /// A random live node agent: its id and pid.
    func node() async throws -> (String, Int32)? {
        try await client.nodes().compactMap { listing in listing.record.map { (listing.id, $0.pid) } }.randomElement()
    }

    /// The Redis server's pid, from `INFO server`.
    func redisPID() async throws -> Int32 {
        let info = try await redis.send("INFO", "server").string ?? ""
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("process_id:") }),
              let pid = Int32(line.dropFirst("process_id:".count)) else { throw LauncherError("Redis's INFO has no process_id") }
        return pid
    }

    /// Waits until Redis answers again, as a process other than `previous` (30 s at most).
    func awaitRedis(otherThan previous: Int32) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let pid = try? await redisPID(), pid != previous { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw LauncherError("Redis did not come back within 30 s of its restart")
    }

    /// Waits until Redis takes a write (a promoted master may refuse them until a replica
    /// follows it: `min-replicas-to-write`), 30 s at most.
    func awaitWritable() async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if (try? await redis.send("SET", "swerve-chaos:probe", "1", "PX", 1000))?.string == "OK" { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw LauncherError("Redis took no write within 30 s of a failover")
    }

    /// How many keys Redis holds, how many of them are goal outcomes (kept a day, so they grow
    /// with the requests a run submits, and only until they expire), and the memory it uses
    /// (`DBSIZE`, a `SCAN` of the goal keys, `INFO memory`'s `used_memory`): the keys but goals
    /// must not grow with a run's length.
    func redisFootprint(keys clusterKeys: ClusterKeys) async throws -> (keys: Int, goals: Int, memory: Int) {
        let keys = Int(try await redis.send("DBSIZE").integer ?? 0)
        var goals = 0
        var cursor = "0"
        repeat {
            let reply = try await redis.send("SCAN", cursor, "MATCH", clusterKeys.goal("*"), "COUNT", 1000).array ?? []
            guard reply.count == 2, let next = reply[0].string else { throw LauncherError("SCAN answered something else than a cursor and keys") }
            goals += reply[1].array?.count ?? 0
            cursor = next
        } while cursor != "0"
        let info = try await redis.send("INFO", "memory").string ?? ""
        let memory = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("used_memory:") }.flatMap { Int($0.dropFirst("used_memory:".count)) } ?? 0
        return (keys, goals, memory)
    }

    /// How many entries were ever added to the request stream (`XINFO STREAM`'s
    /// `entries-added`: the leader trims applied entries, so its length says nothing).
    func requestsAdded(keys: ClusterKeys) async throws -> Int {
        guard try await redis.send("EXISTS", keys.requests).integer == 1 else { return 0 } // no request yet
        guard let fields = try await redis.send("XINFO", "STREAM", keys.requests).array else { return 0 }
        for index in stride(from: 0, to: fields.count - 1, by: 2) where fields[index].string == "entries-added" {
            return Int(fields[index + 1].integer ?? 0)
        }
        throw LauncherError("XINFO STREAM \(keys.requests) has no entries-added: Redis 7 or newer is needed")
    }

    /// The requests ever added to the stream and the requests applied, once every queued request was
    /// applied (the cluster is quiet): what the run's requests are counted from.
    func quietBaseline(keys: ClusterKeys) async throws -> (inStream: Int, applied: Int) {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let state = try await client.checkpoint()
            let last = try await redis.send("XREVRANGE", keys.requests, "+", "-", "COUNT", 1).array?.first?.array?.first?.string
            if last == state.lastAppliedRequest?.description {
                return (try await requestsAdded(keys: keys), state.requestsApplied)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw LauncherError("requests are still queued after 30 s: is a controller running?")
    }
}
