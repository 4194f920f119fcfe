/// Swerve's pure core: models, validation, the replica state machine and the reconciler, as
/// plain values and functions. It performs no I/O, reads no clock and starts no process —
/// every decision is a function of its inputs, tested directly.
///
/// `Swerve` itself holds what every part agrees on: the release version.
public enum Swerve {
    /// The version `swerve version` prints.
    public static let version = "0.1.0"
}
