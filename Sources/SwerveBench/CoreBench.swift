import ArgumentParser
import Foundation
import SwerveCore

/// `swerve-bench core`: the reconciler's cost on a large cluster, in process.
struct CoreBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "core",
        abstract: "One reconcile step over many backends (idle, and with 1% of replicas changing), and checkpoint encode/decode.",
        discussion: """
            Example:
              swerve-bench core --backends 1000 --replicas 10
            """
    )

    @Option(help: "Backends in the state.")
    var backends = 1000

    @Option(help: "Replicas per backend.")
    var replicas = 10

    @Option(help: "Live nodes to place replicas on.")
    var nodes = 50

    @Option(help: "Timed repetitions of each measurement (the median is printed).")
    var repetitions = 21

    @Option(help: "Run only this measurement many times, for a profiler: idle, busy, encode or decode.")
    var only: String?

    func run() throws {
        let (state, observations, readyReports) = converged()
        if let only {
            var changing = observations
            for (index, replica) in state.backends.flatMap(\.replicas).enumerated() where index % 100 == 0 { changing.replicas[replica.tag] = ReplicaObservation(endpoint: nil) }
            let stored = Checkpoint.encode(state)
            for _ in 0..<repetitions {
                switch only {
                case "idle": _ = Reconciler.reconcile(state, observations)
                case "busy": _ = Reconciler.reconcile(state, changing)
                case "encode": _ = Checkpoint.encode(state)
                default: _ = try? Checkpoint.decode(stored)
                }
            }
            return
        }

        // Every replica created and placed in one step (a scan of every node per replica was
        // quadratic: seconds at 100,000 replicas on 10,000 nodes).
        let creation = Observations(now: observations.now, requests: requests(), nodes: observations.nodes)
        let create = median { _ = Reconciler.reconcile(BackendState(), creation) }

        let idle = median { _ = Reconciler.reconcile(state, observations) }
        let (_, idleActions) = Reconciler.reconcile(state, observations)
        precondition(idleActions.isEmpty, "the converged state must be idle")

        // 1% of replicas change: their heartbeats expire, so each is killed, replaced and placed.
        var changing = observations
        let victims = state.backends.flatMap(\.replicas).enumerated().filter { $0.offset % 100 == 0 }.map(\.element.tag)
        for tag in victims { changing.replicas[tag] = ReplicaObservation(endpoint: nil) }
        let busy = median { _ = Reconciler.reconcile(state, changing) }
        let (_, busyActions) = Reconciler.reconcile(state, changing)
        precondition(busyActions.count > victims.count, "the changing step must act")

        // Every replica reported at once, unchanged (what a leader reads after a takeover).
        let everyone = Observations(now: observations.now, nodes: observations.nodes, replicas: readyReports)
        let allReported = median { _ = Reconciler.reconcile(state, everyone) }
        precondition(Reconciler.reconcile(state, everyone).actions.isEmpty, "reports of what is known change nothing")

        let encode = median { _ = Checkpoint.encode(state) }
        let stored = Checkpoint.encode(state)
        let decode = median { _ = try? Checkpoint.decode(stored) }
        // What a step's checkpoint writes when 1% of replicas changed (the ledger goes back
        // and forth between the two states, so each write is such a step's).
        let (changed, _) = Reconciler.reconcile(state, changing)
        var ledger = CheckpointLedger()
        _ = ledger.write(state)
        var toChanged = true
        var changeBytes = 0
        let change = median {
            changeBytes = ledger.write(toChanged ? changed : state).byteCount
            toChanged.toggle()
        }
        let storedBytes = stored.parts.reduce(stored.header.count) { $0 + $1.key.utf8.count + $1.value.count }

        print("state \(backends) backends x \(replicas) replicas on \(nodes) nodes, checkpoint \(storedBytes) bytes in \(stored.parts.count) parts")
        print("create_step_ms \(ms(digits: 3, create))")
        print("idle_step_ms \(ms(digits: 3, idle))")
        print("one_percent_step_ms \(ms(digits: 3, busy)) (\(victims.count) replicas died)")
        print("all_reported_step_ms \(ms(digits: 3, allReported)) (\(readyReports.count) replicas reported ready, as after a takeover)")
        print("checkpoint_encode_ms \(ms(digits: 3, encode))")
        print("checkpoint_decode_ms \(ms(digits: 3, decode))")
        print("checkpoint_change_ms \(ms(digits: 3, change)) (\(changeBytes) bytes written for the 1% step)")
    }

    /// A converged state: every backend at its target, every replica running; an idle tick's
    /// observations; and every replica's ready report.
    private func converged() -> (BackendState, Observations, [String: ReplicaObservation]) {
        let cpu = Double(backends * replicas) * 0.1 / Double(nodes) * 2 + 1
        let fleet = (0..<nodes).map { NodeInfo(id: "node-\($0)", total: Resources(cpu: cpu, memoryBytes: 1 << 40)) }
        var observations = Observations(now: Timestamp(milliseconds: 1_700_000_000_000), nodes: Dictionary(uniqueKeysWithValues: fleet.map { ($0.id, $0) }))
        var state = BackendState()
        observations.requests = requests()
        (state, _) = Reconciler.reconcile(state, observations)
        observations.requests = []
        for replica in state.backends.flatMap(\.replicas) {
            observations.replicas[replica.tag] = .ready(HostPort(host: "10.0.0.1", port: UInt16(abs(replica.tag.hashValue % 60000))), pid: 1)
        }
        (state, _) = Reconciler.reconcile(state, observations)
        (state, _) = Reconciler.reconcile(state, observations)
        // From here on nothing is new: an idle tick reports no replica.
        let ready = observations.replicas
        observations.replicas = [:]
        return (state, observations, ready)
    }

    /// One create request per backend.
    private func requests() -> [Request] {
        (0..<backends).map { index in
            Request(id: RequestID(milliseconds: 1, sequence: UInt64(index)), goal: "g\(index)", operation: .createBackend(
                tag: "backend-\(index)", config: BackendConfig(numReplicas: replicas, routePrefix: "/b\(index)"),
                replicaConfig: ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 0.1))))
        }
    }

    private func median(_ work: () -> Void) -> Duration {
        let clock = ContinuousClock()
        work() // warm up
        let times = (1...repetitions).map { _ in clock.measure { work() } }.sorted()
        return times[times.count / 2]
    }

}
