/// Why a worker could not start or go on, in words a user can act on.
public struct WorkerError: Error, Sendable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }
        /// A `SWERVE_*` variable is missing or invalid.
        public static let invalidEnvironment = Code("invalidEnvironment")
        /// The assignment is missing or malformed.
        public static let badAssignment = Code("badAssignment")
        /// The replica's code could not be started.
        public static let startFailed = Code("startFailed")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
