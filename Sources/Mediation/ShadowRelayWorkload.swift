// The shadow virtqueue's relay as one fixed single-thread loop, for callgrind to count
// exactly (instructions are what the relay costs on any CPU; its two-thread times move with
// the vCPUs' placement). One round: the driver posts a burst of receive buffers on its ring;
// the relay pops them, translates each through the IOVA tree and posts them on the shadow
// ring; a device pops the shadow ring, writes a packet into each buffer and pushes them used;
// the relay hands them back on the driver's ring (logging the pages written, in the logged
// loop); the driver reclaims them. The logged and unlogged loops differ in the log alone, so
// their difference per descriptor is dirty logging's cost.

import Virtqueue
import VirtioMemory

/// What the counted loops run on, made (and allocated) before counting starts.
public struct ShadowRelayBench<Driver: VirtqueueDriverHalf, Guest: VirtqueueDeviceHalf & VDPAQueueStateReporting,
                               Shadow: VirtqueueDriverHalf, Device: VirtqueueDeviceHalf> {
    var driver: Driver
    var guest: Guest
    var shadow: Shadow
    var device: Device
    var link: ShadowLink
    var plan: ShadowPlan
    let scratch: RelayScratch
    let deviceChains: UnsafeMutablePointer<Chain>
    let counters: ShadowRelayCounters
    let addresses: [UInt64]
    let arena: QueueArena
    let payloadBytes: Int
    /// The log the logged loop writes (covers the driver's memory).
    public let log: DirtyLog
    public private(set) var descriptors = 0

    init(arena: QueueArena, layout: RingLayoutKind, batch: Int, payloadBytes: Int,
         make: (QueueArena, ShadowPlan, ReadyQueue) throws -> (Driver, Guest, Shadow, Device)) throws {
        self.arena = arena
        self.payloadBytes = payloadBytes
        let ready = ReadyQueue(index: 0, size: arena.queueSize, addresses: arena.addresses, state: nil, callback: nil)
        plan = try ShadowPlan(guest: arena.memory, ready: [ready], layout: layout, alignment: 64)
        (driver, guest, shadow, device) = try make(arena, plan, ready)
        link = ShadowLink(ready, layout: layout)
        scratch = RelayScratch(batch: batch)
        deviceChains = .allocate(capacity: max(batch, 1))
        counters = ShadowRelayCounters()
        addresses = (0..<arena.queueSize).map { arena.bufferAddress($0) }
        log = DirtyLog(covering: arena.memory.allRegions.map { $0.gpa &+ $0.size }.max() ?? 0)
    }

    /// Frees what the set-up allocated (the arenas go with the last reference).
    public func deallocate() {
        link.deallocate()
        scratch.deallocate()
        deviceChains.deallocate()
    }

    /// `rounds` rounds of `batch` receive buffers through the relay; `log` marks the pages
    /// written. Returns the descriptors the driver got back.
    @inline(__always)
    mutating func rounds(_ rounds: Int, batch: Int, log: DirtyLogWriter?) throws(RelayFailure) -> Int {
        var moved = 0
        var next = 0
        let ring = addresses.count
        let length = UInt32(arena.bufferSize)
        let packet = payloadBytes
        for r in 0..<rounds {
            var left = batch
            while left > 0 {
                let posted = addresses.withUnsafeBufferPointer { a in
                    driver.postBurst(count: min(left, ring &- next)) { i in Buffer(address: a[next &+ i], length: length, isWritable: true) }
                }
                if posted == 0 { break }
                left &-= posted
                next &+= posted
                if next == ring { next = 0 }
            }
            driver.publish()
            _ = try relayAvailable(&guest, &shadow, &link, &plan.tree, scratch, counters.words, popping: true)
            shadow.publish()
            let n: Int
            do throws(VirtqueueError) { n = try device.popBurst(into: deviceChains, maximum: batch) } catch { throw .ring(error) }
            for i in 0..<n {
                let s = device.segments(of: deviceChains[i])
                if let host = s.first?.host { writeReceivePacket(host, sequence: UInt64(r), length: packet) }
            }
            device.pushUsedBurst(deviceChains, count: n) { _ in UInt32(packet) }
            device.publishUsed()
            let before = log == nil ? nil : guest.vdpaState
            if try relayUsed(&guest, &shadow, link, log: log) > 0 {
                guest.publishUsed()
                if let log, let before { link.area.markUsed(log, from: before, to: guest.vdpaState) }
            }
            do throws(VirtqueueError) { moved &+= try driver.reclaimBurst(maximum: batch) { _ in } } catch { throw .ring(error) }
        }
        descriptors &+= moved
        return moved
    }
}

public typealias SplitRelayBench = ShadowRelayBench<SplitDriver, SplitDevice<GuestMemory>, SplitDriver, SplitDevice<GuestMemory>>
public typealias PackedRelayBench = ShadowRelayBench<PackedDriver, PackedDevice<GuestMemory>, PackedDriver, PackedDevice<GuestMemory>>

public enum ShadowRelayWorkload {
    /// The counted loops' function names (callgrind --toggle-collect).
    public static func functionName(_ layout: RingLayoutKind, logged: Bool) -> String {
        "vqb_svq_\(layout.rawValue)\(logged ? "_logged" : "")_loop"
    }

    static func arena(_ layout: RingLayoutKind, queueSize: Int) throws -> QueueArena {
        // 4 KiB pages: the same memory on every machine, so counts do not depend on backing.
        try QueueArena(kind: layout, queueSize: queueSize, bufferSize: 2048, bufferCount: queueSize, indirectEntries: 1,
                       policy: .require(.smallPages))
    }

    public static func split(queueSize: Int = 256, batch: Int = 32, payloadBytes: Int = 64) throws -> SplitRelayBench {
        let features: VirtioFeatures = [.version1]
        return try SplitRelayBench(arena: try arena(.split, queueSize: queueSize), layout: .split, batch: batch,
                                   payloadBytes: payloadBytes) { arena, plan, ready in
            let shadowLayout = try SplitLayout(queueSize: ready.size, usedAlignment: plan.shadows[0].arena.usedAlignment)
            let a = plan.shadows[0].window.addresses
            return (try arena.splitDriver(features: features), try ready.splitDevice(arena.memory, features),
                    try SplitDriver(queue: 0, layout: shadowLayout, addresses: a, memory: plan.shadowMemory(0), features: features),
                    try SplitDevice(queue: 0, layout: shadowLayout, addresses: a, memory: plan.deviceSpace(offset: 0),
                                    features: features, state: SplitQueueState()))
        }
    }

    public static func packed(queueSize: Int = 256, batch: Int = 32, payloadBytes: Int = 64) throws -> PackedRelayBench {
        let features: VirtioFeatures = [.version1, .ringPacked]
        return try PackedRelayBench(arena: try arena(.packed, queueSize: queueSize), layout: .packed, batch: batch,
                                    payloadBytes: payloadBytes) { arena, plan, ready in
            let layout = try PackedLayout(queueSize: ready.size)
            let a = plan.shadows[0].window.addresses
            return (try arena.packedDriver(features: features), try ready.packedDevice(arena.memory, features),
                    try PackedDriver(queue: 0, layout: layout, addresses: a, memory: plan.shadowMemory(0), features: features),
                    try PackedDevice(queue: 0, layout: layout, addresses: a, memory: plan.deviceSpace(offset: 0),
                                     features: features, state: PackedQueueState()))
        }
    }

    @_silgen_name("vqb_svq_split_loop") @inline(never)
    public static func splitLoop(_ b: inout SplitRelayBench, rounds: Int, batch: Int) throws -> Int {
        try b.rounds(rounds, batch: batch, log: nil)
    }

    @_silgen_name("vqb_svq_split_logged_loop") @inline(never)
    public static func splitLoggedLoop(_ b: inout SplitRelayBench, rounds: Int, batch: Int) throws -> Int {
        try b.rounds(rounds, batch: batch, log: b.log.writer)
    }

    @_silgen_name("vqb_svq_packed_loop") @inline(never)
    public static func packedLoop(_ b: inout PackedRelayBench, rounds: Int, batch: Int) throws -> Int {
        try b.rounds(rounds, batch: batch, log: nil)
    }

    @_silgen_name("vqb_svq_packed_logged_loop") @inline(never)
    public static func packedLoggedLoop(_ b: inout PackedRelayBench, rounds: Int, batch: Int) throws -> Int {
        try b.rounds(rounds, batch: batch, log: b.log.writer)
    }
}
