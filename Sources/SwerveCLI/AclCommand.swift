import ArgumentParser
import Foundation
import Glibc
import SwerveErrors
import SwerveProtocol

/// `swerve acl`: a Redis ACL file with one user per role, and the roles' password files.
struct AclCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acl",
        abstract: "Write a Redis ACL file giving each Swerve role only the rights it needs, and one password file per role.",
        discussion: """
            Users: swerve-controller, -node, -worker, -router, -client (the CLI's writing
            commands), -reader (get, describe, events, status, leader, health), -admin (an
            operator's redis-cli), -replication (Redis replicas' masteruser) and -sentinel
            (Sentinel's auth-user). On the sentinels (--sentinel-output): -discovery, which
            may only ask where the master is (every Swerve process's SWERVE_SENTINEL_USER),
            -sentinel (their sentinel-user) and -admin. A connection that does not
            authenticate can do nothing: the sentinels' default user is off, the servers'
            takes the admin's password (Redis replays its append-only file as default).

            The files name each password by its SHA-256 only; the passwords are in DIR, one
            file per role, made (with --mode) when absent and kept when present, so running
            this again changes nothing.

            Each process then connects as its role:
              SWERVE_REDIS_USER=swerve-node SWERVE_REDIS_PASSWORD_FILE=DIR/node swerve node …
            and a node agent hands its workers the worker role instead of its own:
              SWERVE_WORKER_REDIS_USER=swerve-worker SWERVE_WORKER_REDIS_PASSWORD_FILE=DIR/worker

            Example:
              swerve acl --cluster prod --secrets /etc/swerve/secrets --output /etc/redis/users.acl
              redis-server --aclfile /etc/redis/users.acl
            """
    )

    @Option(help: ArgumentHelp("The cluster name: the users may touch only keys under swerve:{NAME}:.", valueName: "name"))
    var cluster: String = ProcessInfo.processInfo.environment["SWERVE_CLUSTER"] ?? "default"

    @Option(help: ArgumentHelp("The directory of the password files, one per role (made when absent).", valueName: "dir"))
    var secrets: String = "secrets"

    @Option(help: ArgumentHelp("Prepended to each role's name to name its user.", valueName: "prefix"))
    var userPrefix: String = AccessRoles.defaultUserPrefix

    @Option(help: ArgumentHelp("""
        The mode of password files it makes, in octal: 0644 for docker-compose, whose secrets are bind         mounts that keep the host file's owner and mode (the directory itself stays 0700).
        """, valueName: "mode"))
    var mode = "0600"

    @Option(help: ArgumentHelp("Where to write the ACL file (default: standard output).", valueName: "file"))
    var output: String?

    @Option(help: ArgumentHelp("Where to write the sentinels' users, lines for each sentinel's configuration file.", valueName: "file"))
    var sentinelOutput: String?

    func validate() throws {
        if let problem = AccessRoles.problem(withUserPrefix: userPrefix) { throw ValidationError("--user-prefix: \(problem)") }
        if secrets.isEmpty { throw ValidationError("--secrets: give a directory") }
        guard fileMode != nil else { throw ValidationError("--mode: an octal mode such as 0600 or 0644, with no write or execute bit for others, got \(mode)") }
    }

    /// `--mode`, if it is an octal mode that gives others no write or execute.
    var fileMode: mode_t? {
        guard let value = mode_t(mode, radix: 8), value <= 0o777, value & 0o033 == 0, value & 0o400 != 0 else { return nil }
        return value
    }

    func run() throws {
        let keys: ClusterKeys
        do { keys = try ClusterKeys(cluster: cluster) } catch { throw ValidationError("--cluster: \(error.message)") }
        let roles = AccessRoles(keys: keys, userPrefix: userPrefix)
        var passwords: [AccessRoles.Role: String] = [:]
        do {
            try PasswordFiles.makeDirectory(secrets)
            for role in AccessRoles.Role.allCases {
                let (password, made) = try PasswordFiles.password(in: secrets, name: role.rawValue, mode: fileMode ?? 0o600)
                passwords[role] = password
                FileHandle.standardError.write(Data("\(made ? "made" : "kept") \(secrets)/\(role.rawValue) (user \(roles.user(role)))\n".utf8))
            }
        } catch {
            FileHandle.standardError.write(Data("swerve acl: \(error.message)\n".utf8))
            throw ExitCode(1)
        }
        if let sentinelOutput {
            try write(roles.sentinelUsers(passwords: passwords), to: sentinelOutput, option: "--sentinel-output")
            FileHandle.standardError.write(Data("wrote \(sentinelOutput): add its lines to each sentinel's configuration file\n".utf8))
        }
        let file = roles.aclFile(passwords: passwords)
        guard let output else {
            print(file, terminator: "")
            return
        }
        try write(file, to: output, option: "--output")
        FileHandle.standardError.write(Data("wrote \(output): load it with redis-server --aclfile \(output)\n".utf8))
    }

    private func write(_ text: String, to path: String, option: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
            FileHandle.standardError.write(Data("swerve acl: \(option): cannot write \(path)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// Password files: one secret per file, made with 32 random bytes (as hex) and mode 0600 when
/// absent, read (less a trailing newline) when present.
enum PasswordFiles {
    struct Failure: Error {
        let message: String
    }

    static func makeDirectory(_ path: String) throws(Failure) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw Failure(message: "--secrets: \(path) is not a directory") }
            return
        }
        guard mkdir(path, 0o700) == 0 else { throw Failure(message: "--secrets: cannot make \(path): \(String(cString: strerror(errno)))") }
    }

    /// The password in `directory/name`, made (with `mode`) when the file is absent; `made`
    /// says which.
    static func password(in directory: String, name: String, mode: mode_t) throws(Failure) -> (password: String, made: Bool) {
        let path = directory + "/" + name
        if let data = FileManager.default.contents(atPath: path) {
            var text = String(decoding: data, as: UTF8.self)
            while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
            guard !text.isEmpty, !text.contains(where: { $0 == " " || $0 == "\n" }) else {
                throw Failure(message: "\(path) must hold one password without spaces or line breaks: fix or remove it (a new one is made when absent)")
            }
            return (text, false)
        }
        var generator = SystemRandomNumberGenerator()
        let password = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw Failure(message: "cannot make \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        guard fchmod(descriptor, mode) == 0 else { throw Failure(message: "cannot set the mode of \(path): \(String(cString: strerror(errno)))") }
        let bytes = Array((password + "\n").utf8)
        guard write(descriptor, bytes, bytes.count) == bytes.count else { throw Failure(message: "cannot write \(path): \(String(cString: strerror(errno)))") }
        return (password, true)
    }
}
