import SwerveErrors
import SwerveNode
import Testing

@Suite struct WorkerCredentialsFromTheEnvironment {
    let password: (String) throws -> [UInt8] = { _ in Array("s3cret\n".utf8) }

    @Test func workersGetTheWorkerRoleAndNoneOfTheAgentsCredentials() throws {
        let agent = ["PATH": "/usr/bin", "SWERVE_REDIS_USER": "swerve-node", "SWERVE_REDIS_PASSWORD": "node-secret",
                     "SWERVE_WORKER_REDIS_USER": "swerve-worker", "SWERVE_WORKER_REDIS_PASSWORD_FILE": "/run/secrets/worker"]
        let credentials = try #require(try WorkerCredentials.from(environment: agent, redisURL: "redis://10.0.0.1:6379", readFile: password))
        let worker = credentials.workerEnvironment(from: agent)
        #expect(worker == ["PATH": "/usr/bin", "SWERVE_REDIS_USER": "swerve-worker", "SWERVE_REDIS_PASSWORD_FILE": "/run/secrets/worker"])
    }

    @Test func noneSetKeepsTheAgentsCredentials() throws {
        #expect(try WorkerCredentials.from(environment: ["SWERVE_REDIS_PASSWORD": "p"], redisURL: "redis://h", readFile: password) == nil)
    }

    @Test(arguments: [
        (["SWERVE_WORKER_REDIS_USER": "swerve-worker"], "redis://h", "SWERVE_WORKER_REDIS_PASSWORD_FILE is not"),
        (["SWERVE_WORKER_REDIS_PASSWORD_FILE": "/f"], "redis://h", "SWERVE_WORKER_REDIS_USER is not"),
        (["SWERVE_WORKER_REDIS_USER": "w", "SWERVE_WORKER_REDIS_PASSWORD_FILE": "/f"], "redis://swerve-node:pw@h", "the URL holds credentials"),
    ])
    func incompleteOrLeakyConfigurationsAreRefused(environment: [String: String], url: String, problem: String) {
        #expect {
            try WorkerCredentials.from(environment: environment, redisURL: url, readFile: password)
        } throws: { ($0 as? NodeError)?.message.contains(problem) == true }
    }

    @Test func anEmptyOrMissingPasswordFileStopsTheAgent() {
        let environment = ["SWERVE_WORKER_REDIS_USER": "w", "SWERVE_WORKER_REDIS_PASSWORD_FILE": "/f"]
        #expect {
            try WorkerCredentials.from(environment: environment, redisURL: "redis://h") { _ in Array("\n".utf8) }
        } throws: { ($0 as? NodeError)?.message.contains("is empty") == true }
        #expect {
            try WorkerCredentials.from(environment: environment, redisURL: "redis://h") { _ in throw NodeError(.invalidConfiguration, "gone") }
        } throws: { ($0 as? NodeError)?.message.contains("cannot read /f") == true }
    }
}
