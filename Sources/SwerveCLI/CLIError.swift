import SwerveClient
import SwerveCore
import SwerveErrors
import SwerveProtocol
import SwerveRedis

/// A one-line error for the user, printed by ArgumentParser as "Error: …" with exit code 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }

    /// Runs a read of the cluster, turning Redis and decoding errors into one line that says
    /// what could not be done and why (an unreachable Redis names its address).
    static func reading<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as RedisError {
            throw CLIError(error.message)
        } catch let error as CheckpointError {
            throw CLIError("cannot read the cluster's state: \(error.message)")
        } catch let error as ClientError {
            throw CLIError(error.message)
        } catch let error as ProtocolError {
            throw CLIError(error.message)
        }
    }
}
