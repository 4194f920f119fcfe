import SwerveCore

/// What status this term of leadership last wrote to the status key. The status derives from
/// the state, so it is recomputed only when a step changed the state (it had actions) or the
/// term has not written one yet; it is written only when it differs from the last written.
struct StatusLedger: Sendable {
    /// nil until this term wrote the status.
    private(set) var written: [String: BackendStatus]?

    /// The status after a step that leads to `next` with `actions`.
    func status(after next: BackendState, actions: [Action]) -> [String: BackendStatus] {
        if actions.isEmpty, let written { return written }
        return Self.status(of: next)
    }

    /// `status` when it must be written, nil when the key already holds it.
    func change(to status: [String: BackendStatus]) -> [String: BackendStatus]? {
        status == written ? nil : status
    }

    /// Records that the status key now holds `status`.
    mutating func wrote(_ status: [String: BackendStatus]) { written = status }

    static func status(of state: BackendState) -> [String: BackendStatus] {
        Dictionary(uniqueKeysWithValues: state.backends.map { ($0.tag, $0.status) })
    }
}
