// QueueArena: one memory region laid out for a queue — the ring, an indirect table pool
// and the buffers — with its guest address space, so a driver half and a device half (or
// two processes, when shared) can be attached to it. Used by tests, benchmarks, mediators.

import VirtioMemory

/// Which ring format a queue uses.
public enum RingLayoutKind: String, Sendable, Codable, CaseIterable {
    case split
    case packed
}

/// Memory for one queue: ring at `ringGPA`, indirect tables at `indirectGPA`, then
/// `bufferCount` buffers of `bufferSize` bytes from `bufferGPA`.
public final class QueueArena: @unchecked Sendable {
    public let kind: RingLayoutKind
    public let queueSize: Int
    public let backed: GuestMemory.Backed
    public let ringGPA: UInt64
    public let indirectGPA: UInt64
    public let indirectEntries: Int
    public let bufferGPA: UInt64
    public let bufferSize: Int
    public let bufferCount: Int
    public let addresses: RingAddresses
    /// The split used ring's alignment (4096 for a legacy device's layout).
    public let usedAlignment: Int

    public var memory: GuestMemory { backed.memory }
    public var region: HugepageRegion { backed.regions[0] }

    /// Guest base of the arena (page aligned, away from 0 so a null address is always invalid).
    public static let baseGPA: UInt64 = 0x4000_0000

    public init(kind: RingLayoutKind, queueSize: Int, bufferSize: Int = 2048, bufferCount: Int? = nil,
                indirectEntries: Int = 8, policy: BackingPolicy = .best, shareable: Bool = false, usedAlignment: Int = 64) throws {
        self.kind = kind
        self.usedAlignment = usedAlignment
        self.queueSize = queueSize
        self.bufferSize = bufferSize
        self.bufferCount = bufferCount ?? queueSize
        self.indirectEntries = indirectEntries
        let ringBytes: Int
        switch kind {
        case .split: ringBytes = try SplitLayout(queueSize: queueSize, usedAlignment: usedAlignment).totalSize
        case .packed: ringBytes = try PackedLayout(queueSize: queueSize).totalSize
        }
        func align(_ n: Int, _ a: Int) -> Int { (n + a - 1) / a * a }
        let indirectOffset = align(ringBytes, 4096)
        let bufferOffset = align(indirectOffset + IndirectPool.bytes(queueSize: queueSize, entriesPerTable: indirectEntries), 4096)
        let total = bufferOffset + self.bufferCount * bufferSize
        let region = try HugepageRegion(bytes: total, policy: policy, shareable: shareable)
        backed = try GuestMemory.Backed(regions: [region], firstGPA: Self.baseGPA)
        let base = backed.memory.allRegions[0].gpa
        ringGPA = base
        indirectGPA = base + UInt64(indirectOffset)
        bufferGPA = base + UInt64(bufferOffset)
        switch kind {
        case .split: addresses = try SplitLayout(queueSize: queueSize, usedAlignment: usedAlignment).addresses(at: base)
        case .packed: addresses = try PackedLayout(queueSize: queueSize).addresses(at: base)
        }
    }

    public var indirectPool: IndirectPool { IndirectPool(gpa: indirectGPA, entriesPerTable: indirectEntries) }

    /// Guest address of buffer `i`.
    @inlinable
    public func bufferAddress(_ i: Int) -> UInt64 { bufferGPA + UInt64(i * bufferSize) }

    /// Host pointer to buffer `i` (the driver's own view of its memory).
    public func bufferHost(_ i: Int) -> UnsafeMutableRawPointer {
        try! memory.translate(bufferAddress(i), length: UInt64(bufferSize))
    }

    public func splitDriver(features: VirtioFeatures, queue: UInt16 = 0) throws(VirtqueueError) -> SplitDriver {
        try SplitDriver(queue: queue, layout: SplitLayout(queueSize: queueSize, usedAlignment: usedAlignment), addresses: addresses,
                        memory: memory, features: features, indirectPool: indirectPool)
    }

    public func splitDevice(features: VirtioFeatures, queue: UInt16 = 0,
                            state: SplitQueueState = .init()) throws(VirtqueueError) -> SplitDevice<GuestMemory> {
        try SplitDevice(queue: queue, layout: SplitLayout(queueSize: queueSize, usedAlignment: usedAlignment), addresses: addresses,
                        memory: memory, features: features, state: state)
    }

    public func packedDriver(features: VirtioFeatures, queue: UInt16 = 0) throws(VirtqueueError) -> PackedDriver {
        try PackedDriver(queue: queue, layout: PackedLayout(queueSize: queueSize), addresses: addresses,
                         memory: memory, features: features, indirectPool: indirectPool)
    }

    public func packedDevice(features: VirtioFeatures, queue: UInt16 = 0,
                             state: PackedQueueState = .init()) throws(VirtqueueError) -> PackedDevice<GuestMemory> {
        try PackedDevice(queue: queue, layout: PackedLayout(queueSize: queueSize), addresses: addresses,
                         memory: memory, features: features, state: state)
    }
}
