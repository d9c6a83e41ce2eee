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

/// One thread plays both halves: `rounds` times, post a burst of `batch` single-descriptor
/// chains, publish, decide on a kick, serve the burst (each payload's first byte read, each
/// chain marked used: the device loop's `serveBurst`), publish, decide on an interrupt,
/// reclaim the burst. Buffers come from `addresses` (one per ring slot); `bursts` (the
/// caller's) holds at least `batch` chains.
@inlinable
public func singleThreadRounds<Driver: VirtqueueDriverHalf, Device: VirtqueueDeviceHalf>(
    driver: inout Driver, device: inout Device, addresses: UnsafeBufferPointer<UInt64>,
    bursts: DeviceBurstBuffers, payloadBytes: UInt32, batch: Int, rounds: Int, counters: inout LoopCounters
) throws(VirtqueueError) {
    var next = 0
    let ring = addresses.count
    for _ in 0..<rounds {
        // The buffers in two contiguous spans at most, so each is a plain indexed load.
        var left = batch
        while left > 0 {
            let base = addresses.baseAddress.unsafelyUnwrapped + next
            let posted = driver.postBurst(count: min(left, ring &- next)) { i in
                Buffer(address: base[i], length: payloadBytes)
            }
            if posted == 0 { break }
            left &-= posted
            next &+= posted
            if next == ring { next = 0 }
        }
        driver.publish()
        if driver.kickNeeded() { counters.kicks &+= 1 }
        // A burst shorter than asked for, or an empty ring, ends it: no call to learn that.
        while true {
            var sum: UInt64 = 0
            let n = try device.serveBurst(bursts, maximum: batch) { _, segments in
                if let host = segments.first?.host { sum &+= UInt64(host.load(as: UInt8.self)) }
                return 0
            }
            if n == 0 { break }
            counters.checksum &+= sum
            if n < batch || !device.hasAvailable() { break }
        }
        device.publishUsed()
        if device.interruptNeeded() { counters.interrupts &+= 1 }
        while true {
            let n = try driver.reclaimBurst(maximum: batch) { _ in }
            counters.descriptors &+= n
            if n < batch || !driver.hasUsed() { break }
        }
    }
}

/// Fixed single-thread workloads with unmangled names, so callgrind's --toggle-collect can
/// count exactly the loop (DESIGN.md "Performance gating").
public enum SingleThreadWorkload {
    @_silgen_name("vqb_split_single_thread_loop") @inline(never)
    public static func split(_ driver: inout SplitDriver, _ device: inout SplitDevice<GuestMemory>,
                             _ addresses: UnsafeBufferPointer<UInt64>, _ bursts: DeviceBurstBuffers,
                             _ payload: UInt32, _ batch: Int,
                             _ rounds: Int, _ counters: inout LoopCounters) throws(VirtqueueError) {
        try singleThreadRounds(driver: &driver, device: &device, addresses: addresses, bursts: bursts,
                               payloadBytes: payload, batch: batch, rounds: rounds, counters: &counters)
    }

    @_silgen_name("vqb_packed_single_thread_loop") @inline(never)
    public static func packed(_ driver: inout PackedDriver, _ device: inout PackedDevice<GuestMemory>,
                              _ addresses: UnsafeBufferPointer<UInt64>, _ bursts: DeviceBurstBuffers,
                              _ payload: UInt32, _ batch: Int,
                              _ rounds: Int, _ counters: inout LoopCounters) throws(VirtqueueError) {
        try singleThreadRounds(driver: &driver, device: &device, addresses: addresses, bursts: bursts,
                               payloadBytes: payload, batch: batch, rounds: rounds, counters: &counters)
    }
}
