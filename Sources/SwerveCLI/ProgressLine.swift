import Foundation
import Glibc
import Synchronization

/// Progress on standard error: on a terminal, one line rewritten in place (`\r` and erase to
/// the end of the line); otherwise (a pipe, a CI log) one line per change, so logs stay
/// readable. Repeats of the same text are not shown again. The final outcome goes to standard
/// output, so a script's `$(swerve apply …)` sees only it.
final class ProgressLine: Sendable {
    /// The text shown last, and whether a rewritable line is on the terminal.
    private let state = Mutex<(last: String, pending: Bool)>(("", false))
    private let rewrites = isatty(STDERR_FILENO) == 1

    func show(_ text: String) {
        let output: String? = state.withLock { state in
            guard text != state.last else { return nil }
            state.last = text
            state.pending = rewrites
            return rewrites ? "\r\u{1B}[K" + text : text + "\n"
        }
        if let output { FileHandle.standardError.write(Data(output.utf8)) }
    }

    /// Erases the line (on a terminal): the outcome printed next replaces it.
    func finish() {
        let erase = state.withLock { state in
            defer { state = ("", false) }
            return state.pending
        }
        if erase { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
