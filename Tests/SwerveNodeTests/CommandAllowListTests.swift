import SwerveCore
import SwerveNode
import Testing

@Suite struct CommandAllowListRules {
    /// A stand-in for the PATH lookup: these programs exist, nothing else.
    let installed: Set<String> = ["/usr/bin/python3", "/usr/bin/sh", "/opt/app/bin/server", "/opt/app/bin/sub/tool"]
    func find(_ name: String, _ path: String) -> String? {
        if name.contains("/") { return name }
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { installed.contains($0) }
    }
    func command(_ arguments: [String], path: String? = nil) -> ReplicaConfig.Workload {
        .command(arguments: arguments, environment: path.map { ["PATH": $0] } ?? [:], healthPath: nil)
    }

    @Test func withoutPatternsEveryProgramRuns() {
        let any = CommandAllowList(patterns: [])
        #expect(any.refusal(of: command(["sh", "-c", "anything"]), agentPath: "/usr/bin", find: find) == nil)
    }

    @Test func aProgramMustMatchAPatternWhereItWasFound() {
        let list = CommandAllowList(patterns: ["/opt/app/bin/*", "/usr/bin/python3"])
        #expect(list.refusal(of: command(["server"], path: "/opt/app/bin"), agentPath: "/usr/bin", find: find) == nil)
        #expect(list.refusal(of: command(["python3", "app.py"]), agentPath: "/usr/bin", find: find) == nil)
        #expect(list.refusal(of: command(["/usr/bin/sh", "-c", "x"]), agentPath: "/usr/bin", find: find)
                == "the program \"/usr/bin/sh\" is not allowed on this node; allowed here: /opt/app/bin/*, /usr/bin/python3 (swerve node --allow-command)")
        #expect(list.refusal(of: command(["sh"]), agentPath: "/usr/bin", find: find)?.contains("\"/usr/bin/sh\" is not allowed") == true,
                "a bare name is checked where PATH finds it")
    }

    @Test func starNeverCrossesASlashAndDotsNeverPass() {
        let list = CommandAllowList(patterns: ["/opt/app/bin/*"])
        #expect(list.refusal(of: command(["/opt/app/bin/sub/tool"]), agentPath: nil, find: find)?.contains("is not allowed") == true)
        #expect(list.refusal(of: command(["/opt/app/bin/../../../usr/bin/sh"]), agentPath: nil, find: find)?.contains("has . or .. in its path") == true)
        #expect(list.refusal(of: command(["/opt/app/bin/./server"]), agentPath: nil, find: find)?.contains("has . or .. in its path") == true)
        #expect(list.refusal(of: command(["bin/server"]), agentPath: nil, find: find)?.contains("is not an absolute path") == true)
        #expect(list.refusal(of: command(["server"], path: "bin"), agentPath: nil, find: { name, path in "\(path)/\(name)" })?
            .contains("\"bin/server\" is not an absolute path") == true, "a relative PATH entry")
        #expect(list.refusal(of: command(["missing"]), agentPath: "/usr/bin", find: find)?.hasPrefix("the program \"missing\" is not on its PATH (/usr/bin)") == true)
    }

    @Test func builtinsRunNoProgramAndAreAlwaysAllowed() {
        let list = CommandAllowList(patterns: ["/opt/app/bin/*"])
        #expect(list.refusal(of: .builtin(name: "echo"), agentPath: nil, find: find) == nil)
    }

    @Test func patternsMustBeAbsolute() {
        #expect(CommandAllowList.problem(with: "python3")?.contains("absolute path pattern") == true)
        #expect(CommandAllowList.problem(with: "/usr/bin/*") == nil)
    }
}
