import SwerveClient
import SwerveCore
import SwerveErrors
import Testing

@Suite struct BackendSpecs {
    @Test func aYAMLSpecBecomesTheSameRequestAsTheFlags() throws {
        let specs = try BackendSpec.parse("""
            tag: api
            config:
              numReplicas: 3
              routePrefix: /api
              maxSurge: 25%
              upstreamTimeoutS: 2.5
              retryIdempotentRequests: false
              userConfig: {greeting: hello, retries: 2, on: true}
            replicaConfig:
              command: python3 app.py
              environment: {MODE: fast, LEVEL: 3}
              healthPath: /healthz
              resources: {cpu: 0.5, memoryBytes: 1024, custom: {gpu: 1}}
            """, source: "api.yaml")
        #expect(specs == [BackendSpec(
            tag: "api",
            config: BackendConfig(numReplicas: 3, userConfig: .object(["greeting": .string("hello"), "retries": .number(2), "on": .bool(true)]),
                                  routePrefix: "/api", maxSurge: .percent(25), upstreamTimeoutS: 2.5, retryIdempotentRequests: false),
            replicaConfig: ReplicaConfig(workload: .command(arguments: ["python3", "app.py"], environment: ["MODE": "fast", "LEVEL": "3"], healthPath: "/healthz"),
                                         resources: Resources(cpu: 0.5, memoryBytes: 1024, custom: ["gpu": 1])))])
    }

    @Test func anAutoscalingSectionIsRead() throws {
        let spec = try #require(try BackendSpec.parse("""
            tag: api
            config:
              autoscaling: {minReplicas: 0, maxReplicas: 20, targetOngoingRequests: 2, upscaleDelayS: 0.5, downscaleDelayS: 30}
            replicaConfig: {builtin: echo}
            """, source: "s.yaml").first)
        #expect(spec.config.autoscaling == AutoscalingConfig(minReplicas: 0, maxReplicas: 20, targetOngoingRequests: 2, upscaleDelayS: 0.5, downscaleDelayS: 30))
    }

    @Test func omittedConfigFieldsTakeTheirDefaults() throws {
        let spec = try #require(try BackendSpec.parse("{\"tag\": \"a\", \"replicaConfig\": {\"builtin\": \"echo\"}}", source: "a.json").first)
        #expect(spec.config == BackendConfig())
        #expect(spec.replicaConfig == ReplicaConfig(workload: .builtin(name: "echo"), resources: Resources(cpu: 1)))
    }

    @Test func listsBackendsKeysAndDocumentsAllHoldSeveral() throws {
        let one = "tag: a\nreplicaConfig: {builtin: echo}\n"
        let two = "tag: b\nreplicaConfig: {builtin: sleep, options: {ms: 5}}\n"
        let expected = ["a", "b"]
        #expect(try BackendSpec.parse(one + "---\n" + two, source: "s").map(\.tag) == expected)
        #expect(try BackendSpec.parse("- {tag: a, replicaConfig: {builtin: echo}}\n- {tag: b, replicaConfig: {builtin: echo}}\n", source: "s").map(\.tag) == expected)
        #expect(try BackendSpec.parse("backends:\n  - {tag: a, replicaConfig: {builtin: echo}}\n  - {tag: b, replicaConfig: {builtin: echo}}\n", source: "s").map(\.tag) == expected)
    }

    @Test func yamlIntegersInEveryNotationAreRead() throws {
        for (written, value) in [("90", 90), ("1:30", 90), ("0x5A", 90), ("0o132", 90), ("0b1011010", 90), ("9_0", 90)] {
            let spec = try BackendSpec.parse("tag: a\nconfig: {numReplicas: \(written)}\nreplicaConfig: {builtin: echo}", source: "s")
            #expect(spec.first?.config.numReplicas == value, "\(written)")
        }
    }

    @Test(arguments: [
        ("tag: a\nconfig: {numReplica: 2}\nreplicaConfig: {builtin: echo}", "f.yaml: a: config.numReplica: unknown field; known: numReplicas,"),
        ("tag: a\nconfig: {numReplicas: two}\nreplicaConfig: {builtin: echo}", "f.yaml: a: config.numReplicas: must be a whole number, got \"two\" (line 2)"),
        // A YAML 1.1 base-60 number too large for 64 bits: Yams' own reading traps (ops/fuzz).
        ("tag: a\nconfig: {numReplicas: 184467440737095516:6}\nreplicaConfig: {builtin: echo}", "f.yaml: a: config.numReplicas: must be a whole number, got 184467440737095516:6"),
        ("tag: a\nconfig: {maxSurge: 0x7fffffffffffffffff}\nreplicaConfig: {builtin: echo}", "f.yaml: a: config.maxSurge: must be a count such as 2 or a percentage such as \"25%\", got 0x7fffffffffffffffff"),
        ("tag: a\nconfig: {retryIdempotentRequests: maybe}\nreplicaConfig: {builtin: echo}", "f.yaml: a: config.retryIdempotentRequests: must be true or false, got \"maybe\""),
        ("tag: a\nconfig: {maxSurge: lots}\nreplicaConfig: {builtin: echo}", "f.yaml: a: config.maxSurge: expected a count such as 2 or a percentage"),
        ("tag: a\nreplicaConfig: {builtin: echo, healthPath: /h}", "f.yaml: a: replicaConfig.healthPath: applies to commands, not built-ins"),
        ("tag: a\nreplicaConfig: {builtin: echo, command: x}", "f.yaml: a: replicaConfig.command: give either builtin or command, not both"),
        ("tag: a\nreplicaConfig: {resources: {cpu: 1}}", "f.yaml: a: replicaConfig: needs builtin (echo, sleep, fail) or command"),
        ("tag: a\nconfig: {}", "f.yaml: a: missing \"replicaConfig\""),
        ("tag: a\nconfig: {numReplicas: 2, autoscaling: {maxReplicas: 4}}\nreplicaConfig: {builtin: echo}",
         "f.yaml: a: config.numReplicas: a backend has either numReplicas or autoscaling, not both"),
        ("tag: a\nconfig: {autoscaling: {maxReplicas: many}}\nreplicaConfig: {builtin: echo}", "f.yaml: a: config.autoscaling.maxReplicas:"),
        ("tag: a\nconfig: {autoscaling: {maxReplica: 4}}\nreplicaConfig: {builtin: echo}", "f.yaml: a: config.autoscaling.maxReplica: unknown field; known: minReplicas"),
        ("config: {}", "f.yaml: missing \"tag\""),
        ("tag: a\nreplicaConfig: {builtin: echo}\n---\ntag: a\nreplicaConfig: {builtin: echo}", "f.yaml: backend \"a\" appears twice"),
        ("tag: [a", "f.yaml: not valid YAML or JSON:"),
        ("", "f.yaml: no backends in it"),
    ])
    func mistakesNameTheFileTheBackendAndTheField(_ text: String, _ message: String) {
        #expect {
            _ = try BackendSpec.parse(text, source: "f.yaml")
        } throws: { error in
            (error as? SpecError)?.message.hasPrefix(message) == true
        }
    }
}
