import Foundation
import Glibc

/// Progress on standard error: on a terminal, one line rewritten in place (`\r` and erase to
/// the end of the line); otherwise (a pipe, a CI log) one line per change, so logs stay
/// readable. Repeats of the same text are not shown again. The final outcome goes to standard
/// output, so a script's `$(swerve apply …)` sees only it.
final class ProgressLine: @unchecked Sendable {
    // @unchecked: `last` and `pending` are only touched under `lock`.
    private let lock = NSLock()
    private var last = ""
    private var pending = false
    private let rewrites = isatty(STDERR_FILENO) == 1

    func show(_ text: String) {
        lock.withLock {
            guard text != last else { return }
            last = text
            pending = rewrites
            write(rewrites ? "\r\u{1B}[K" + text : text + "\n")
        }
    }

    /// Erases the line (on a terminal): the outcome printed next replaces it.
    func finish() {
        lock.withLock {
            if pending { write("\r\u{1B}[K") }
            pending = false
            last = ""
        }
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
