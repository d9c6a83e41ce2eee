// BounceBuffer: a fixed region (64 MiB by default, VDUSE's default) cut into equal slots
// with a LIFO free list; payloads are copied in and out — the VDUSE datapath cost.
// Owned by one thread (the datapath that bounces).

/// A fixed pool of bounce slots in one `HugepageRegion`.
public struct BounceBuffer: @unchecked Sendable {
    /// VDUSE's default bounce size.
    public static let defaultSize = 64 << 20

    public let region: HugepageRegion
    public let slotSize: Int
    public let slotCount: Int
    /// Free slot indices; the top of the stack is `freeSlots[freeCount - 1]`.
    @usableFromInline let freeSlots: UnsafeMutablePointer<Int32>
    @usableFromInline var freeCount: Int
    @usableFromInline let allocated: UnsafeMutablePointer<Bool>
    private let storage: Storage

    /// Frees the bookkeeping arrays when the last copy of the buffer goes.
    private final class Storage: @unchecked Sendable {
        let free: UnsafeMutablePointer<Int32>
        let allocated: UnsafeMutablePointer<Bool>
        init(count: Int) {
            free = .allocate(capacity: count)
            allocated = .allocate(capacity: count)
            allocated.initialize(repeating: false, count: count)
            for i in 0..<count { (free + i).initialize(to: Int32(count - 1 - i)) }
        }
        deinit {
            free.deallocate()
            allocated.deallocate()
        }
    }

    /// - Parameters:
    ///   - bytes: size of the region (rounded down to whole slots).
    ///   - slotSize: bytes per slot; a payload larger than one slot cannot bounce.
    public init(bytes: Int = BounceBuffer.defaultSize, slotSize: Int = 4096,
                policy: BackingPolicy = .best) throws(MemoryError) {
        guard slotSize > 0, bytes >= slotSize, bytes / slotSize <= Int(Int32.max) else {
            throw .invalidRegionSize(bytes: bytes)
        }
        self.region = try HugepageRegion(bytes: bytes, policy: policy)
        self.slotSize = slotSize
        self.slotCount = bytes / slotSize
        self.storage = Storage(count: slotCount)
        self.freeSlots = storage.free
        self.allocated = storage.allocated
        self.freeCount = slotCount
    }

    public var slotsInUse: Int { slotCount - freeCount }

    /// Takes a free slot.
    @inlinable
    public mutating func allocate() throws(MemoryError) -> Int {
        guard freeCount > 0 else { throw .bounceBufferExhausted(slots: slotCount, slotSize: slotSize) }
        freeCount &-= 1
        let slot = Int(freeSlots[freeCount])
        allocated[slot] = true
        return slot
    }

    /// Returns a slot to the pool.
    @inlinable
    public mutating func release(_ slot: Int) throws(MemoryError) {
        guard slot >= 0, slot < slotCount, allocated[slot] else { throw .bounceSlotNotAllocated(slot: slot) }
        allocated[slot] = false
        freeSlots[freeCount] = Int32(truncatingIfNeeded: slot)
        freeCount &+= 1
    }

    /// The memory of one slot.
    @inlinable
    public func slotPointer(_ slot: Int) -> UnsafeMutableRawPointer {
        region.base.advanced(by: slot &* slotSize)
    }

    /// Copies `source` into `slot` (the driver-to-device direction).
    @inlinable
    public func copyIn(_ source: UnsafeRawBufferPointer, to slot: Int) throws(MemoryError) {
        try check(slot, source.count)
        if let base = source.baseAddress { slotPointer(slot).copyMemory(from: base, byteCount: source.count) }
    }

    /// Copies `destination.count` bytes out of `slot` (the device-to-driver direction).
    @inlinable
    public func copyOut(from slot: Int, to destination: UnsafeMutableRawBufferPointer) throws(MemoryError) {
        try check(slot, destination.count)
        if let base = destination.baseAddress { base.copyMemory(from: slotPointer(slot), byteCount: destination.count) }
    }

    @inlinable
    func check(_ slot: Int, _ count: Int) throws(MemoryError) {
        guard slot >= 0, slot < slotCount, allocated[slot] else { throw .bounceSlotNotAllocated(slot: slot) }
        guard count <= slotSize else { throw .bounceCopyTooLarge(bytes: count, slotSize: slotSize) }
    }
}
