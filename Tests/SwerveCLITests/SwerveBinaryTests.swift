import Foundation
import Glibc
import SwerveCore
import SwerveTestSupport
import Testing

/// Runs `executable` to its end; returns its exit status and its output (stdout and stderr).
func runProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                directory: String? = nil) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}

/// Runs the built `swerve` binary (a sibling of the test bundle in the build directory), as
/// the test user when one is set, and returns its exit status and output.
func runSwerve(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
    let command = asTestUser(try swerveBinary(), arguments)
    return try runProcess(command.executable, command.arguments, environment: ProcessInfo.processInfo.environment.merging(environment) { $1 })
}

@Suite struct SwerveBinary {
    @Test func helpDescribesSwerveAndListsVersion() throws {
        let (status, output) = try runSwerve(["--help"])
        #expect(status == 0)
        #expect(output.contains("highly available serving control plane"))
        #expect(output.contains("version"))
    }

    @Test func versionPrintsTheReleaseVersion() throws {
        let (status, output) = try runSwerve(["version"])
        #expect(status == 0)
        #expect(output == "swerve \(Swerve.version)\n")
    }

    @Test func anUnknownSubcommandFailsNamingIt() throws {
        let (status, output) = try runSwerve(["frobnicate"])
        #expect(status != 0)
        #expect(output.contains("frobnicate"))
    }

    /// Settings come from flags, else the environment; either way a bad value is named and the
    /// controller does not start.
    @Test(arguments: [
        ([String](), ["SWERVE_LEASE_TTL_MS": "abc"], "SWERVE_LEASE_TTL_MS: must be a whole number, got 'abc'"),
        ([], ["SWERVE_LEASE_TTL_MS": "100"], "--lease-ttl-ms (or SWERVE_LEASE_TTL_MS): must be ≥ 300, got 100"),
        (["--lease-ttl-ms", "100"], ["SWERVE_LEASE_TTL_MS": "2000"], "must be ≥ 300, got 100"),
        ([], ["SWERVE_TICK_MS": "5"], "--tick-ms (or SWERVE_TICK_MS): must be ≥ 10, got 5"),
        (["--metrics-address", "9464"], [:], "--metrics-address (or SWERVE_METRICS_ADDRESS): expected HOST:PORT"),
        ([], ["SWERVE_FAILPOINTS": "controller.after-nothing=crash"], "SWERVE_FAILPOINTS: unknown failpoint 'controller.after-nothing'"),
        (["--min-replica-acks", "many"], [:], "--min-replica-acks (or SWERVE_MIN_REPLICA_ACKS): must be auto or a number from 0 to 16, got \"many\""),
        ([], ["SWERVE_MIN_REPLICA_ACKS": "-1"], "must be auto or a number from 0 to 16, got \"-1\""),
        (["--replica-ack-timeout-ms", "300"], [:], "--replica-ack-timeout-ms (or SWERVE_REPLICA_ACK_TIMEOUT_MS): must be from 1 to under the renew interval (200 ms"),
    ])
    func aControllerWithABadSettingSaysWhichAndDoesNotStart(_ flags: [String], _ environment: [String: String], _ message: String) throws {
        let (status, output) = try runSwerve(["controller", "--redis", "redis://127.0.0.1:1"] + flags, environment: environment)
        #expect(status == 64, "a usage error")
        #expect(output.contains(message), "\(output)")
    }

    @Test(arguments: [
        (["--allow-command", "python3"], [String: String](), "--allow-command (or SWERVE_NODE_ALLOW_COMMANDS): must be an absolute path pattern (such as /opt/app/bin/*), got \"python3\""),
        ([], ["SWERVE_NODE_ALLOW_COMMANDS": "/usr/bin/python3, bin/*"], "must be an absolute path pattern (such as /opt/app/bin/*), got \"bin/*\""),
    ])
    func aNodeWithABadAllowedCommandSaysWhichAndDoesNotStart(_ flags: [String], _ environment: [String: String], _ message: String) throws {
        let (status, output) = try runSwerve(["node", "--redis", "redis://127.0.0.1:1", "--id", "n1"] + flags, environment: environment)
        #expect(status == 64, "a usage error")
        #expect(output.contains(message), "\(output)")
    }

    @Test func aNodeSaysWhichCommandsItAllows() throws {
        let (status, output) = try runSwerve(["node", "--redis", "redis://127.0.0.1:1", "--id", "n1", "--allow-command", "/opt/app/bin/*"],
                                             environment: ["SWERVE_DRY_RUN": "1"])
        #expect(status == 0 && output.contains("commands /opt/app/bin/*"), "\(output)")
    }
}

/// `swerve acl` as an operator runs it: again and again without changing a password.
@Suite struct AclFiles {
    @Test func runningItAgainKeepsEveryPasswordAndTheModeIsTheOneAsked() throws {
        let directory = (ProcessInfo.processInfo.environment["SWERVE_TEST_TMPDIR"] ?? NSTemporaryDirectory()) + "/acl-files-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if let user = testUser { chown(directory, user.uid, user.gid) }
        let arguments = ["acl", "--cluster", "prod", "--secrets", "\(directory)/secrets", "--output", "\(directory)/users.acl", "--mode", "0644"]
        let first = try runSwerve(arguments)
        #expect(first.status == 0, "\(first.output)")
        let acl = try String(contentsOfFile: "\(directory)/users.acl", encoding: .utf8)
        let controller = try String(contentsOfFile: "\(directory)/secrets/controller", encoding: .utf8)
        #expect(controller.count == 65 && !acl.contains(controller.trimmingCharacters(in: .newlines)), "a 64-digit password the ACL does not hold")
        let mode = try FileManager.default.attributesOfItem(atPath: "\(directory)/secrets/controller")[.posixPermissions] as? Int
        #expect(mode == 0o644)

        let again = try runSwerve(arguments)
        #expect(again.status == 0 && again.output.contains("kept \(directory)/secrets/controller"), "\(again.output)")
        #expect(try String(contentsOfFile: "\(directory)/users.acl", encoding: .utf8) == acl, "the same passwords, the same file")
    }

    @Test(arguments: [(["--mode", "0666"], "--mode"), (["--mode", "abc"], "--mode"), (["--user-prefix", "a b"], "--user-prefix"), (["--cluster", "a:b"], "--cluster")])
    func aBadOptionIsNamed(extra: [String], option: String) throws {
        let (status, output) = try runSwerve(["acl", "--secrets", "/nonexistent/never-made"] + extra)
        #expect(status != 0)
        #expect(output.contains(option), "\(output)")
        #expect(!FileManager.default.fileExists(atPath: "/nonexistent/never-made"))
    }
}
