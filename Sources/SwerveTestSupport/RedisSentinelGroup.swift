public import Foundation
import Glibc
import SwerveLauncher
import Synchronization

/// A Redis master, one replica and three Sentinels watching it (quorum 2), each on a free
/// loopback port, for a test of failover: the real processes a Sentinel deployment runs.
public final class RedisSentinelGroup: Sendable {
    public static let masterName = "swerve-test"
    public let master: RedisServerProcess
    public let replica: RedisServerProcess
    public let sentinelPorts: [Int]
    private let sentinels = Mutex<[Int: Process]>([:])
    private let directory: String

    public init() async throws {
        master = try RedisServerProcess()
        try await master.start()
        replica = try RedisServerProcess(extraArguments: ["--replicaof", "127.0.0.1", "\(master.port)"])
        try await replica.start()
        directory = master.directory + "-sentinels"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var ports: [Int] = []
        for _ in 0..<3 { ports.append(try freeLoopbackPort()) }
        sentinelPorts = ports
        for port in ports { try startSentinel(port) }
        try await awaitSentinelsSeeReplica()
    }

    /// `redis-sentinel://` for the three sentinels.
    public var url: String {
        "redis-sentinel://" + sentinelPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",") + "#\(Self.masterName)"
    }

    /// Starts (or starts again) the sentinel on `port`, and returns once it monitors the master.
    public func startSentinel(_ port: Int) throws {
        let config = "\(directory)/sentinel-\(port).conf"
        if !FileManager.default.fileExists(atPath: config) {
            try """
                sentinel monitor \(Self.masterName) 127.0.0.1 \(master.port) 2
                sentinel down-after-milliseconds \(Self.masterName) 500
                sentinel failover-timeout \(Self.masterName) 3000
                sentinel parallel-syncs \(Self.masterName) 1
                """.write(toFile: config, atomically: true, encoding: .utf8)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["redis-server", config, "--sentinel", "--port", "\(port)", "--bind", "127.0.0.1", "--logfile", "\(directory)/sentinel-\(port).log"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        sentinels.withLock { $0[port] = process }
    }

    /// SIGKILL of the sentinel on `port`.
    public func killSentinel(_ port: Int) {
        guard let process = sentinels.withLock({ $0.removeValue(forKey: port) }) else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// The master's port as every live sentinel reports it (nil while they disagree or cannot say).
    public func reportedMasterPort() -> Int? {
        let ports = sentinels.withLock { Array($0.keys) }.map { port -> Int? in
            let reply = (try? redisCommand(port: port, ["SENTINEL", "get-master-addr-by-name", Self.masterName])) ?? ""
            return reply.split(separator: "\n").last.flatMap { Int($0) }
        }
        guard let first = ports.first, ports.allSatisfy({ $0 == first }) else { return nil }
        return first
    }

    /// Waits until every sentinel lists the replica (a failover needs one to promote).
    private func awaitSentinelsSeeReplica() async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let ready = sentinels.withLock { Array($0.keys) }.allSatisfy { port in
                ((try? redisCommand(port: port, ["SENTINEL", "replicas", Self.masterName])) ?? "").contains("\(replica.port)")
            }
            if ready, reportedMasterPort() == master.port { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("the sentinels did not see the replica within 20 s (logs in \(directory))")
    }

    deinit {
        for process in sentinels.withLock({ Array($0.values) }) {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// One command through `redis-cli` to 127.0.0.1:`port`; its output (each reply line).
public func redisCommand(port: Int, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["redis-cli", "-p", "\(port)"] + arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}
