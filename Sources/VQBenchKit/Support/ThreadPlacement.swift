// Where measurement threads run (Doorbell's PinnedThread starts them), and a gate that
// starts two of them together.

import Atomics
import CPlatform

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
