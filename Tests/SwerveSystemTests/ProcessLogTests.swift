import Foundation
import Logging
import SwerveErrors
@testable import SwerveSystem
import Testing

/// `SWERVE_LOG_FORMAT=json`: what one record looks like, and the variables' errors.
@Suite struct ProcessLogRules {
    func decoded(_ line: [UInt8]) throws -> [String: Any] {
        #expect(line.last == UInt8(ascii: "\n") && line.dropLast().allSatisfy { $0 != UInt8(ascii: "\n") }, "one line")
        return try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
    }

    @Test func aRecordIsOneJSONObjectWithTimeLevelComponentMessageAndMetadata() throws {
        let line = JSONLogHandler.line(time: 1_796_069_467_123, level: .warning, component: "swerve.router",
                                       message: "line one\nline \"two\"\t\u{1}", metadata: [
                                           "replica": "api#1", "tried": .array(["a", "b"]), "nested": .dictionary(["count": .stringConvertible(3)]),
                                       ])
        let object = try decoded(line)
        #expect(object["time"] as? String == "2026-11-30T20:11:07.123Z")
        #expect(object["level"] as? String == "warning" && object["component"] as? String == "swerve.router")
        #expect(object["message"] as? String == "line one\nline \"two\"\t\u{1}", "escaped in the line, the same text once decoded")
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata["replica"] as? String == "api#1" && metadata["tried"] as? [String] == ["a", "b"])
        #expect((metadata["nested"] as? [String: Any])?["count"] as? String == "3")
        #expect(try decoded(JSONLogHandler.line(time: 5, level: .info, component: "c", message: "m", metadata: [:]))["metadata"] == nil)
        #expect(JSONLogHandler.rfc3339(0) == "1970-01-01T00:00:00.000Z" && JSONLogHandler.rfc3339(1_000_000_000_042) == "2001-09-09T01:46:40.042Z")
    }

    @Test func theVariablesAreCheckedAndNamedWhenWrong() throws {
        #expect(try ProcessLog.format([:]) == .text && ProcessLog.format(["SWERVE_LOG_FORMAT": "JSON"]) == .json)
        #expect(try ProcessLog.level([:]) == .info && ProcessLog.level(["SWERVE_LOG_LEVEL": "debug"]) == .debug)
        #expect(throws: ProcessLogError.self) { try ProcessLog.format(["SWERVE_LOG_FORMAT": "xml"]) }
        do {
            _ = try ProcessLog.logger("x", environment: ["SWERVE_LOG_LEVEL": "loud"])
            Issue.record("an unknown level was accepted")
        } catch {
            #expect(error.message.hasPrefix("SWERVE_LOG_LEVEL: must be one of trace, debug") && error.message.contains("\"loud\""))
        }
    }
}
