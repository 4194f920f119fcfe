/// A value in Redis that does not follow the protocol, or a name that cannot be used.
public struct ProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }
        /// A cluster, node or replica name that cannot be used in keys.
        public static let invalidName = Code("invalidName")
        /// A document written by another schema version.
        public static let unknownVersion = Code("unknownVersion")
        /// A value that is not the document its key should hold.
        public static let malformed = Code("malformed")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
