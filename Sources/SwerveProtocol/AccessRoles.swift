/// The Redis ACL users of one cluster: one per role, each allowed only the commands, keys and
/// channels its processes use (`swerve acl` writes them as an ACL file; `docs/PROTOCOL.md`,
/// "Access control", lists them).
///
/// Guarantees, as a pure value (no I/O):
/// - every rule is confined to this cluster's prefix, except the Redis-wide `admin`,
///   `replication` and `sentinel` users;
/// - only `controller` may write the lease, the epoch, checkpoints, assignments, snapshots,
///   goals, drain and config keys, or run `INFO` and `WAIT`; nodes, workers and routers
///   cannot read the checkpoint or the request stream (which hold replica configs and their
///   environments);
/// - no Swerve role may run a `@dangerous` command (`FLUSHALL`, `CONFIG`, `DEBUG`, `ACL`, `KEYS`…)
///   and the `default` user has a password (the admin's), so a connection that does not
///   authenticate can do nothing.
public struct AccessRoles: Sendable, Hashable {
    /// Who connects: one user each.
    public enum Role: String, CaseIterable, Sendable {
        /// `swerve controller`: leads, follows, fences its writes.
        case controller
        /// `swerve node`: registers and heartbeats its node, reads its assignments, records its
        /// workers' exits (and retracts their ready records).
        case node
        /// `swerve worker`: its replica's ready and drained records; reads its assignment.
        case worker
        /// `swerve router`: reads the snapshots and follows their channel.
        case router
        /// The CLI's writing commands (`apply`, `scale`, `delete`, `node cordon|drain`…):
        /// appends requests, cordons nodes, reads everything of the cluster.
        case client
        /// The CLI's reading commands (`get`, `describe`, `events`, `status`, `leader`, `health`).
        case reader
        /// An operator's `redis-cli`, backups: everything (Redis-wide).
        case admin
        /// Redis replicas replicating from the master (`masteruser`).
        case replication
        /// Redis Sentinels watching and failing over the servers (`sentinel auth-user`); on the
        /// sentinels, the user they ask of each other (`sentinel sentinel-user`).
        case sentinel
        /// On the sentinels only: every Swerve process asking where the master is
        /// (`SWERVE_SENTINEL_USER`); it can ask nothing else, so it cannot point clients at
        /// another server.
        case discovery

        /// The roles of Swerve's own processes (not Redis's).
        public static let swerveRoles: [Role] = [.controller, .node, .worker, .router, .client, .reader]
        /// The users of the Redis servers' ACL file.
        public static let serverRoles: [Role] = allCases.filter { $0 != .discovery }
        /// The users of the sentinels' ACL.
        public static let sentinelRoles: [Role] = [.discovery, .sentinel, .admin]
    }

    public let keys: ClusterKeys
    /// Prepended to a role's name to name its user (default `swerve-`).
    public let userPrefix: String

    public static let defaultUserPrefix = "swerve-"

    public init(keys: ClusterKeys, userPrefix: String = AccessRoles.defaultUserPrefix) {
        self.keys = keys
        self.userPrefix = userPrefix
    }

    /// Why `prefix` cannot prefix a user name (nil when it can): ACL files split on spaces.
    public static func problem(withUserPrefix prefix: String) -> String? {
        guard prefix.count <= 64, prefix.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
            return "\"\(prefix)\" must be at most 64 letters, digits, \"-\", \"_\" or \".\""
        }
        return nil
    }

    /// The user `role` connects as.
    public func user(_ role: Role) -> String { userPrefix + role.rawValue }

    /// What every Swerve process sends on connecting (`AUTH`, `CLIENT SETNAME`, `SELECT`,
    /// `PING`, and `ROLE` behind Sentinel).
    private static let connecting = ["+auth", "+ping", "+client|setname", "+select", "+role"]

    /// `role`'s rules on the Redis servers after `resetkeys resetchannels -@all`, in ACL syntax
    /// (none for ``Role/discovery``, which exists on the sentinels alone).
    public func rules(_ role: Role) -> [String] {
        let p = keys.prefix
        switch role {
        case .controller:
            return ["~\(p)*", "&\(p)*",
                    "+@read", "+@write", "+@pubsub", "-@dangerous",
                    "+evalsha", "+script|load", "+info", "+wait", "+scan", "+time", "+multi", "+exec"] + Self.connecting
        case .node:
            // Reading cordons and the node set: `swerve health node`, the agent's health check.
            return ["%R~\(p)assignments:*", "%R~\(p)replica:*:drain", "%R~\(p)leader", "%R~\(p)cordons",
                    "~\(p)node:*", "~\(p)nodes", "~\(p)nodes:changed", "~\(p)replica:*:exit",
                    "~\(p)replicas:changed", "&\(p)wake", "&\(p)node:*:notify", "&\(p)replica:*:control",
                    "+get", "+mget", "+exists", "+hgetall", "+set", "+del", "+pexpire", "+zadd", "+zrem", "+zrange", "+zscore",
                    "+sadd", "+time",
                    // A selector: its workers' ready records it may only delete (on their exit).
                    "(~\(p)replica:*:ready +del)",
                    "+publish", "+subscribe", "+unsubscribe", "+evalsha", "+script|load"] + Self.connecting
        case .worker:
            return ["%R~\(p)assignments:*", "%R~\(p)replica:*:drain", "%R~\(p)replica:*:config",
                    "~\(p)replica:*:ready", "~\(p)replica:*:drained", "~\(p)replicas:changed",
                    "&\(p)wake", "&\(p)replica:*:control",
                    "+get", "+mget", "+hget", "+set", "+del", "+sadd", "+publish", "+subscribe", "+unsubscribe"] + Self.connecting
        case .router:
            // Load reports: its own hash and the set naming it; the wake channel only to
            // publish (a selector), never the snapshots channel, which it only follows.
            // Traffic reports (the dashboard's): its report and the set naming it.
            return ["%R~\(p)snapshot:*", "&\(p)snapshots", "+get", "+lrange", "+multi", "+exec", "+subscribe", "+unsubscribe",
                    "(~\(p)router:*:load ~\(p)routers:load &\(p)wake +hset +del +pexpire +sadd +publish +multi +exec)",
                    "(~\(p)router:*:traffic ~\(p)routers:traffic +set +zadd +zremrangebyscore +multi +exec)"] + Self.connecting
        case .client:
            return ["%R~\(p)*", "%W~\(p)requests", "%W~\(p)cordons", "&\(p)*",
                    "+@read", "-@dangerous", "+xadd", "+hset", "+hdel", "+publish", "+subscribe", "+unsubscribe", "+time", "+multi", "+exec"] + Self.connecting
        case .reader:
            return ["%R~\(p)*", "&\(p)*", "+@read", "-@dangerous", "+subscribe", "+unsubscribe", "+time", "+multi", "+exec"] + Self.connecting
        case .admin:
            return ["~*", "&*", "+@all"]
        case .replication:
            return ["+psync", "+replconf", "+ping"]
        case .sentinel:
            return ["&*", "+multi", "+exec", "+slaveof", "+replicaof", "+ping", "+subscribe", "+publish", "+info", "+role",
                    "+config|rewrite", "+client|setname", "+client|kill", "+script|kill"]
        case .discovery:
            return []
        }
    }

    /// `role`'s rules on the sentinels, nil for a role that has no user there.
    public func sentinelRules(_ role: Role) -> [String]? {
        switch role {
        case .discovery: return ["+auth", "+ping", "+client|setname", "+sentinel|get-master-addr-by-name"]
        case .sentinel, .admin: return ["&*", "+@all"]
        default: return nil
        }
    }

    /// `role`'s line of an ACL file, its password given by its SHA-256 (the file never holds
    /// the password itself).
    public func aclLine(_ role: Role, passwordSHA256: String) -> String {
        (["user", user(role), "on", "#" + passwordSHA256, "resetkeys", "resetchannels", "-@all"] + rules(role)).joined(separator: " ")
    }

    /// A whole ACL file for the Redis servers: every role's user, with `passwords` (role →
    /// password).
    ///
    /// The `default` user is not switched off but given the admin's password and rights:
    /// Redis replays an append-only file as `default` and re-checks its permissions at each
    /// `EXEC` (redis/redis#14541, fixed after 7.2), so with `default` off a restart silently
    /// drops every transaction in the file — every script's writes, the checkpoint among them.
    /// A connection that does not authenticate is still refused everything (`NOAUTH`). Without
    /// an admin password, `default` is switched off.
    public func aclFile(passwords: [Role: String]) -> String {
        var lines = ["user default off resetkeys resetchannels -@all"]
        if let admin = passwords[.admin] {
            lines = ["user default on #\(sha256Hex(Array(admin.utf8))) resetkeys resetchannels -@all " + rules(.admin).joined(separator: " ")]
        }
        for role in Role.serverRoles {
            guard let password = passwords[role] else { continue }
            lines.append(aclLine(role, passwordSHA256: sha256Hex(Array(password.utf8))))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The `user` lines for the sentinels' configuration files (Sentinel takes ACL users there,
    /// not from an ACL file), the `default` user switched off.
    public func sentinelUsers(passwords: [Role: String]) -> String {
        var lines = ["user default off resetchannels -@all"]
        for role in Role.sentinelRoles {
            guard let password = passwords[role], let rules = sentinelRules(role) else { continue }
            lines.append((["user", user(role), "on", "#" + sha256Hex(Array(password.utf8)), "resetchannels", "-@all"] + rules).joined(separator: " "))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
