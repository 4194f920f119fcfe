import ArgumentParser
import Foundation
import Glibc
import Logging
import SwerveClient
import SwerveCore
import SwerveLauncher
import SwerveProtocol
import SwerveRedis

/// `swerve-ops chaos`: starts a cluster like `up`, drives HTTP load through its router, keeps
/// changing the backend, and meanwhile injects faults on a schedule; then waits for quiet and
/// checks that nothing was lost, done twice or left behind. Exits 1 on any violation.
struct ChaosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos", abstract: "Break a local cluster on a schedule, then check it held (exit 1 on any violation).",
        discussion: """
            Faults, in turn: SIGKILL the leader, SIGSTOP it beyond the lease TTL then SIGCONT,
            SIGTERM it, SIGINT it, cut it off from Redis (a partition: see --partitions) — and
            after every three of those one of: SIGKILL a worker, SIGKILL a node agent, SIGTERM a
            node agent (it drains its node: no request may fail meanwhile), restart Redis
            (SIGTERM; AOF keeps the data), pause Redis beyond the node TTL (SIGSTOP), stop Redis
            beyond the node TTL and start it again (a cluster of its own only); no replica may be
            restarted for a pause or a stop of Redis. Throughout, a hostile client
            writes invalid and malformed requests straight into the stream: each must be
            refused or failed with a reason, and the valid ones still applied exactly once. Whatever is killed is started
            again by the cluster's supervisor (this harness's own, or `ops/up`'s when attached).
            Meanwhile a backend "chaos" is scaled between 2 and 4 replicas and rolled to new
            versions, under steady HTTP load through the router.

            Victims are found through Redis (the leader record, node records, the checkpoint's
            worker pids, Redis's INFO) and signalled by pid, so the harness runs on the
            cluster's host.

            Examples (ops/chaos builds and runs this):
              swerve-ops chaos --swerve .build/debug/swerve --duration 60 --kills 30
              swerve-ops chaos --attach redis://127.0.0.1:40845 --cluster local --router 127.0.0.1:8000 --restart-redis
            """)

    @Option(help: "The swerve binary to run a cluster of its own with.") var swerve: String?
    @Option(help: ArgumentHelp("Attach to the running cluster (started by ops/up) using this Redis, instead of starting one.", valueName: "url"))
    var attach: String?
    @Option(help: "With --attach: the cluster's name.") var cluster = "local"
    @Option(help: ArgumentHelp("With --attach: the router to send load through.", valueName: "host:port")) var router: String?
    @Flag(help: "With --attach: restart Redis too (only when ops/up started it: it restarts it).") var restartRedis = false
    @Option(help: "Where logs and Redis's data go (emptied first).") var directory = ".swerve/chaos"
    @Option(help: "Seconds of faults, at most.") var duration = 60
    @Option(help: "Leader faults, at most (they rotate SIGKILL, SIGSTOP, SIGTERM, SIGINT and, with partitions, a partition).") var kills = 30
    @Option(help: "The controllers' lease TTL, in milliseconds (attached: the cluster's, for timeouts).") var leaseTTLMs = 1000
    @Option(help: "The lowest share of HTTP requests that must succeed.") var minSuccess = 0.99
    @Option(help: "Seconds to wait for the cluster to settle after the faults.") var settleTimeout = 90
    @Option(help: "Fail unless each kind of leader fault happened at least this often (CI sets it).") var minEach = 0
    @Option(help: "Fail unless each other kind of fault (workers, node agents, Redis) happened at least this often.") var minEachOther = 0
    @Option(help: ArgumentHelp("""
        Partition the leader: each controller runs in a network namespace of its own and a fault \
        drops its packets at the host (needs root, ip and iptables; a cluster of its own). auto: when \
        possible; on: fail when not possible; off: never.
        """, valueName: "auto|on|off"))
    var partitions = PartitionMode.auto
    @Flag(help: """
        Run Redis highly available (a master, two replicas, three Sentinels; every process connects \
        through them) and fail it over: SIGKILL the master, kept down until a replica was promoted \
        (a cluster of its own; not with partitions).
        """)
    var redisFailover = false

    enum PartitionMode: String, ExpressibleByArgument, Sendable { case auto, on, off }

    func validate() throws {
        if attach == nil, swerve == nil { throw ValidationError("give --swerve (to start a cluster) or --attach (to use a running one)") }
        if attach != nil, router == nil { throw ValidationError("--attach needs --router HOST:PORT (ops/up prints it)") }
        guard duration > 0 else { throw ValidationError("--duration: must be > 0, got \(duration)") }
        guard kills >= 0 else { throw ValidationError("--kills: must be ≥ 0, got \(kills)") }
        guard leaseTTLMs >= 300 else { throw ValidationError("--lease-ttl-ms: must be ≥ 300, got \(leaseTTLMs)") }
        guard (0...1).contains(minSuccess) else { throw ValidationError("--min-success: must be between 0 and 1, got \(minSuccess)") }
        if partitions == .on, attach != nil { throw ValidationError("--partitions on: needs a cluster of its own (not --attach)") }
        if redisFailover, attach != nil { throw ValidationError("--redis-failover: needs a cluster of its own (not --attach)") }
        if redisFailover, partitions == .on {
            throw ValidationError("--redis-failover with --partitions on: controllers in namespaces cannot reach the sentinels' loopback addresses; run them apart")
        }
        if partitions == .on, !NetworkNamespace.available {
            throw ValidationError("--partitions on: needs root and /usr/sbin/ip and /usr/sbin/iptables (apt-get install iproute2 iptables)")
        }
    }

    enum Fault: String, CaseIterable {
        case killLeader = "SIGKILL leader", stopLeader = "SIGSTOP leader", termLeader = "SIGTERM leader", intLeader = "SIGINT leader"
        case partitionLeader = "partition leader"
        case killWorker = "SIGKILL worker", killNode = "SIGKILL node agent", termNode = "SIGTERM node agent"
        case restartRedis = "restart Redis", pauseRedis = "pause Redis", stopRedis = "stop Redis"
        case failoverRedis = "fail over Redis"
    }

    func run() async throws {
        let started = ContinuousClock.now
        @Sendable func say(_ line: String) {
            let elapsed = Self.seconds(ContinuousClock.now - started)
            print("[" + String(repeating: " ", count: max(0, 8 - elapsed.count)) + elapsed + "] " + line)
            fflush(nil) // all streams: stdout without naming the global
        }

        // A cluster of its own (supervised, so what a fault kills comes back), or a running one.
        let keys: ClusterKeys
        let redisURL: String
        /// The harness's own connection: the environment's credentials when attached, the
        /// admin user's on a cluster of its own with ACLs.
        let redisConfiguration: RedisConfiguration
        let listen: String
        var owned: LocalCluster?
        var supervisor: Task<Void, Never>?
        // Each controller's namespace, when partitions are on: removed after the cluster stopped.
        var namespaces: [String: NetworkNamespace] = [:]
        var controllerMetricsPort = 0
        defer { for namespace in namespaces.values { namespace.remove() } }
        if let attach, let router {
            keys = try ClusterKeys(cluster: cluster)
            redisURL = attach
            redisConfiguration = try RedisConfiguration(url: attach, environment: ProcessInfo.processInfo.environment)
            listen = router
            say("attached to cluster \(keys.cluster): redis \(redisURL), router \(listen)")
        } else {
            try? FileManager.default.removeItem(atPath: directory)
            var settings = LocalCluster.Settings(swerve: swerve ?? "swerve", directory: directory, cluster: "chaos\(UInt32.random(in: 0...UInt32.max))", leaseTTLMs: leaseTTLMs)
            settings.nodeCPU = 16
            settings.highlyAvailable = redisFailover
            if partitions == .on || (partitions == .auto && NetworkNamespace.available && !redisFailover) {
                for index in 1...3 { namespaces["controller-\(index)"] = try NetworkNamespace(prefix: "swerve-chaos") }
                settings.namespaces = namespaces
                // Each in a namespace of its own: one port serves them all, on each one's loopback.
                controllerMetricsPort = try freeLoopbackPort()
            }
            let cluster = try LocalCluster(settings: settings)
            owned = cluster
            try await cluster.startRedis()
            for index in 1...3 {
                try cluster.startController("controller-\(index)", extra: namespaces.isEmpty ? [] : ["--metrics-address", "127.0.0.1:\(controllerMetricsPort)"])
            }
            for index in 1...2 { try cluster.startNode("node-\(index)") }
            listen = "127.0.0.1:\(try freeLoopbackPort())"
            try cluster.startRouter("router-1", listen: listen, admin: "127.0.0.1:\(try freeLoopbackPort())")
            supervisor = cluster.supervise { name in say("supervisor: restarted \(name)") }
            keys = cluster.keys
            redisURL = cluster.redisURL
            redisConfiguration = try cluster.redisConfiguration()
            say("cluster \(keys.cluster) up: redis \(redisURL), router \(listen), logs \(cluster.logDirectory)"
                + (namespaces.isEmpty ? "" : "; controllers in namespaces " + namespaces.sorted { $0.key < $1.key }.map(\.value.name).joined(separator: ", ")))
        }
        defer {
            supervisor?.cancel()
            owned?.stopAll()
        }
        let logs = owned?.logDirectory
        let mayRestartRedis = owned != nil || restartRedis

        let logger = Logger(label: "swerve-ops") { _ in SwiftLogNoOpLogHandler() }
        let redis = RedisClient(configuration: redisConfiguration, logger: logger)
        defer { redis.close() }
        let client = ClusterClient(keys: keys, client: redis, logger: logger)
        let watch = LeaderWatch(client: client)
        let watching = Task { await watch.run() }
        defer { watching.cancel() }
        let victims = Victims(client: client, redis: redis)
        let baseline = try await victims.quietBaseline(keys: keys)
        let redisBefore = try await victims.redisFootprint(keys: keys)

        let ledger = RequestLedger(client: client)
        let echo = { (round: Int) in ReplicaConfig(workload: .builtin(name: "echo", options: ["round": .number(Double(round))]), resources: Resources(cpu: 0.1)) }
        let created = try await ledger.submit(.createBackend(tag: "chaos", config: BackendConfig(numReplicas: 3, gracefulShutdownWaitLoopS: 0.2, routePrefix: "/chaos"),
                                                             replicaConfig: echo(0)))
        guard try await client.wait(for: created, backend: "chaos", progress: { _ in }).failure == nil else { throw LauncherError("the backend did not come up") }
        try await awaitRouted(redis, keys: keys)
        say("backend chaos: 3 replicas running and routed; load starts")

        let load = try LoadGenerator(address: listen, path: "/chaos/load", pause: .milliseconds(4))
        load.start(threads: 4)

        // Changes between faults, every 2.5 s: scale between 2 and 4, or roll to a new version.
        // (Submitted from the fault loop, so never while Redis restarts: a request whose
        // connection dropped mid-write might or might not be in the stream.)
        var round = 1
        var nextChange = ContinuousClock.now + .milliseconds(2500)
        func change() async throws {
            guard ContinuousClock.now >= nextChange else { return }
            let operation: Request.Operation = round % 2 == 0
                ? .updateBackendConfig(tag: "chaos", patch: BackendConfigPatch(numReplicas: 2 + round % 3))
                : .createBackend(tag: "chaos", config: BackendConfig(numReplicas: 2 + round % 3, gracefulShutdownWaitLoopS: 0.2, routePrefix: "/chaos"), replicaConfig: echo(round))
            _ = try await ledger.submit(operation)
            say(round % 2 == 0 ? "scale chaos to \(2 + round % 3)" : "roll chaos to round \(round) (\(2 + round % 3) replicas)")
            round += 1
            nextChange = ContinuousClock.now + .milliseconds(2500)
        }

        // Faults.
        let ttl = Duration.milliseconds(leaseTTLMs)
        var failovers: [Fault: [Duration]] = [:]
        var counts: [Fault: Int] = [:]
        var violations: [String] = []
        var termNodeFailures = 0
        var controlBack: [Duration] = []
        let leaderFaults: [Fault] = [.killLeader, .stopLeader, .termLeader, .intLeader] + (namespaces.isEmpty ? [] : [.partitionLeader])
        let others: [Fault] = redisFailover ? [.killWorker, .termNode, .failoverRedis, .killNode]
            : owned != nil ? [.killWorker, .termNode, .restartRedis, .killNode, .pauseRedis, .stopRedis]
            : mayRestartRedis ? [.killWorker, .termNode, .restartRedis, .killNode, .pauseRedis] : [.killWorker, .termNode, .killNode]
        let hostile = HostileClient(redis: redis, keys: keys)
        var leaderFaultCount = 0
        let deadline = started + .seconds(duration)
        while ContinuousClock.now < deadline, leaderFaultCount < kills {
            try await change()
            try await hostile.writeOne()
            let fault: Fault
            if leaderFaultCount > 0, leaderFaultCount % 3 == 0, counts.values.reduce(0, +) - leaderFaultCount < leaderFaultCount / 3 {
                fault = others[(leaderFaultCount / 3 - 1) % others.count]
            } else {
                fault = leaderFaults[leaderFaultCount % leaderFaults.count]
                leaderFaultCount += 1
            }
            counts[fault, default: 0] += 1
            switch fault {
            case .killLeader, .stopLeader, .termLeader, .intLeader:
                guard await watch.awaitLeader(timeout: .seconds(15)) != nil else {
                    violations.append("no controller led for 15 s before a \(fault.rawValue)")
                    break
                }
                // The record names the pid; its epoch is what the successor must exceed.
                let (leader, pid) = try await victims.leader()
                let signal = switch fault { case .killLeader: SIGKILL; case .stopLeader: SIGSTOP; case .intLeader: SIGINT; default: SIGTERM }
                let at = ContinuousClock.now
                kill(pid, signal)
                guard let successor = await watch.awaitSuccessor(of: leader, timeout: ttl * 4 + .seconds(5)) else {
                    violations.append("no new leader within \(ttl * 4 + .seconds(5)) of a \(fault.rawValue) (\(leader.id))")
                    if fault == .stopLeader { kill(pid, SIGCONT) }
                    break
                }
                failovers[fault, default: []].append(successor.at - at)
                say("\(fault.rawValue) \(leader.id) (epoch \(leader.epoch)) → \(successor.id) leads (epoch \(successor.epoch)) after \(Self.ms(successor.at - at))")
                if fault == .stopLeader {
                    // Keep it stopped well beyond the TTL, then let it wake up deposed.
                    let wake = at + ttl * 3 / 2
                    if ContinuousClock.now < wake { try await Task.sleep(until: wake) }
                    kill(pid, SIGCONT)
                }
            case .partitionLeader:
                guard await watch.awaitLeader(timeout: .seconds(15)) != nil else {
                    violations.append("no controller led for 15 s before a \(fault.rawValue)")
                    break
                }
                let (leader, _) = try await victims.leader()
                guard let namespace = namespaces[leader.id] else {
                    violations.append("the leader \(leader.id) runs in no namespace of this harness")
                    break
                }
                // Its packets vanish at the host: its renew hangs, and it must step down on its
                // own clock before the lease expires in Redis and another takes over.
                try namespace.cut()
                let at = ContinuousClock.now
                let successor = await watch.awaitSuccessor(of: leader, timeout: ttl * 4 + .seconds(5))
                if let successor {
                    failovers[fault, default: []].append(successor.at - at)
                    switch namespace.controllerIsLeader(metricsPort: controllerMetricsPort) {
                    case false?: break
                    case true?: violations.append("\(leader.id), cut off, still said it led when \(successor.id) took over (epoch \(successor.epoch))")
                    case nil: violations.append("\(leader.id)'s metrics did not answer inside its namespace \(namespace.name)")
                    }
                    say("partition \(leader.id) (epoch \(leader.epoch)) from Redis → \(successor.id) leads (epoch \(successor.epoch)) after \(Self.ms(successor.at - at))")
                } else {
                    violations.append("no new leader within \(ttl * 4 + .seconds(5)) of a \(fault.rawValue) (\(leader.id))")
                }
                // Heal once the lease is long gone: its late writes arrive, and the epoch fences them.
                let heal = at + ttl * 3 / 2
                if ContinuousClock.now < heal { try await Task.sleep(until: heal) }
                try namespace.heal()
            case .killWorker:
                if let (tag, pid) = try await victims.worker() {
                    kill(pid, SIGKILL)
                    say("SIGKILL worker \(tag) (pid \(pid))")
                }
            case .killNode:
                if let (id, pid) = try await victims.node() {
                    kill(pid, SIGKILL)
                    say("SIGKILL node agent \(id) (pid \(pid)); its workers exit with it")
                }
            case .termNode:
                // A routine restart of an agent: it drains its node, and no request may fail.
                guard let (id, pid) = try await victims.node() else { break }
                let failedBefore = load.failed
                kill(pid, SIGTERM)
                say("SIGTERM node agent \(id) (pid \(pid)): it drains its node")
                let exitBy = ContinuousClock.now + .seconds(40)
                while kill(pid, 0) == 0, ContinuousClock.now < exitBy { try await Task.sleep(for: .milliseconds(50)) }
                if kill(pid, 0) == 0 { violations.append("node agent \(id) did not exit within 40 s of its SIGTERM") }
                let failed = load.failed - failedBefore
                termNodeFailures += failed
                say("node agent \(id) drained and exited; \(failed) requests failed meanwhile")
            case .pauseRedis, .stopRedis:
                // Frozen or gone beyond the node TTL: every node and ready key has expired when
                // it is back. No replica may be restarted for that.
                try await awaitConverged(client, ledger: ledger, timeout: .seconds(30))
                let before = try await Self.runningPids(client)
                if fault == .pauseRedis {
                    let pid = try await victims.redisPID()
                    kill(pid, SIGSTOP)
                    say("SIGSTOP Redis (pid \(pid)) for 4 s, beyond the node TTL")
                    try await Task.sleep(for: .seconds(4))
                    kill(pid, SIGCONT)
                } else if let owned {
                    // Stopped on purpose, so the supervisor leaves it down until started here.
                    owned.stop("redis", timeout: .seconds(10))
                    say("stopped Redis (SIGTERM; AOF kept) for 4 s, beyond the node TTL")
                    try await Task.sleep(for: .seconds(4))
                    try await owned.startRedis()
                }
                // The leader's grace after it reloads is 5 s: watch well past it.
                try await Task.sleep(for: .seconds(7))
                let after = try await Self.runningPids(client)
                let restarted = before.filter { after[$0.key] != $0.value }.map(\.key).sorted()
                if !restarted.isEmpty {
                    let what = "\(fault == .pauseRedis ? "pausing" : "stopping") Redis beyond the node TTL restarted \(restarted.joined(separator: ", "))"
                    violations.append(what)
                    say("VIOLATION: \(what)")
                }
                say("Redis back; \(restarted.count) replicas restarted")
            case .failoverRedis:
                guard let owned else { break }
                // The master dies and stays down until the sentinels promoted a replica (the
                // supervisor would otherwise bring it back before they noticed). No replica may
                // be restarted for it, and control must come back.
                try await awaitConverged(client, ledger: ledger, timeout: .seconds(30))
                let before = try await Self.runningPids(client)
                let pid = try await victims.redisPID()
                guard let master = owned.member(pid: pid) else {
                    violations.append("the Redis master (pid \(pid)) is none of this cluster's processes")
                    break
                }
                owned.hold(master.name)
                let at = ContinuousClock.now
                kill(pid, SIGKILL)
                say("SIGKILL the Redis master \(master.name) (pid \(pid)): the sentinels promote a replica")
                try await victims.awaitRedis(otherThan: pid)
                try await victims.awaitWritable()
                // Control is back once a request submitted now is applied by a leader.
                let probe = try await ledger.submit(.updateBackendConfig(tag: "chaos", patch: BackendConfigPatch(gracefulShutdownWaitLoopS: 0.2)))
                while (try? await client.goalOutcome(probe)) == nil {
                    guard ContinuousClock.now - at < .seconds(60) else {
                        violations.append("no leader applied a request within 60 s of the Redis master's death")
                        break
                    }
                    try await Task.sleep(for: .milliseconds(20))
                }
                controlBack.append(.now - at)
                owned.release(master.name)
                say("Redis failed over; a request was applied \(Self.ms(.now - at)) after the master died; \(master.name) comes back as a replica")
                try await Task.sleep(for: .seconds(7)) // past the leader's adoption grace
                let after = try await Self.runningPids(client)
                let restarted = before.filter { after[$0.key] != $0.value }.map(\.key).sorted()
                if !restarted.isEmpty {
                    let what = "failing Redis over restarted \(restarted.joined(separator: ", "))"
                    violations.append(what)
                    say("VIOLATION: \(what)")
                }
            case .restartRedis:
                let pid = try await victims.redisPID()
                say("restarting Redis (SIGTERM pid \(pid); the supervisor starts it again on its port and AOF)")
                kill(pid, SIGTERM)
                try await victims.awaitRedis(otherThan: pid)
                say("Redis is back")
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 200...600)))
        }

        // Quiet: one last change, then wait until it holds everywhere.
        say("faults done; settling")
        let last = try await ledger.submit(.updateBackendConfig(tag: "chaos", patch: BackendConfigPatch(numReplicas: 3)))
        let settleDeadline = ContinuousClock.now + .seconds(settleTimeout)
        var settled: (state: BackendState, workers: [(tag: String, pid: Int32)])?
        while ContinuousClock.now < settleDeadline {
            if (try? await client.goalOutcome(last)) != nil,
               let state = try? await client.checkpoint(), ChaosInvariants.replicasConverged(state).isEmpty {
                let workers = HostInspection.workerProcesses(cluster: keys.cluster)
                if ChaosInvariants.workersMatchReplicas(workers, state).isEmpty, await ledger.allSettled() {
                    settled = (state, workers)
                    break
                }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        await load.stop()
        let hostileReport = await hostile.report()
        violations += hostileReport.violations
        if termNodeFailures > 0 { violations.append("\(termNodeFailures) requests failed while node agents drained after SIGTERM (none may)") }
        let state = try await client.checkpoint()
        let workers = settled?.workers ?? HostInspection.workerProcesses(cluster: keys.cluster)
        if settled == nil { violations.append("the cluster did not settle within \(settleTimeout) s") }

        // Checks.
        violations += ChaosInvariants.oneControllerPerEpoch(try await client.recentEvents(count: ClusterKeys.eventsLimit * 2).map { ($0.epoch, $0.controller) })
        violations += ChaosInvariants.electionsIncrease(watch.elections.map { ($0.epoch, $0.id) })
        violations += ChaosInvariants.replicasConverged(state)
        violations += ChaosInvariants.workersMatchReplicas(workers, state)
        let inStream = try await victims.requestsAdded(keys: keys) - baseline.inStream
        let redisAfter = try await victims.redisFootprint(keys: keys)
        let applied = state.requestsApplied - baseline.applied
        let submitted = await ledger.goals.count + hostileReport.entries
        violations += ChaosInvariants.requestsAndGoals(submitted: submitted, inStream: inStream, applied: applied, goals: await ledger.outcomes())
        let tally = load.tally
        let sent = tally.values.map(\.count).reduce(0, +)
        let succeeded = tally.filter { $0.key.hasPrefix("2") }.values.map(\.count).reduce(0, +)
        let ratio = sent == 0 ? 0 : Double(succeeded) / Double(sent)
        if ratio < minSuccess { violations.append(String(format: "HTTP success %.4f is below --min-success %.4f", ratio, minSuccess)) }
        for fault in leaderFaults where failovers[fault, default: []].count < minEach {
            violations.append("only \(failovers[fault, default: []].count) \(fault.rawValue) faults with a failover (--min-each \(minEach)); raise --duration")
        }
        for fault in others where counts[fault, default: 0] < minEachOther {
            violations.append("only \(counts[fault, default: 0]) \(fault.rawValue) faults (--min-each-other \(minEachOther)); raise --kills")
        }
        let refused = logs.map(HostInspection.fencedRefusals(in:))

        // Report.
        print("\n== chaos report (cluster \(keys.cluster), \(Self.ms(ContinuousClock.now - started)) in all) ==")
        print("faults:       " + (leaderFaults + others).map { "\($0.rawValue) ×\(counts[$0] ?? 0)" }.joined(separator: ", "))
        if namespaces.isEmpty {
            print("partitions:   none (" + (redisFailover ? "not with --redis-failover: namespaces cannot reach the sentinels' loopback)"
                                                          : "--partitions \(partitions.rawValue); they need root, ip and iptables, and a cluster of its own)"))
        }
        for fault in leaderFaults {
            let times = (failovers[fault] ?? []).sorted()
            guard !times.isEmpty else { continue }
            print("failover:     \(fault.rawValue): median \(Self.ms(times[times.count / 2])), max \(Self.ms(times.last!)) (\(times.count))")
        }
        if !controlBack.isEmpty {
            let sorted = controlBack.sorted()
            print("redis:        failover: master SIGKILL → a request applied: median \(Self.ms(sorted[sorted.count / 2])), max \(Self.ms(sorted.last!)) (\(sorted.count))")
        }
        print("leadership:   \(watch.elections.count) elections; longest time with no leader record \(Self.ms(watch.longestGap))")
        print("fencing:      " + (refused.map { "\($0) writes refused by the lease (each changed nothing)" } ?? "see the controllers' logs (attached)"))
        print("requests:     \(submitted) submitted, \(inStream) more in the stream, \(applied) more applied")
        print("redis:        \(redisAfter.keys) keys (\(redisAfter.goals) of them goal outcomes, kept a day), \(redisAfter.memory / 1024) KiB used"
              + " (before the run: \(redisBefore.keys) keys, \(redisBefore.goals) goals, \(redisBefore.memory / 1024) KiB)")
        print(String(format: "http:         %d sent, %d succeeded (%.4f)", sent, succeeded, ratio))
        print("hostile:      \(hostileReport.entries) invalid or malformed entries written, \(hostileReport.failedGoals) goals failed with a reason")
        for (outcome, seen) in tally.sorted(by: { $0.value.count > $1.value.count }) where !outcome.hasPrefix("2") {
            print("              failed: \(seen.count) × \(outcome) (first at \(Self.seconds(seen.first - started)))")
        }
        print("replicas:     " + state.backends.map { "\($0.tag) \($0.replicas.filter { $0.state == .running }.count)/\($0.config.numReplicas) running" }.joined(separator: ", ")
              + "; \(workers.count) worker processes")
        if attach != nil {
            // Leave the cluster as it was found.
            let removal = try await client.submit(.deleteBackend(tag: "chaos", force: false))
            _ = try? await client.wait(for: removal, backend: nil, leaderless: .seconds(30)) { _ in }
            print("cleanup:      backend chaos deleted")
        }
        if violations.isEmpty {
            print("result:       ok — no violation")
        } else {
            print("result:       \(violations.count) violation\(violations.count == 1 ? "" : "s"):")
            for violation in violations { print("  - \(violation)") }
            throw ExitCode(1)
        }
    }

    /// Every RUNNING replica and its worker's pid.
    static func runningPids(_ client: ClusterClient) async throws -> [String: Int32] {
        var pids: [String: Int32] = [:]
        for replica in try await client.checkpoint().backends.flatMap(\.replicas) where replica.state == .running {
            pids[replica.tag] = replica.endpoint?.pid ?? -1
        }
        return pids
    }

    /// Waits until every submitted request settled and no rollout or scaling is in progress, so
    /// that what happens next is the fault's doing (a roll submitted just before would otherwise
    /// replace replicas during the fault, and look like restarts it caused).
    private func awaitConverged(_ client: ClusterClient, ledger: RequestLedger, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await ledger.allSettled(), let state = try? await client.checkpoint(), ChaosInvariants.replicasConverged(state).isEmpty { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw LauncherError("the cluster did not converge within \(timeout) before pausing Redis")
    }

    private func awaitRouted(_ redis: RedisClient, keys: ClusterKeys) async throws {
        for _ in 0..<500 {
            if let snapshot = try? await ClusterClient.routingSnapshot(client: redis, keys: keys),
               snapshot.view.backends["chaos"]?.isEmpty == false { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw LauncherError("backend chaos was never routed")
    }

    /// `12.3 s`, as the progress lines' timestamps.
    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f s", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }

    static func ms(_ duration: Duration) -> String {
        let milliseconds = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        return milliseconds >= 10_000 ? String(format: "%.1f s", milliseconds / 1000) : String(format: "%.0f ms", milliseconds)
    }
}
