import Foundation
import Glibc
import SwerveSystem
import Synchronization

/// One check of a compose deployment, in order: up, healthy, traffic through both routers,
/// the CLI inside a container, then each kill under load. Records what it measured and every
/// problem it found; ``summary`` is the one line `swerve-ops compose` ends with.
final class ComposeRun: Sendable {
    let containers: ContainerEngine
    /// router-1 and router-2 as published on the host.
    let routers: [String]
    let healthTimeout: Duration
    let loadTime: Duration
    private let started = ContinuousClock.now
    private let record = Mutex(Record())

    private struct Record {
        var healthy = 0
        var requests = 0
        var failed = 0
        var failovers: [Int64] = []
        var problems: [String] = []
    }

    init(containers: ContainerEngine, routers: [String], healthTimeout: Duration, loadTime: Duration) {
        self.containers = containers
        self.routers = routers
        self.healthTimeout = healthTimeout
        self.loadTime = loadTime
    }

    var problems: [String] { record.withLock { $0.problems } }

    /// `compose: N services healthy, R requests, F failed, failover X ms` (the slowest leader
    /// failover seen).
    var summary: String {
        record.withLock { record in
            let failover = record.failovers.max().map { "\($0) ms" } ?? "not measured"
            var line = "compose: \(record.healthy) services healthy, \(record.requests) requests, \(record.failed) failed, failover \(failover)"
            if !record.problems.isEmpty { line += " — \(record.problems.count) problem(s): " + record.problems.joined(separator: "; ") }
            return line
        }
    }

    func say(_ line: String) {
        let elapsed = ChaosCommand.seconds(ContinuousClock.now - started)
        print("[" + String(repeating: " ", count: max(0, 8 - elapsed.count)) + elapsed + "] " + line)
        fflush(nil)
    }

    /// Tries `attempt` every `interval` until it returns a value or `timeout` passed (then nil).
    /// What it waits on is outside the harness (containers, the engine's CLI): nothing to
    /// subscribe to, so it polls.
    private func poll<Value>(for timeout: Duration, every interval: Duration, _ attempt: () async -> Value?) async throws -> Value? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let value = await attempt() { return value }
            try await Task.sleep(for: interval)
        }
        return nil
    }

    private func problem(_ text: String) {
        say("PROBLEM: \(text)")
        record.withLock { $0.problems.append(text) }
    }

    // MARK: The check

    func check() async throws {
        say("starting \(containers.files.joined(separator: " + ")) as project \(containers.project) on \(containers.kind.rawValue)")
        // What an earlier run left (interrupted, or --keep) goes first, volumes included.
        _ = await containers.compose(["down", "-v"])
        let up = await containers.compose(["up", "-d", "--no-build"])
        guard up.succeeded else { throw ComposeFailure("compose up failed:\n\(up.output)") }
        try await awaitHealthy(every: ComposeCommand.services)
        try await awaitApplied()
        record.withLock { $0.healthy = ComposeCommand.services.count }
        say("all \(ComposeCommand.services.count) services healthy; the example backends applied")

        for router in routers { try await awaitServing(router) }
        for (index, router) in routers.enumerated() {
            let (ok, failed) = try await burst(router, path: "/hello", count: 50)
            count(ok + failed, failed: failed)
            if failed > 0 { problem("router-\(index + 1): \(failed) of 50 requests failed") }
        }
        say("both routers serve /hello")
        try await checkColdStart()
        try await checkBackendsFromInside()
        try await checkDashboard()

        try await killLeader()
        try await killNode()
        try await killRouter()
        try await killRedisMaster()
    }

    /// The dashboard, as the reader role behind the ACLs: its state names the leader and every
    /// example backend.
    private func checkDashboard() async throws {
        let result = await containers.exec("dashboard", ["curl", "-fsS", "http://127.0.0.1:8080/api/state"])
        guard result.succeeded, let state = try? JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any] else {
            throw ComposeFailure("the dashboard did not answer /api/state: \(result.output.prefix(500))")
        }
        let leader = (state["leader"] as? [String: Any])?["id"] as? String
        let backends = Set((state["backends"] as? [[String: Any]] ?? []).compactMap { $0["tag"] as? String })
        guard leader != nil, backends.isSuperset(of: ["hello", "slow", "auto"]) else {
            throw ComposeFailure("the dashboard shows leader \(leader ?? "none") and backends \(backends.sorted()), not the example backends")
        }
        say("the dashboard (reader role) shows leader \(leader ?? "") and backends \(backends.sorted().joined(separator: ", "))")
    }

    /// `swerve get backends -o json` inside a controller container: every backend healthy.
    private func checkBackendsFromInside() async throws {
        var last = ""
        let healthy: Bool? = try await poll(for: .seconds(60), every: .milliseconds(500)) {
            let result = await containers.exec("controller-1", ["swerve", "get", "backends", "-o", "json"])
            last = result.output
            guard result.succeeded, let rows = try? JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [[String: Any]] else { return nil }
            let all = Set(rows.compactMap { $0["name"] as? String }) == ["hello", "slow", "auto"] && rows.allSatisfy { $0["status"] as? String == "healthy" }
            return all ? true : nil
        }
        guard healthy != nil else {
            throw ComposeFailure("swerve get backends inside controller-1 never showed hello, slow and auto healthy; last:\n\(last)")
        }
        say("swerve get backends (inside controller-1): hello, slow and auto healthy")
    }

    /// The example's autoscaled backend runs no replica until a request comes: the first one
    /// through a router is held while the leader starts one (the router's load report and
    /// wake-up pass its ACL role, the worker starts in its node's container), then answered.
    private func checkColdStart() async throws {
        let router = routers[0]
        let load = try LoadGenerator(address: router, path: "/auto/x?ms=1", pause: .zero)
        let started = ContinuousClock.now
        let outcome = await load.once()
        count(1, failed: outcome.hasPrefix("2") ? 0 : 1)
        guard outcome.hasPrefix("2") else { throw ComposeFailure("the first request to the autoscaled backend auto (at 0 replicas) got \(outcome), not 200") }
        say("auto (autoscaled, 0 replicas) served its first request after a cold start of \(Int((ContinuousClock.now - started) / .milliseconds(1))) ms")
    }

    // MARK: Faults

    /// The leader's container killed under load through router-2: a new leader, no failed request.
    private func killLeader() async throws {
        let before = try await leader()
        let victim = before.id
        say("killing the leader's container (\(victim), epoch \(before.epoch)) under load through router-2")
        try await underLoad(routers[1], allowedFailures: 0, what: "leader kill") {
            let killedAt = wallClockMilliseconds()
            try await self.kill(victim)
            let found = try await self.poll(for: .seconds(30), every: .milliseconds(100)) {
                (try? await self.leader(excluding: victim)).flatMap { $0.epoch > before.epoch ? $0 : nil }
            }
            guard let next = found else { throw ComposeFailure("no new leader within 30 s of killing \(victim)") }
            let failover = next.since - killedAt
            self.record.withLock { $0.failovers.append(failover) }
            self.say("new leader \(next.id), epoch \(next.epoch), \(failover) ms after the kill")
        }
        try await awaitHealthy(every: ComposeCommand.services)
        say("every service healthy again (\(victim) restarted by its restart policy)")
    }

    /// A node's container killed under load through router-1: only requests in flight on its
    /// replicas may fail; the backends come back to their targets on what remains.
    private func killNode() async throws {
        say("killing node-2's container under load through router-1")
        try await underLoad(routers[0], allowedFailures: LoadShape.threads, what: "node kill") {
            try await self.kill("node-2")
        }
        try await awaitHealthy(every: ComposeCommand.services)
        try await checkBackendsFromInside()
    }

    /// router-2's container killed under load through router-1: no failed request there, and
    /// router-2 serves again once restarted.
    private func killRouter() async throws {
        say("killing router-2's container under load through router-1")
        try await underLoad(routers[0], allowedFailures: 0, what: "router kill") {
            try await self.kill("router-2")
        }
        try await awaitHealthy(every: ComposeCommand.services)
        try await awaitServing(routers[1])
        say("router-2 serves again")
    }

    /// The Redis master's container stopped at once (`stop -t 0`: SIGKILL, and no restart)
    /// under load through router-2: no failed request (routers serve from their last view
    /// meanwhile); the sentinels promote a replica; the old master, started again, follows it;
    /// a request submitted afterwards is applied, and the backends are still there and healthy.
    private func killRedisMaster() async throws {
        let master = try await redisMaster()
        say("killing the Redis master's container (\(master)) under load through router-2; it stays down until a replica is promoted")
        try await underLoad(routers[1], allowedFailures: 0, what: "Redis master kill") {
            let stopped = await self.containers.engine(["stop", "-t", "0", self.containers.container(master)])
            guard stopped.succeeded else { throw ComposeFailure("cannot stop \(master): \(stopped.output)") }
            let promoted: String? = try await self.poll(for: .seconds(60), every: .milliseconds(250)) {
                let now = try? await self.redisMaster()
                return now != master ? now : nil
            }
            guard let promoted else { throw ComposeFailure("the sentinels promoted no replica within 60 s of \(master)'s death") }
            self.say("the sentinels promoted \(promoted)")
        }
        let started = await containers.engine(["start", containers.container(master)])
        guard started.succeeded else { throw ComposeFailure("cannot start \(master) again: \(started.output)") }
        try await awaitHealthy(every: ComposeCommand.services)
        say("\(master) is back and follows \(try await redisMaster())")
        // Control is back: a request through the new master is applied (scaling to what runs).
        let scaled = await containers.exec("controller-1", ["swerve", "scale", "slow", "1"])
        guard scaled.succeeded else { throw ComposeFailure("swerve scale slow 1 inside controller-1 failed after the failover:\n\(scaled.output)") }
        try await checkBackendsFromInside()
        _ = try await leader()
        say("a request was applied after the Redis master's death; a controller leads")
    }

    /// The service the sentinels name as the Redis master (sentinel-1, else the others).
    private func redisMaster() async throws -> String {
        var last = ""
        let named: String? = try await poll(for: healthTimeout, every: .milliseconds(500)) {
            for sentinel in ["sentinel-1", "sentinel-2", "sentinel-3"] {
                let result = await containers.exec(sentinel, ["sh", "-c",
                    "redis-cli -p 26379 --no-auth-warning --user swerve-sentinel --pass \"$(cat /run/secrets/swerve-sentinel)\" sentinel get-master-addr-by-name swerve"])
                last = result.output
                let host = result.output.split(separator: "\n").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                if result.succeeded, ComposeCommand.services.contains(host), host.hasPrefix("redis-") { return host }
            }
            return nil
        }
        guard let named else { throw ComposeFailure("no sentinel names a Redis master service (last answer: \(last))") }
        return named
    }

    /// SIGKILLs the container's main process from the host, as a crash or the OOM killer
    /// would: the whole container dies (its PID namespace with it), and its restart policy
    /// brings it back. (`podman kill` or `docker kill` would count as an operator's stop,
    /// which the `unless-stopped` policy rightly leaves stopped.)
    private func kill(_ service: String) async throws {
        let inspected = await containers.engine(["inspect", "--format", "{{.State.Pid}}", containers.container(service)])
        guard inspected.succeeded, let pid = Int32(inspected.output.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 else {
            throw ComposeFailure("cannot find the main process of \(service): \(inspected.output)")
        }
        guard Glibc.kill(pid, SIGKILL) == 0 else { throw ComposeFailure("cannot kill \(service) (pid \(pid)): \(String(cString: strerror(errno)))") }
    }

    // MARK: Load

    enum LoadShape {
        static let threads = 4
        static let pause = Duration.milliseconds(5)
    }

    /// Runs `fault` while load goes through `router` (from `loadTime` before it until
    /// `loadTime` after it), counts the outcomes, and records a problem when more than
    /// `allowedFailures` requests failed. Returns the failures.
    @discardableResult
    private func underLoad(_ router: String, allowedFailures: Int, what: String, _ fault: @escaping @Sendable () async throws -> Void) async throws -> Int {
        let load = try LoadGenerator(address: router, path: "/hello", pause: LoadShape.pause)
        load.start(threads: LoadShape.threads)
        try await Task.sleep(for: loadTime)
        do {
            try await fault()
        } catch {
            await load.stop()
            throw error
        }
        try await Task.sleep(for: loadTime)
        await load.stop()
        let tally = load.tally
        let total = tally.values.reduce(0) { $0 + $1.count }
        let failed = tally.filter { !$0.key.hasPrefix("2") }
        let failures = failed.values.reduce(0) { $0 + $1.count }
        count(total, failed: failures)
        let reasons = failed.map { "\($0.value.count)× \($0.key)" }.sorted().joined(separator: ", ")
        say("\(what): \(total) requests through \(router), \(failures) failed\(reasons.isEmpty ? "" : " (\(reasons))")")
        if failures > allowedFailures { problem("\(what): \(failures) failed requests (allowed \(allowedFailures)): \(reasons)") }
        if total == 0 { problem("\(what): no request was sent") }
        return failures
    }

    private func count(_ requests: Int, failed: Int) {
        record.withLock { $0.requests += requests; $0.failed += failed }
    }

    /// `count` requests one after another through `router`: how many were 2xx and how many not.
    private func burst(_ router: String, path: String, count: Int) async throws -> (ok: Int, failed: Int) {
        let load = try LoadGenerator(address: router, path: path, pause: .zero)
        var ok = 0
        var failed = 0
        for _ in 0..<count {
            if (await load.once()).hasPrefix("2") { ok += 1 } else { failed += 1 }
        }
        return (ok, failed)
    }

    /// Waits until `router` answers `/hello` with 200.
    private func awaitServing(_ router: String) async throws {
        let load = try LoadGenerator(address: router, path: "/hello", pause: .zero)
        var last = ""
        let served: Bool? = try await poll(for: healthTimeout, every: .milliseconds(200)) {
            last = await load.once()
            return last == "200" ? true : nil
        }
        guard served != nil else { throw ComposeFailure("\(router) never answered /hello with 200 (last: \(last))") }
    }

    // MARK: Health

    /// Waits until every service in `services` passes its health check (each check is the
    /// service's own, run by the engine).
    private func awaitHealthy(every services: [String]) async throws {
        var waiting = services
        let healthy: Bool? = try await poll(for: healthTimeout, every: .milliseconds(250)) {
            var still: [String] = []
            for service in waiting where !(await containers.isHealthy(service)) { still.append(service) }
            waiting = still
            return waiting.isEmpty ? true : nil
        }
        if healthy != nil { return }
        var states: [String] = []
        for service in waiting { states.append("\(service): \(await containers.state(service).map { "\($0.status) (exit \($0.exitCode))" } ?? "no container")") }
        throw ComposeFailure("not healthy within \(healthTimeout): \(states.joined(separator: ", "))")
    }

    /// Waits for the one-shot `apply` service to exit 0 (its `on-failure` policy restarts it
    /// after a start that found the store not answering yet).
    private func awaitApplied() async throws {
        var last: Int?
        let applied: Bool? = try await poll(for: healthTimeout, every: .milliseconds(250)) {
            guard let state = await containers.state(ComposeCommand.oneShot), state.status == "exited" else { return nil }
            last = state.exitCode
            return state.exitCode == 0 ? true : nil
        }
        guard applied == nil else { return }
        let logs = await containers.engine(["logs", containers.container(ComposeCommand.oneShot)])
        throw ComposeFailure("the apply service did not exit 0 within \(healthTimeout)" + (last.map { " (it last exited \($0))" } ?? "") + ":\n\(logs.output)")
    }

    // MARK: Leadership

    struct Leader { var id: String; var epoch: Int64; var since: Int64 }

    /// Who leads, read with `swerve leader --json` inside a controller container other than
    /// `excluding` (which may be dead).
    private func leader(excluding: String? = nil) async throws -> Leader {
        var last = ""
        for service in ["controller-1", "controller-2", "controller-3"] where service != excluding {
            let result = await containers.exec(service, ["swerve", "leader", "--json"])
            last = result.output
            guard result.succeeded, let object = try? JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any],
                  let id = object["id"] as? String, let epoch = (object["epoch"] as? NSNumber)?.int64Value,
                  let since = (object["since"] as? NSNumber)?.int64Value else { continue }
            return Leader(id: id, epoch: epoch, since: since)
        }
        throw ComposeFailure("no controller leads (last answer: \(last.trimmingCharacters(in: .whitespacesAndNewlines)))")
    }

    // MARK: Diagnosis

    /// The last lines of every service's log, after a failure.
    func dumpLogs() async {
        for service in ComposeCommand.services + [ComposeCommand.oneShot] {
            let logs = await containers.engine(["logs", "--tail", "15", containers.container(service)])
            say("--- \(service) ---\n\(logs.output)")
        }
    }
}
