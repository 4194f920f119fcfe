import Glibc
import SwerveProtocol
import Testing

@Suite struct SHA256Vectors {
    /// FIPS 180-4's examples, and one that spans two blocks of padding.
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        (String(repeating: "a", count: 1000), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"),
    ])
    func matchesTheStandard(message: String, digest: String) {
        #expect(sha256Hex(Array(message.utf8)) == digest)
    }
}

@Suite struct AccessRoleRules {
    let roles = AccessRoles(keys: try! ClusterKeys(cluster: "prod"))

    /// Every pattern of a Swerve role lies under the cluster's prefix: no role reaches another
    /// cluster's keys or channels on a shared Redis.
    @Test func swerveRolesStayInTheirCluster() {
        for role in AccessRoles.Role.swerveRoles {
            for rule in roles.rules(role) where rule.contains("~") || rule.hasPrefix("&") {
                let pattern = rule.drop { $0 != "~" && $0 != "&" }.dropFirst()
                #expect(pattern.hasPrefix("swerve:{prod}:"), "\(role): \(rule)")
            }
        }
    }

    @Test func noSwerveRoleMayRunEveryCommandOrWriteWhatOnlyTheLeaderWrites() {
        for role in AccessRoles.Role.swerveRoles {
            let rules = roles.rules(role)
            #expect(!rules.contains("+@all"), "\(role)")
            #expect(!rules.contains("+@admin"), "\(role)")
            if rules.contains("+@read") || rules.contains("+@write") { #expect(rules.contains("-@dangerous"), "\(role)") }
        }
        // What only the leader writes matches no pattern a node, worker, router or reader may write.
        let keys = roles.keys
        let leaderOnly = [keys.assignments("n1"), keys.assignmentsVersion("n1"), keys.routingSnapshot, keys.configsSnapshot, keys.lease,
                          keys.epoch, keys.checkpoint, keys.leader, keys.goal("g"), keys.drain("api#1"), keys.userConfig("api#1"), keys.status]
        for role in [AccessRoles.Role.node, .worker, .router, .client, .reader] {
            for pattern in patterns(roles.rules(role), writable: true) {
                for key in leaderOnly { #expect(fnmatch(pattern, key, 0) != 0, "\(role) may write \(key) (\(pattern))") }
            }
        }
        // Replica configs and their environments: the checkpoint, the requests, assignments.
        for role in [AccessRoles.Role.router, .worker, .node] {
            for pattern in patterns(roles.rules(role), writable: false) {
                for key in [keys.checkpoint, keys.requests] { #expect(fnmatch(pattern, key, 0) != 0, "\(role) may read \(key) (\(pattern))") }
            }
        }
        #expect(patterns(roles.rules(.router), writable: false).allSatisfy { fnmatch($0, keys.assignments("n1"), 0) != 0 })
    }

    /// A router writes its load and traffic reports and wakes the leader, nothing else: its
    /// selectors name only its report keys and the wake channel (never the snapshots channel
    /// it follows).
    @Test func aRoutersOnlyWritesAreItsReports() {
        let keys = roles.keys
        let selectors = roles.rules(.router).filter { $0.hasPrefix("(") }
        #expect(selectors == ["(~\(keys.prefix)router:*:load ~\(keys.routerLoads) &\(keys.wake) +hset +del +pexpire +sadd +publish +multi +exec)",
                              "(~\(keys.prefix)router:*:traffic ~\(keys.routerTraffics) +set +zadd +zremrangebyscore +multi +exec)"])
        #expect(fnmatch("\(keys.prefix)router:*:load", keys.routerLoad("r1"), 0) == 0)
        #expect(fnmatch("\(keys.prefix)router:*:traffic", keys.routerTraffic("r1"), 0) == 0)
        #expect(patterns(roles.rules(.router), writable: true).isEmpty, "no write outside the selector")
    }

    /// The key patterns of `rules` that allow writing (`~`, `%W~`, `%RW~`), or reading (`~`, `%R~`, `%RW~`).
    func patterns(_ rules: [String], writable: Bool) -> [String] {
        rules.compactMap { rule in
            guard let tilde = rule.firstIndex(of: "~") else { return nil }
            let permission = rule[..<tilde]
            let allowed = permission.isEmpty || permission.contains(writable ? "W" : "R")
            return allowed ? String(rule[rule.index(after: tilde)...]) : nil
        }
    }

    @Test func theFileHoldsOnlyHashesAndDefaultNeedsAPassword() {
        let file = roles.aclFile(passwords: [.controller: "hunter2", .router: "correct horse"])
        let lines = file.split(separator: "\n")
        #expect(lines.first == "user default off resetkeys resetchannels -@all")
        #expect(lines.count == 3)
        // With an admin password, default takes it (Redis replays its append-only file as default).
        let withAdmin = roles.aclFile(passwords: [.admin: "root-pw"]).split(separator: "\n")
        #expect(withAdmin.first == "user default on #\(sha256Hex(Array("root-pw".utf8))) resetkeys resetchannels -@all ~* &* +@all")
        #expect(!withAdmin.contains { $0.contains("nopass") })
        #expect(!file.contains("hunter2") && !file.contains("correct horse"))
        #expect(file.contains("user swerve-controller on #\(sha256Hex(Array("hunter2".utf8))) resetkeys resetchannels -@all ~swerve:{prod}:*"))
        #expect(AccessRoles(keys: roles.keys, userPrefix: "prod-").user(.node) == "prod-node")
    }

    @Test func aUserPrefixMustNotBreakTheFile() {
        #expect(AccessRoles.problem(withUserPrefix: "swerve-prod-") == nil)
        #expect(AccessRoles.problem(withUserPrefix: "a b") != nil)
        #expect(AccessRoles.problem(withUserPrefix: "a\n") != nil)
    }
}
