import ArgumentParser
import Foundation
import Glibc

/// `swerve-ops fuzz`: feeds every decoder (``FuzzTarget``) seeded mutations of the valid
/// documents in `fuzz/corpus/TARGET/`, for a given time each.
///
/// A trap, a crash or an input that takes longer than `--hang-ms` stops the run: the input is
/// saved as `fuzz/crashes/TARGET.input` (written from the signal handler, so even a stack
/// overflow leaves it) and the command exits 1 naming it. Inputs saved there are replayed first
/// on the next run, so a fix can be checked with the input that found the bug; once fixed, move
/// the input into the corpus.
struct FuzzCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuzz",
        abstract: "Feed every decoder of a stored value, and the spec parser, mutated valid documents.",
        discussion: """
            Example:
              swerve-ops fuzz --seconds 30               # every target, 30 s each
              swerve-ops fuzz checkpoint --seed 7        # one target, repeatable
            Targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))
            """
    )

    @Argument(help: "Targets to run (default: all).") var targets: [String] = []
    @Option(help: "Seconds per target.") var seconds: Double = 10
    @Option(help: "The mutation seed (default: random, printed).") var seed: UInt64?
    @Option(help: "Where the corpus and crashes live.") var directory = "fuzz"
    @Option(help: "An input that takes longer than this, in milliseconds, is a hang.") var hangMs = 2000

    func validate() throws {
        for name in targets where FuzzTarget(rawValue: name) == nil {
            throw ValidationError("unknown target \"\(name)\"; known: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard seconds > 0, seconds.isFinite else { throw ValidationError("--seconds: must be above 0, got \(seconds)") }
        guard hangMs >= 100 else { throw ValidationError("--hang-ms: must be at least 100, got \(hangMs)") }
    }

    func run() throws {
        let chosen = targets.isEmpty ? FuzzTarget.allCases : targets.compactMap(FuzzTarget.init(rawValue:))
        let seed = self.seed ?? UInt64.random(in: 0...UInt64.max)
        print("fuzz: seed \(seed), \(seconds) s per target, corpus \(directory)/corpus")
        try FileManager.default.createDirectory(atPath: "\(directory)/crashes", withIntermediateDirectories: true)
        // SWERVE_FUZZ_BACKTRACE=1 leaves crashes to Swift's backtracer (with
        // SWIFT_BACKTRACE=enable=yes) to see where a saved input crashes; the input is then not saved.
        if ProcessInfo.processInfo.environment["SWERVE_FUZZ_BACKTRACE"] == nil { FuzzCrashReport.install() }
        var total = 0
        for target in chosen {
            let corpus = try Self.corpus(of: target, in: directory)
            guard !corpus.isEmpty else { throw ValidationError("\(directory)/corpus/\(target.rawValue) has no seed documents") }
            let crashPath = "\(directory)/crashes/\(target.rawValue).input"
            var previous: [[UInt8]] = []
            if let bytes = FileManager.default.contents(atPath: crashPath) { previous.append(Array(bytes)) }
            FuzzCrashReport.begin(target: target.rawValue, path: crashPath)
            // Each target its own stream of the one seed, so running one target alone repeats
            // what it got in a run of all.
            let offset = UInt64(FuzzTarget.allCases.firstIndex(of: target) ?? 0)
            var mutator = FuzzMutator(seed: seed &+ offset &* 0x9E37_79B9_7F4A_7C15)
            let deadline = Date().addingTimeInterval(seconds)
            var runs = 0
            for input in previous + corpus {
                FuzzCrashReport.execute(input, hangMs: hangMs) { target.run(input) }
                runs += 1
            }
            while Date() < deadline {
                for _ in 0..<64 {
                    let input = mutator.mutate(corpus[mutator.below(corpus.count)])
                    FuzzCrashReport.execute(input, hangMs: hangMs) { target.run(input) }
                    runs += 1
                }
            }
            FuzzCrashReport.end()
            // Survived: a crash input saved by an earlier run no longer crashes.
            if !previous.isEmpty { try? FileManager.default.removeItem(atPath: crashPath) }
            print("fuzz: \(target.rawValue): \(runs) inputs from \(corpus.count) seeds, no crash, no hang")
            total += runs
        }
        print("fuzz: ok — \(total) inputs, \(chosen.count) targets")
    }

    /// The seed documents of `target`: every file in its corpus directory.
    static func corpus(of target: FuzzTarget, in directory: String) throws -> [[UInt8]] {
        let path = "\(directory)/corpus/\(target.rawValue)"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.sorted().compactMap { FileManager.default.contents(atPath: "\(path)/\($0)").map(Array.init) }
    }
}

/// Saves the input being run when the process traps, crashes or hangs. Everything the signal
/// handler touches is set up beforehand; it only calls async-signal-safe functions (`write`,
/// `ftruncate`, `lseek`, `_exit`), and runs on its own stack so a stack overflow reaches it.
enum FuzzCrashReport {
    // Only the fuzzing thread writes these, between inputs; the handler reads them when that
    // same thread faults (or from the alarm, while that thread is inside an input). Nothing
    // else in the process touches them.
    nonisolated(unsafe) static var input: UnsafeMutablePointer<UInt8> = .allocate(capacity: FuzzMutator.maximumSize + 65_536)
    nonisolated(unsafe) static var length = 0
    nonisolated(unsafe) static var descriptor: Int32 = -1
    nonisolated(unsafe) static var message: [UInt8] = []

    static func install() {
        let stackSize = 1 << 20
        var stack = stack_t()
        stack.ss_sp = UnsafeMutableRawPointer.allocate(byteCount: stackSize, alignment: 16)
        stack.ss_size = stackSize
        stack.ss_flags = 0
        sigaltstack(&stack, nil)
        for signal in [SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGALRM] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signal in
                let descriptor = FuzzCrashReport.descriptor
                if descriptor >= 0 {
                    _ = ftruncate(descriptor, 0)
                    _ = lseek(descriptor, 0, SEEK_SET)
                    _ = write(descriptor, FuzzCrashReport.input, FuzzCrashReport.length)
                }
                FuzzCrashReport.message.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
                let kind: StaticString = signal == SIGALRM ? "fuzz: HANG (no answer within --hang-ms)\n" : "fuzz: CRASH (a signal: a trap, a fault or an abort)\n"
                _ = write(2, kind.utf8Start, kind.utf8CodeUnitCount)
                _exit(1)
            }
            action.sa_flags = SA_ONSTACK
            sigaction(signal, &action, nil)
        }
    }

    static func begin(target: String, path: String) {
        descriptor = open(path, O_WRONLY | O_CREAT, 0o644)
        message = Array("\nfuzz: target \(target): the input is saved in \(path) (replayed first by the next run)\n".utf8)
    }

    static func end() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
    }

    /// Runs `body` on `bytes`, with the alarm armed for `hangMs`.
    static func execute(_ bytes: [UInt8], hangMs: Int, _ body: () -> Void) {
        length = min(bytes.count, FuzzMutator.maximumSize + 65_536)
        if length > 0 { bytes.withUnsafeBufferPointer { input.update(from: $0.baseAddress!, count: length) } }
        var timer = itimerval(it_interval: timeval(), it_value: timeval(tv_sec: hangMs / 1000, tv_usec: (hangMs % 1000) * 1000))
        setitimer(__itimer_which_t(ITIMER_REAL.rawValue), &timer, nil)
        body()
        timer.it_value = timeval()
        setitimer(__itimer_which_t(ITIMER_REAL.rawValue), &timer, nil)
    }
}
