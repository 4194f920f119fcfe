import Foundation
@testable import SwerveCore
import SwerveErrors
import Testing

/// Deeply nested JSON is refused before any decoder recurses into it: Foundation's decoder
/// traps on 513 levels (the fuzzer's `[[[…` crash), which would let anyone who may write one
/// key crash the process that reads it.
@Suite struct JSONNestingRules {
    @Test func depthIsCountedOutsideStringsOnly() {
        #expect(!JSONNesting.exceeds(Array("[[1], {\"a\": [2]}]".utf8), limit: 3))
        #expect(JSONNesting.exceeds(Array("[[[[1]]]]".utf8), limit: 3))
        #expect(!JSONNesting.exceeds(Array(#"["[[[[[[", "\"[[[[[["]"#.utf8), limit: 1), "brackets in strings, escaped quotes too")
        #expect(JSONNesting.exceeds(Array(repeating: UInt8(ascii: "["), count: 513)))
    }

    @Test func aUserConfigNestedTooDeeplyIsRefusedNamingTheField() {
        var value = JSONValue.number(1)
        for _ in 0..<33 { value = .array([value]) }
        #expect(JSONNesting.depth(of: value) == 33)
        let problems = BackendConfig(userConfig: value).problems()
        #expect(problems.map(\.description) == ["config.userConfig: must nest at most 32 levels of arrays and objects, got 33"])
    }

    @Test func aCheckpointPartNestedTooDeeplyIsCorruptedNotACrash() {
        var stored = Checkpoint.encode(BackendState())
        stored.parts["goals"] = Array(repeating: UInt8(ascii: "["), count: 513)
        #expect {
            try Checkpoint.decode(stored)
        } throws: { error in
            (error as? CheckpointError)?.message == "the checkpoint's part goals nests deeper than 64 levels"
        }
    }
}
