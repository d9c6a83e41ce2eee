// The hot loop every ring figure comes from: post → kick decision → pop → push used →
// interrupt decision → reclaim, generic over the two halves and specialised per layout.
// The single-thread form is what callgrind counts; the two-thread form is what the
// throughput figures time.

import Virtqueue
import VirtioMemory

/// Counts a loop keeps: what the notification decisions said and what moved.
public struct LoopCounters: Sendable, Equatable {
    public var descriptors: Int = 0
    public var kicks: Int = 0
    public var interrupts: Int = 0
    /// Sum of the first byte of every payload the device read (keeps the reads honest).
    public var checksum: UInt64 = 0
    public init() {}
}

/// One thread plays both halves: `rounds` times, post `batch` single-descriptor chains,
/// publish, decide on a kick, pop and complete them all, publish, decide on an interrupt,
/// reclaim them all. Buffers come from `addresses` (one per ring slot).
@inlinable
public func singleThreadRounds<Driver: VirtqueueDriverHalf, Device: VirtqueueDeviceHalf>(
    driver: inout Driver, device: inout Device, addresses: UnsafeBufferPointer<UInt64>,
    payloadBytes: UInt32, batch: Int, rounds: Int, counters: inout LoopCounters
) throws(VirtqueueError) {
    var next = 0
    for _ in 0..<rounds {
        for _ in 0..<batch {
            _ = try driver.post(Buffer(address: addresses[next], length: payloadBytes))
            next &+= 1
            if next == addresses.count { next = 0 }
        }
        driver.publish()
        if driver.kickNeeded() { counters.kicks &+= 1 }
        while let chain = try device.pop() {
            if let host = device.segments[0].host {
                counters.checksum &+= UInt64(host.load(as: UInt8.self))
            }
            device.pushUsed(chain, length: 0)
        }
        device.publishUsed()
        if device.interruptNeeded() { counters.interrupts &+= 1 }
        while try driver.reclaim() != nil { counters.descriptors &+= 1 }
    }
}

/// Fixed single-thread workloads with unmangled names, so callgrind's --toggle-collect can
/// count exactly the loop (DESIGN.md "Performance gating").
public enum SingleThreadWorkload {
    @_silgen_name("vqb_split_single_thread_loop") @inline(never)
    public static func split(_ driver: inout SplitDriver, _ device: inout SplitDevice<GuestMemory>,
                             _ addresses: UnsafeBufferPointer<UInt64>, _ payload: UInt32, _ batch: Int,
                             _ rounds: Int, _ counters: inout LoopCounters) throws(VirtqueueError) {
        try singleThreadRounds(driver: &driver, device: &device, addresses: addresses,
                               payloadBytes: payload, batch: batch, rounds: rounds, counters: &counters)
    }

    @_silgen_name("vqb_packed_single_thread_loop") @inline(never)
    public static func packed(_ driver: inout PackedDriver, _ device: inout PackedDevice<GuestMemory>,
                              _ addresses: UnsafeBufferPointer<UInt64>, _ payload: UInt32, _ batch: Int,
                              _ rounds: Int, _ counters: inout LoopCounters) throws(VirtqueueError) {
        try singleThreadRounds(driver: &driver, device: &device, addresses: addresses,
                               payloadBytes: payload, batch: batch, rounds: rounds, counters: &counters)
    }
}
