import Glibc
public import SwerveCore

/// Wall-clock time in Unix milliseconds: what Swerve writes into Redis (deadlines, start times)
/// for other processes and hosts to read. Decision logic takes it as an argument; only the
/// shells at the edges call this.
public func wallClockMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}

/// Now, by the wall clock (see ``wallClockMilliseconds()``).
public func wallClockNow() -> Timestamp { Timestamp(milliseconds: wallClockMilliseconds()) }
