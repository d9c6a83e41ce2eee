// The two-thread polled ring: a driver thread and a device thread on different CPUs, each
// owning its half, no notifications (both poll). What "descriptors per second" means here.

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
/// device thread and back, posting and completing in batches of `batch`, both polling.
public func twoThreadPolledRun<Driver: VirtqueueDriverHalf, Device: VirtqueueDeviceHalf>(
    driver: Driver, device: Device, addresses: [UInt64], payloadBytes: UInt32,
    batch: Int, descriptors: Int, placement: ThreadPlacement = .current()
) throws(DoorbellError) -> TwoThreadResult {
    let driverSlot = Slot(driver)
    let deviceSlot = Slot(device)
    let gate = StartGate()
    let ready = ManagedAtomic<Int>(0)
    let driverOut = Slot((cpu: UInt64(0), error: String?.none))
    let deviceOut = Slot((cpu: UInt64(0), error: String?.none))
    let start = Slot(UInt64(0))
    let end = Slot(UInt64(0))

    let driverThread = try PinnedThread(cpu: placement.driverCPU) {
        var d = driverSlot.value
        ready.wrappingIncrement(ordering: .relaxed)
        gate.wait()
        let cpu0 = cplatform_thread_cpu_time_ns()
        do {
            try addresses.withUnsafeBufferPointer { addrs throws(VirtqueueError) in
                var posted = 0
                var reclaimed = 0
                var next = 0
                while reclaimed < descriptors {
                    if posted < descriptors && d.freeDescriptors >= batch {
                        posted &+= d.postBurst(from: addrs, next: &next, count: min(batch, descriptors - posted),
                                               length: payloadBytes)
                        d.publish()
                    }
                    let got = try d.reclaimBurst(maximum: batch) { _ in }
                    reclaimed &+= got
                    if got == 0 { cplatform_cpu_relax() }
                }
            }
        } catch {
            driverOut.value.error = "driver: \(error)"
        }
        driverOut.value.cpu = cplatform_thread_cpu_time_ns() - cpu0
        end.value = cplatform_monotonic_ns()
    }
    let deviceThread = try PinnedThread(cpu: placement.deviceCPU) {
        var v = deviceSlot.value
        ready.wrappingIncrement(ordering: .relaxed)
        gate.wait()
        let cpu0 = cplatform_thread_cpu_time_ns()
        var done = 0
        var sink: UInt64 = 0
        let bursts = DeviceBurstBuffers(capacity: batch)
        defer { bursts.deallocate() }
        do {
            while done < descriptors {
                let pending = try v.serveBurst(bursts, maximum: batch) { _, segments in
                    if let host = segments.first?.host { sink &+= UInt64(host.load(as: UInt8.self)) }
                    return 0
                }
                if pending > 0 {
                    v.publishUsed()
                    done &+= pending
                } else {
                    cplatform_cpu_relax()
                }
            }
        } catch {
            deviceOut.value.error = "device: \(error)"
        }
        deviceOut.value.cpu = cplatform_thread_cpu_time_ns() - cpu0 + (sink == .max ? 1 : 0)
    }
    while ready.load(ordering: .relaxed) < 2 { cplatform_cpu_relax() }
    start.value = cplatform_monotonic_ns()
    gate.open()
    driverThread.join()
    deviceThread.join()
    return TwoThreadResult(
        descriptors: descriptors, nanoseconds: end.value - start.value,
        driverCPUNanoseconds: driverOut.value.cpu, deviceCPUNanoseconds: deviceOut.value.cpu,
        errors: [driverOut.value.error, deviceOut.value.error].compactMap { $0 })
}
