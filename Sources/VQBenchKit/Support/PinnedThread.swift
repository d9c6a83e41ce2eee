// Threads for measurements: started pinned to one CPU, joined once. Plain pthreads, so a
// measured loop runs on a thread nobody else schedules work onto.

import Atomics
import CPlatform
#if canImport(Glibc)
import Glibc
#endif

/// A thread pinned to `cpu` (when given) running `body` once.
public final class PinnedThread: @unchecked Sendable {
    private var thread = pthread_t()
    private let body: () -> Void
    public let cpu: Int32?

    public init(cpu: Int32?, _ body: @escaping () -> Void) {
        self.body = body
        self.cpu = cpu
        let box = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            let me = Unmanaged<PinnedThread>.fromOpaque(arg!).takeRetainedValue()
            if let cpu = me.cpu { _ = cplatform_pin_current_thread(cpu) }
            me.body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }

    public func join() { pthread_join(thread, nil) }
}

/// The CPUs a driver and a device thread run on: different ones when there are two or more.
public struct ThreadPlacement: Sendable, Equatable {
    public var driverCPU: Int32?
    public var deviceCPU: Int32?
    /// Why the threads share a CPU or float, when they do.
    public var note: String?

    public static func current() -> ThreadPlacement {
        let cpus = cplatform_allowed_cpu_count()
        if cpus >= 2 { return ThreadPlacement(driverCPU: 0, deviceCPU: 1, note: nil) }
        return ThreadPlacement(driverCPU: nil, deviceCPU: nil, note: "only \(cpus) CPU allowed: driver and device share it")
    }
}

/// A one-shot flag for starting two threads together.
public final class StartGate: Sendable {
    private let flag = ManagedAtomic<Bool>(false)
    public init() {}
    public func open() { flag.store(true, ordering: .releasing) }
    public func wait() { while !flag.load(ordering: .acquiring) { cplatform_cpu_relax() } }
}
