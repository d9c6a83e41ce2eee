// The two-thread polled ring: a driver thread and a device thread on different CPUs, each
// owning its half, no notifications (both poll): the engine's datapath without doorbells.

import Atomics
import CPlatform
import Doorbell
import Virtqueue
import VirtioMemory

/// What one timed two-thread run measured.
public struct TwoThreadResult: Sendable {
    public var descriptors: Int
    public var nanoseconds: UInt64
    public var driverCPUNanoseconds: UInt64
    public var deviceCPUNanoseconds: UInt64
    public var errors: [String]

    public var descriptorsPerSecond: Double { Double(descriptors) * 1e9 / Double(max(nanoseconds, 1)) }
    public var cpuNanosecondsPerDescriptor: Double {
        Double(driverCPUNanoseconds + deviceCPUNanoseconds) / Double(max(descriptors, 1))
    }
}

final class Slot<T>: @unchecked Sendable {
    var value: T
    init(_ v: T) { value = v }
}

/// Moves `descriptors` single-descriptor chains of `payloadBytes` from a driver thread to a
/// device thread and back, posting and completing in bursts of `batch`, both polling. The
/// engine's datapath loops (``runDatapath``) with no notifications: the same code the
/// scenarios run, so `vqbench ring` and `vqbench run` time one loop.
public func twoThreadPolledRun<Driver: VirtqueueDriverHalf, Device: VirtqueueDeviceHalf>(
    driver: Driver, device: Device, addresses: [UInt64], payloadBytes: UInt32,
    batch: Int, descriptors: Int, placement: ThreadPlacement = .current()
) throws(DoorbellError) -> TwoThreadResult {
    // Never rung: with `sleeps: false` neither side touches its doorbells.
    let kick = try BusyPollDoorbell.makePair()
    let call = try BusyPollDoorbell.makePair()
    let out = try runDatapath(driver: driver, device: device, kick: kick, call: call, sleeps: false,
                              addresses: addresses, payloadBytes: payloadBytes, batch: batch,
                              descriptors: descriptors, mode: .throughput, placement: placement)
    return TwoThreadResult(descriptors: out.descriptors, nanoseconds: out.nanoseconds,
                           driverCPUNanoseconds: out.driverCPUNanoseconds, deviceCPUNanoseconds: out.deviceCPUNanoseconds,
                           errors: out.errors)
}
