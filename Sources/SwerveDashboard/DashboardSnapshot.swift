public import SwerveClient
public import SwerveCore
public import SwerveProtocol

/// Everything the dashboard page shows at one instant, as the page reads it (JSON). Pure:
/// built from what the cluster's keys hold by ``build(_:)``, so what the page shows for any
/// state is tested without Redis or a browser.
///
/// Guarantees: backends are in tag order, each with its replicas in tag order; nodes in id
/// order; the numbers come only from the inputs (no clock but `now`).
public struct DashboardSnapshot: Sendable, Hashable, Codable {
    public struct Leader: Sendable, Hashable, Codable {
        public var id: String
        public var epoch: Int64
        public var host: String
        public var pid: Int32
        /// Unix milliseconds.
        public var since: Int64
    }

    /// A controller that led at some point the events still show.
    public struct Controller: Sendable, Hashable, Codable {
        public var id: String
        /// Its latest term's epoch and when that term began (Unix ms).
        public var lastEpoch: Int64
        public var lastElected: Int64
        public var terms: Int
        public var leading: Bool
    }

    public struct Election: Sendable, Hashable, Codable {
        public var controller: String
        public var epoch: Int64
        public var at: Int64
    }

    public struct Backend: Sendable, Hashable, Codable {
        public var tag: String
        /// `healthy`, `updating`, `unhealthy`, `failed`, `deleting` (the leader's status), or
        /// `unknown` before the leader wrote one.
        public var status: String
        /// Why, in the leader's words ("3/5 running, 2 starting").
        public var reason: String
        public var running: Int
        public var target: Int
        public var autoscaling: Autoscaling?
        public var version: String
        public var route: String?
        /// Replicas running the backend's current version, of its target: the rollout's progress.
        public var current: Int
        public var replicas: Int
        public var traffic: Traffic?
    }

    public struct Autoscaling: Sendable, Hashable, Codable {
        public var min: Int
        public var max: Int
    }

    /// Requests through the routers over their last report intervals.
    public struct Traffic: Sendable, Hashable, Codable {
        public var requestsPerSecond: Double
        public var errorsPerSecond: Double
        /// Latency percentiles in milliseconds (upper bounds of the histogram bucket each falls in).
        public var p50Ms: Double?
        public var p99Ms: Double?
    }

    public struct Replica: Sendable, Hashable, Codable {
        public var tag: String
        public var backend: String
        public var state: String
        public var node: String?
        /// When it was placed (Unix ms), if it was: the page shows its age.
        public var placedAt: Int64?
        public var address: String?
        public var pid: Int32?
        public var version: String
        /// Why it waits or stops, when it does.
        public var note: String?
    }

    public struct Node: Sendable, Hashable, Codable {
        public var id: String
        /// `Ready`, `NotReady`, `Cordoned`, `Draining` (as `swerve get nodes` says).
        public var state: String
        public var address: String?
        public var total: Resources?
        public var assigned: Resources
        public var replicas: Int
    }

    public var cluster: String
    /// The instant the snapshot describes (Unix ms, by Redis's clock).
    public var at: Int64
    public var leader: Leader?
    public var controllers: [Controller]
    public var elections: [Election]
    public var backends: [Backend]
    public var replicas: [Replica]
    public var nodes: [Node]

    /// What ``build(_:)`` reads.
    public struct Inputs: Sendable {
        public var cluster: String
        public var now: Timestamp
        public var leader: LeaderRecord?
        public var status: [String: BackendStatus]
        public var state: BackendState
        public var nodes: [NodeListing]
        public var elections: [Election]
        public var traffic: [String: Traffic]

        public init(cluster: String, now: Timestamp, leader: LeaderRecord?, status: [String: BackendStatus], state: BackendState,
                    nodes: [NodeListing], elections: [Election], traffic: [String: Traffic] = [:]) {
            self.cluster = cluster
            self.now = now
            self.leader = leader
            self.status = status
            self.state = state
            self.nodes = nodes
            self.elections = elections
            self.traffic = traffic
        }
    }

    public static func build(_ inputs: Inputs) -> DashboardSnapshot {
        let leader = inputs.leader.map { Leader(id: $0.id, epoch: $0.epoch, host: $0.host, pid: $0.pid, since: $0.since.milliseconds) }
        var backends: [Backend] = []
        var replicas: [Replica] = []
        var assigned: [String: (resources: Resources, count: Int)] = [:]
        for record in inputs.state.backends.sorted(by: { $0.tag < $1.tag }) {
            let status = inputs.status[record.tag]
            let sorted = record.replicas.sorted { $0.tag < $1.tag }
            backends.append(Backend(
                tag: record.tag, status: status?.kind.rawValue ?? "unknown", reason: status?.reason ?? "",
                running: status?.running ?? sorted.count(where: { $0.state == .running }), target: status?.target ?? record.target,
                autoscaling: record.config.autoscaling.map { Autoscaling(min: $0.minReplicas, max: $0.maxReplicas) },
                version: record.version, route: record.config.routePrefix,
                current: sorted.count(where: { $0.state == .running && $0.version == record.version }), replicas: sorted.count,
                traffic: inputs.traffic[record.tag]))
            for replica in sorted {
                replicas.append(Replica(
                    tag: replica.tag, backend: record.tag, state: replica.state.rawValue, node: replica.node,
                    placedAt: replica.startedAt?.milliseconds,
                    address: replica.endpoint?.address.description, pid: replica.endpoint?.pid, version: replica.version,
                    note: replica.stopReason ?? replica.pendingReason))
                if let node = replica.node, replica.state.occupiesNode {
                    var entry = assigned[node] ?? (.zero, 0)
                    entry.resources = entry.resources + record.replicaConfig.resources
                    entry.count += 1
                    assigned[node] = entry
                }
            }
        }
        var nodes = inputs.nodes.map { listing in
            Node(id: listing.id, state: listing.state, address: listing.record?.address, total: listing.record?.resources,
                 assigned: assigned[listing.id]?.resources ?? .zero, replicas: assigned[listing.id]?.count ?? 0)
        }
        // A node the checkpoint places replicas on but that is no longer listed (gone).
        for (id, entry) in assigned where !nodes.contains(where: { $0.id == id }) {
            nodes.append(Node(id: id, state: "Gone", address: nil, total: nil, assigned: entry.resources, replicas: entry.count))
        }
        nodes.sort { $0.id < $1.id }
        return DashboardSnapshot(cluster: inputs.cluster, at: inputs.now.milliseconds, leader: leader,
                                 controllers: controllers(inputs.elections, leader: leader), elections: inputs.elections,
                                 backends: backends, replicas: replicas, nodes: nodes)
    }

    /// Each controller the elections name (and the leader, if none does yet), most recent first.
    static func controllers(_ elections: [Election], leader: Leader?) -> [Controller] {
        var byID: [String: Controller] = [:]
        for election in elections {
            var controller = byID[election.controller] ?? Controller(id: election.controller, lastEpoch: election.epoch, lastElected: election.at, terms: 0, leading: false)
            controller.terms += 1
            if election.epoch >= controller.lastEpoch {
                controller.lastEpoch = election.epoch
                controller.lastElected = election.at
            }
            byID[election.controller] = controller
        }
        if let leader {
            var current = byID[leader.id] ?? Controller(id: leader.id, lastEpoch: leader.epoch, lastElected: leader.since, terms: 1, leading: true)
            current.leading = true
            byID[leader.id] = current
        }
        return byID.values.sorted { ($0.lastEpoch, $0.id) > ($1.lastEpoch, $1.id) }
    }
}
