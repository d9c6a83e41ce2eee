// Two threads for the cross-thread tests: each pinned to its own CPU when there are two.

import CPlatform
#if canImport(Glibc)
import Glibc
#endif

/// A started thread that can be joined once.
final class TestThread: @unchecked Sendable {
    private var thread = pthread_t()
    private let body: () -> Void
    let cpu: Int32?

    init(cpu: Int32?, _ body: @escaping () -> Void) {
        self.body = body
        self.cpu = cpu
        let box = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            let me = Unmanaged<TestThread>.fromOpaque(arg!).takeRetainedValue()
            if let cpu = me.cpu { _ = cplatform_pin_current_thread(cpu) }
            me.body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }

    func join() { pthread_join(thread, nil) }
}

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
