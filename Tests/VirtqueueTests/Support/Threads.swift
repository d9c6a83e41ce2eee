// Helpers for the cross-thread tests (threads come from Doorbell.PinnedThread): which
// CPUs to pin to, a polite backoff, and a deadline so nothing can hang the suite.

import CPlatform
#if canImport(Glibc)
import Glibc
#endif

/// CPUs for a driver thread and a device thread: different ones when the machine has two.
func twoCPUs() -> (Int32?, Int32?) {
    cplatform_allowed_cpu_count() >= 2 ? (0, 1) : (nil, nil)
}

/// Backs off politely while waiting for the other thread (tests share 2 CPUs with others).
struct Backoff {
    var spins = 0
    mutating func idle() {
        spins += 1
        if spins & 63 == 0 { sched_yield() } else { cplatform_cpu_relax() }
    }
    mutating func reset() { spins = 0 }
}

/// Monotonic deadline so no cross-thread test can hang the suite.
struct Deadline {
    let end: UInt64
    init(seconds: UInt64) { end = cplatform_monotonic_ns() + seconds * 1_000_000_000 }
    var passed: Bool { cplatform_monotonic_ns() > end }
}
