import Foundation
@testable import SwerveCore
import Testing

@Suite struct ConfigValidation {
    @Test func everyProblemIsReportedAtOnceNamingItsField() {
        let config = BackendConfig(numReplicas: -1, maxConcurrentQueries: 0, gracefulShutdownTimeoutS: -2, routePrefix: "api",
                                   maxSurge: .count(0), maxUnavailable: .percent(0))
        let fields = config.problems().map(\.field)
        #expect(fields == ["config.numReplicas", "config.maxConcurrentQueries", "config.gracefulShutdownTimeoutS", "config.routePrefix", "config.maxUnavailable"])
        #expect(config.problems()[0].message == "must be between 0 and 10000, got -1")
    }

    @Test func defaultsAreRayServesAndKubernetes() {
        let config = BackendConfig()
        #expect(config.maxConcurrentQueries == 100)
        #expect(config.gracefulShutdownTimeoutS == 20)
        #expect(config.gracefulShutdownWaitLoopS == 2)
        #expect(config.maxSurge == .percent(25) && config.maxUnavailable == .percent(25))
        #expect(config.problems().isEmpty)
    }

    @Test func surgeRoundsUpAndUnavailabilityRoundsDown() {
        #expect(BackendConfig().rollingBudget(target: 10) == (3, 2))
        #expect(BackendConfig().rollingBudget(target: 1) == (1, 0))
        #expect(BackendConfig(maxSurge: .count(0), maxUnavailable: .percent(10)).rollingBudget(target: 5) == (1, 0), "both 0 after rounding: surge 1")
    }

    @Test func budgetsDecodeFromCountsAndPercentages() throws {
        let config = try JSONDecoder().decode(BackendConfig.self, from: Data(#"{"numReplicas":3,"maxSurge":2,"maxUnavailable":"50%"}"#.utf8))
        #expect(config.numReplicas == 3 && config.maxSurge == .count(2) && config.maxUnavailable == .percent(50))
        #expect(config.maxConcurrentQueries == 100, "missing fields take defaults")
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(ReplicaBudget.self, from: Data(#""half""#.utf8)) }
    }

    @Test func aPatchMergesOnlyTheFieldsGiven() {
        let config = BackendConfig(numReplicas: 2, userConfig: .string("v1"), routePrefix: "/a")
        let merged = BackendConfigPatch(numReplicas: 5, routePrefix: .clear).applied(to: config)
        #expect(merged.numReplicas == 5)
        #expect(merged.routePrefix == nil)
        #expect(merged.userConfig == .string("v1"))
        #expect(merged.maxConcurrentQueries == config.maxConcurrentQueries)
    }

    @Test func aPatchIsJudgedOnTheFieldsItSets() {
        #expect(BackendConfigPatch(numReplicas: -1, routePrefix: .set("api")).problems().map(\.field) == ["config.numReplicas", "config.routePrefix"])
        #expect(BackendConfigPatch(maxConcurrentQueries: 5).problems().isEmpty)
        #expect(BackendConfigPatch(maxSurge: .count(0), maxUnavailable: .count(0)).problems().map(\.field) == ["config.maxUnavailable"])
    }

    @Test func replicaConfigProblemsNameTheirFields() {
        let bad = ReplicaConfig(workload: .command(arguments: [], environment: ["PORT": "1"], healthPath: "health"), resources: Resources(cpu: -1, custom: ["gpu": -1]))
        #expect(bad.problems().map(\.field) == ["replicaConfig.command", "replicaConfig.environment.PORT", "replicaConfig.healthPath", "replicaConfig.resources.cpu", "replicaConfig.resources.custom.gpu"])
        #expect(ReplicaConfig(workload: .builtin(name: "nope")).problems().first?.message.contains("known: echo, fail, sleep") == true)
    }

    @Test func aReplicaConfigVersionIsStableAndFollowsContent() {
        let a = command("python3", "-m", "http.server")
        #expect(a.version == command("python3", "-m", "http.server").version)
        #expect(a.version != command("python3", "-m", "http.server", "8080").version)
        #expect(a.version.count == 16)
        var moreMemory = a
        moreMemory.resources.memoryBytes = 1 << 30
        #expect(moreMemory.version != a.version)
    }

    @Test func requestIDsOrderLikeStreamIDs() {
        #expect(RequestID("1-9")! < RequestID("2-0")!)
        #expect(RequestID("2-1")! > RequestID("2-0")!)
        #expect(RequestID("x-1") == nil)
    }
}
