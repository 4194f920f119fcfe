// swift-tools-version:6.0
//
// Swerve: a highly available serving control plane whose only shared state is Redis.
// Module map (the table in docs/ARCHITECTURE.md says more; library products in capitals):
//   SwerveErrors     - the error-code pattern every module's errors share
//   CHiredis         - the system library hiredis 0.14 (Debian: libhiredis-dev); used only by SwerveRedis
//   SwerveRedis      - the Redis client: connections on their own threads, pipelining, scripts, pub/sub
//   SwerveCore       - the pure core: models, validation, state machines, the reconciler (no I/O, no clock)
//   SwerveProtocol   - the Redis contract: names, every stored document and entry, one codec each (no I/O)
//   SwerveSystem     - process spawning, exit statuses, the wall clock, failpoints
//   SwerveHTTP       - how every HTTP connection is set up (TCP_NODELAY at the TCP level; failures counted)
//   SwerveMetrics    - Prometheus metrics (swift-metrics + swift-prometheus) served over HTTP
//   SWERVE CLIENT    - SwerveClient: ClusterClient, the cluster reads, the YAML/JSON spec parser
//   SWERVE WORKER    - SwerveWorker: `swerve worker` and the Swift worker SDK (ReplicaService)
//   SwerveNode       - `swerve node`: the node agent that starts, reaps and kills workers
//   SwerveController - `swerve controller`: the fenced lease, the control loop, its FencedCalls
//   SwerveRouter     - `swerve router`: the HTTP proxy that follows the leader's snapshots
//   SwerveDashboard  - `swerve dashboard`: the live web page, read-only, served from Redis's keys
//   SwerveCLI        - the one executable, `swerve`
//   SwerveLauncher   - a whole cluster on loopback as child processes (ops/up, ops/chaos, benches)
//   SwerveOps        - `swerve-ops`: `up`, `chaos` and `compose`, which the ops/ scripts run
//   SwerveBench      - `swerve-bench`, the benchmark driver that `ops/bench` runs
//   HelloReplica     - examples/swift-worker: a replica written on the SDK
//
// Linux only: hiredis comes from the system (libhiredis-dev), and the node agent, worker and
// tests use Glibc, /proc and pidfds directly. So no `platforms` are declared.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

// The `swerve` binary is linked by lld with packed relative relocations (DT_RELR, glibc 2.36
// and later, as in Debian bookworm): the loader reads some 20 KB of relocations where gold's
// output had 2.3 MB, and each process keeps 2–3 MiB less resident (`ops/bench memory`). The
// binary stays position-independent, so ASLR is kept.
//
// Release links also place first, together, the functions the long-running roles execute
// (ops/symbol-order.txt, made by ops/order-symbols): the kernel maps code around each touched
// page in blocks of 64 KiB or more, so code scattered through the binary's 20 MB kept ~11 MiB
// resident per process; packed, each process keeps ~7 (`ops/bench memory`). A function the
// file does not name is placed after those it does, so a stale file costs memory, not
// correctness.
let symbolOrder = Context.packageDirectory + "/ops/symbol-order.txt"
let compactRelocations: [LinkerSetting] = [
    .unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"]),
    .unsafeFlags(["-Xlinker", "--symbol-ordering-file=\(symbolOrder)", "-Xlinker", "--no-warn-symbol-ordering"], .when(configuration: .release)),
]

let package = Package(
    name: "swerve",
    products: [
        .executable(name: "swerve", targets: ["SwerveCLI"]),
        .executable(name: "swerve-bench", targets: ["SwerveBench"]),
        .executable(name: "swerve-ops", targets: ["SwerveOps"]),
        .executable(name: "hello-replica", targets: ["HelloReplica"]),
        .library(name: "SwerveRedis", targets: ["SwerveRedis"]),
        .library(name: "SwerveCore", targets: ["SwerveCore"]),
        .library(name: "SwerveProtocol", targets: ["SwerveProtocol"]),
        .library(name: "SwerveClient", targets: ["SwerveClient"]),
        .library(name: "SwerveWorker", targets: ["SwerveWorker"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .target(
            name: "SwerveRedis",
            dependencies: [
                "CHiredis",
                "SwerveErrors",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(name: "SwerveErrors", swiftSettings: strict),
        .target(name: "SwerveCore", dependencies: ["SwerveErrors"], swiftSettings: strict),
        .target(name: "SwerveProtocol", dependencies: ["SwerveCore", "SwerveErrors"], swiftSettings: strict),
        .target(
            name: "SwerveWorker",
            dependencies: [
                "SwerveErrors",
                "SwerveSystem",
                "SwerveProtocol",
                "SwerveRedis",
                "SwerveCore",
                "SwerveHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SwerveController",
            dependencies: [
                "SwerveErrors",
                "SwerveSystem",
                "SwerveProtocol",
                "SwerveRedis",
                "SwerveCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SwerveClient",
            dependencies: [
                "SwerveErrors",
                "SwerveProtocol",
                "SwerveRedis",
                "SwerveCore",
                "SwerveSystem",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SwerveRouter",
            dependencies: [
                "SwerveErrors",
                "SwerveProtocol",
                "SwerveRedis",
                "SwerveCore",
                "SwerveMetrics",
                "SwerveHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SwerveHTTP",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SwerveMetrics",
            dependencies: [
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SwerveDashboard",
            dependencies: [
                "SwerveErrors",
                "SwerveClient",
                "SwerveCore",
                "SwerveProtocol",
                "SwerveRedis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            // The page is part of the binary: nothing to install, nothing fetched.
            resources: [
                .embedInCode("Resources/index.html"), .embedInCode("Resources/app.js"),
                .embedInCode("Resources/app.css"), .embedInCode("Resources/favicon.svg"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SwerveNode",
            dependencies: [
                "SwerveErrors",
                "SwerveSystem",
                "SwerveProtocol",
                "SwerveRedis",
                "SwerveCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SwerveTestSupport",
            dependencies: ["SwerveClient", "SwerveLauncher", "SwerveProtocol", "SwerveRedis", "SwerveCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(name: "SwerveSystem", dependencies: ["SwerveCore", "SwerveErrors", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .executableTarget(
            name: "SwerveCLI",
            dependencies: [
                "SwerveErrors",
                "SwerveRedis",
                "SwerveCore",
                "SwerveWorker",
                "SwerveNode",
                "SwerveClient",
                "SwerveController",
                "SwerveMetrics",
                "SwerveRouter",
                "SwerveDashboard",
                "SwerveProtocol",
                "SwerveSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict,
            linkerSettings: compactRelocations
        ),
        .target(
            name: "SwerveLauncher",
            dependencies: ["SwerveCore", "SwerveProtocol", "SwerveRedis", "SwerveSystem", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "SwerveOps",
            dependencies: [
                "SwerveErrors",
                "SwerveDashboard",
                "SwerveLauncher",
                "SwerveNode",
                "SwerveClient",
                "SwerveCore",
                "SwerveProtocol",
                "SwerveRedis",
                "SwerveSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "SwerveBench",
            dependencies: [
                "SwerveLauncher",
                "SwerveRedis",
                "SwerveClient",
                "SwerveCore",
                "SwerveProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The worker SDK's example (examples/swift-worker): a replica written in Swift.
        .executableTarget(
            name: "HelloReplica",
            dependencies: [
                "SwerveProtocol",
                "SwerveWorker",
                "SwerveCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "examples/swift-worker",
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwerveRedisTests",
            dependencies: [
                "SwerveErrors",
                "SwerveRedis",
                "SwerveTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwerveCoreTests",
            dependencies: ["SwerveCore", "SwerveErrors"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwerveProtocolTests",
            dependencies: ["SwerveErrors", "SwerveProtocol", "SwerveCore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwerveWorkerTests",
            dependencies: [
                "SwerveWorker",
                "SwerveSystem",
                "SwerveTestSupport",
                "SwerveProtocol",
                "SwerveRedis",
                "SwerveCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwerveControllerTests",
            dependencies: [
                "SwerveErrors",
                "SwerveController",
                "SwerveLauncher",
                "SwerveSystem",
                "SwerveCore",
                "SwerveTestSupport",
                "SwerveProtocol",
                "SwerveRedis",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwerveNodeTests",
            dependencies: [
                "SwerveNode",
                "SwerveTestSupport",
                "SwerveProtocol",
                "SwerveRedis",
                "SwerveCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwerveRouterTests",
            dependencies: [
                "SwerveRouter",
                "SwerveHTTP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                "SwerveTestSupport",
                "SwerveProtocol",
                "SwerveRedis",
                "SwerveCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwerveHTTPTests",
            dependencies: [
                "SwerveHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwerveClientTests",
            dependencies: ["SwerveClient", "SwerveCore", "SwerveErrors"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwerveDashboardTests",
            dependencies: ["SwerveDashboard", "SwerveClient", "SwerveCore", "SwerveProtocol", "SwerveTestSupport", "SwerveRedis",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(name: "SwerveSystemTests", dependencies: ["SwerveSystem", "SwerveErrors", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "SwerveLauncherTests", dependencies: ["SwerveLauncher", "SwerveCore"], swiftSettings: strict),
        .testTarget(
            name: "SwerveCLITests",
            dependencies: ["SwerveCore", "SwerveTestSupport", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
