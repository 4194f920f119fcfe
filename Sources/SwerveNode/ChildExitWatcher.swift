import Dispatch
import Foundation
import Glibc
import Synchronization

/// Says the moment a child of this process exits, so that the agent reaps it and records the
/// exit at once rather than at its next tick (a killed replica's replacement starts from that
/// record).
///
/// A thread of its own blocks in `waitid(P_ALL, …, WEXITED | WNOWAIT)`: that returns when any
/// child has exited, without reaping it — the agent still reaps with `waitpid`, in one place
/// (``WorkerProcesses/reap()``). After each report the thread waits for ``lookAgain()`` (called
/// after every reap and every spawn) before asking again, so an unreaped child is reported once
/// per reap, never in a loop; with no child at all it waits for the next spawn the same way.
/// Calls of ``lookAgain()`` made while one is pending count once (a hundred spawns do not make
/// a hundred reports of the next exit).
///
/// Only for a process whose children are all the agent's (`swerve node`): the agent's reap
/// takes every exited child.
final class ChildExitWatcher: Sendable {
    private let again = DispatchSemaphore(value: 0)
    /// A ``lookAgain()`` is pending: the semaphore was signalled and the thread has not woken.
    private let pending = Atomic<Bool>(false)

    /// Starts the thread; `exited` is called on it each time a child exited (not yet reaped).
    init(exited: @escaping @Sendable () -> Void) {
        // The thread keeps the watcher for the life of the process.
        let thread = Thread { [self] in
            while true {
                var info = siginfo_t()
                if waitid(P_ALL, 0, &info, WEXITED | WNOWAIT) == 0 {
                    exited()
                } else if errno == EINTR {
                    continue
                }
                // An exit reported (until it is reaped, waitid would report it again), or no
                // child to wait for (ECHILD): wait for the agent to reap or spawn.
                again.wait()
                // Cleared before looking again: a call from now on signals anew, and one made
                // before this line is answered by the look that follows.
                pending.store(false, ordering: .sequentiallyConsistent)
            }
        }
        thread.name = "swerve-node-children"
        thread.start()
    }

    /// The agent reaped or spawned: wait for the next exit.
    func lookAgain() {
        if !pending.exchange(true, ordering: .sequentiallyConsistent) { again.signal() }
    }
}
