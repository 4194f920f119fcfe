import Foundation
import Glibc

/// A network namespace of the caller's own with a veth pair to the host, for partition tests
/// and chaos: the host end gets ``hostAddress``, the namespace end ``innerAddress`` (a /30 of
/// 10.231.0.0/16 picked at random). A process run inside reaches the host only through the
/// pair, so ``cut()`` isolates it the way a failed switch would: packets vanish, no reset
/// arrives, calls hang.
///
/// Guarantees: traffic stays between the namespace and the host end of its own pair (nothing
/// is routed further); ``remove()`` deletes the namespace, its pair and its drop rule, and is
/// safe to call twice. Needs root, `ip` and `iptables` (``available``).
public struct NetworkNamespace: Sendable {
    public let name: String
    public let hostInterface: String
    public let hostAddress: String
    public let innerAddress: String

    /// Whether this process may create namespaces and drop rules.
    public static var available: Bool {
        geteuid() == 0 && FileManager.default.isExecutableFile(atPath: ip) && FileManager.default.isExecutableFile(atPath: iptables)
    }

    static let ip = "/usr/sbin/ip"
    static let iptables = "/usr/sbin/iptables"

    /// Creates the namespace and its pair; `prefix` starts the namespace's name (`NAME-xxxx`).
    public init(prefix: String = "swerve-test") throws {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        name = "\(prefix)-\(tag)"
        hostInterface = "swh\(tag)".prefix(15).description
        let inner = "swn\(tag)".prefix(15).description
        let block = Int.random(in: 0..<16_384) * 4
        hostAddress = "10.231.\(block / 256).\(block % 256 + 1)"
        innerAddress = "10.231.\(block / 256).\(block % 256 + 2)"
        try Self.run([Self.ip, "netns", "add", name])
        do {
            try Self.run([Self.ip, "link", "add", hostInterface, "type", "veth", "peer", "name", inner])
            try Self.run([Self.ip, "link", "set", inner, "netns", name])
            try Self.run([Self.ip, "addr", "add", "\(hostAddress)/30", "dev", hostInterface])
            try Self.run([Self.ip, "link", "set", hostInterface, "up"])
            try Self.run([Self.ip, "netns", "exec", name, Self.ip, "addr", "add", "\(innerAddress)/30", "dev", inner])
            try Self.run([Self.ip, "netns", "exec", name, Self.ip, "link", "set", inner, "up"])
            try Self.run([Self.ip, "netns", "exec", name, Self.ip, "link", "set", "lo", "up"])
        } catch {
            remove()
            throw error
        }
    }

    /// What runs a command inside the namespace: `ip netns exec NAME` (it execs the command, so
    /// the pid started is the command's own).
    public var commandPrefix: [String] { [Self.ip, "netns", "exec", name] }

    /// Drops every packet from the namespace at the host: the host never sees a request from
    /// inside, and inside never sees an answer or a reset.
    public func cut() throws { try Self.run([Self.iptables, "-I", "INPUT", "-i", hostInterface, "-j", "DROP"]) }

    /// Removes the drop rule ``cut()`` added.
    public func heal() throws { try Self.run([Self.iptables, "-D", "INPUT", "-i", hostInterface, "-j", "DROP"]) }

    /// `swerve_controller_is_leader` of the controller whose metrics listen on loopback port
    /// `metricsPort` inside the namespace (reachable whatever the host drops); nil when it does
    /// not answer within 5 s.
    public func controllerIsLeader(metricsPort: Int) -> Bool? {
        let script = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:\(metricsPort)/metrics', timeout=5).read().decode())"
        guard let output = try? Self.run(commandPrefix + ["python3", "-c", script], allowFailure: true),
              let line = output.split(separator: "\n").first(where: { $0.hasPrefix("swerve_controller_is_leader ") }),
              let value = Double(line.split(separator: " ").last ?? "") else { return nil }
        return value == 1
    }

    /// Deletes the namespace (its veth pair goes with it) and the drop rule, if any.
    public func remove() {
        _ = try? Self.run([Self.iptables, "-D", "INPUT", "-i", hostInterface, "-j", "DROP"], allowFailure: true)
        _ = try? Self.run([Self.ip, "netns", "del", name], allowFailure: true)
    }

    /// Runs `arguments` to completion; returns its output (stdout and stderr), throwing when it
    /// failed unless `allowFailure`.
    @discardableResult
    static func run(_ arguments: [String], allowFailure: Bool = false) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        if process.terminationStatus != 0, !allowFailure {
            throw LauncherError("\(arguments.joined(separator: " ")) failed (exit \(process.terminationStatus)): \(text)")
        }
        return text
    }
}
