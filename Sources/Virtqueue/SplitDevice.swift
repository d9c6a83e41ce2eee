// The device half of a split virtqueue (virtio 1.2 §2.7): pops available chains, validates
// every byte it reads from the ring, writes used entries in batches with one release store,
// and decides whether to interrupt. Owned by one thread; shares only ring memory.

import Atomics
import VirtioMemory

/// Device half of a split ring, generic over how it reaches memory (specialised at compile time).
public struct SplitDevice<Memory: DeviceMemory>: @unchecked Sendable {
    public let queueIndex: UInt16
    public let layout: SplitLayout
    public let features: VirtioFeatures
    public var memory: Memory

    @usableFromInline let size: UInt16
    @usableFromInline let mask: UInt16
    @usableFromInline let queueSizeInt: Int
    @usableFromInline let descriptors: UnsafeMutableRawPointer
    @usableFromInline let available: UnsafeMutableRawPointer
    @usableFromInline let used: UnsafeMutableRawPointer
    @usableFromInline let usedEventOffset: Int
    @usableFromInline let availableEventOffset: Int
    @usableFromInline let eventIndex: Bool
    @usableFromInline let indirectNegotiated: Bool

    /// Segments of the last chain popped.
    @usableFromInline let scratch: UnsafeMutablePointer<Segment>
    @usableFromInline var scratchCount: Int = 0
    private let storage: HalfStorage

    @usableFromInline var lastAvailableIndex: UInt16
    /// Last avail.idx read (re-read only when every chain up to it is popped: DPDK's trick
    /// to keep the driver's cache line out of the device's way).
    @usableFromInline var availableIndexShadow: UInt16
    @usableFromInline var usedIndex: UInt16
    @usableFromInline var usedAtLastInterruptCheck: UInt16
    /// The first broken rule seen; the queue refuses to pop until reset.
    @usableFromInline var brokenCause: VirtqueueError?
    /// `brokenCause != nil`, as a plain flag the hot path can test without touching the enum.
    @usableFromInline var isBroken = false
    #if VQB_GATE_INJECT || VQB_GATE_INJECT_INSTRUCTIONS
    @usableFromInline var injectedLengthLimit: UInt32
    #endif
    /// The first broken rule seen, if any.
    public var brokenBy: VirtqueueError? { brokenCause }

    /// Attaches to a queue the driver set up at `addresses`, starting from `state`.
    public init(queue: UInt16 = 0, layout: SplitLayout, addresses: RingAddresses, memory: Memory,
                features: VirtioFeatures, state: SplitQueueState = .init()) throws(VirtqueueError) {
        try state.validate(queue: queue, queueSize: layout.queueSize)
        #if VQB_GATE_INJECT || VQB_GATE_INJECT_INSTRUCTIONS
        // A runtime value, so the check below cannot be folded away.
        injectedLengthLimit = UInt32(truncatingIfNeeded: layout.queueSize) | 0x8000_0000
        #endif
        self.queueIndex = queue
        self.layout = layout
        self.features = features
        self.memory = memory
        queueSizeInt = layout.queueSize
        size = UInt16(truncatingIfNeeded: layout.queueSize)
        mask = UInt16(layout.queueSize - 1)
        descriptors = try ringArea(&self.memory, addresses.descriptorArea, layout.descriptorTableSize,
                                   SplitLayout.descriptorTableAlignment, deviceWrites: false, "descriptor table", queue)
        available = try ringArea(&self.memory, addresses.driverArea, layout.availableRingSize,
                                 SplitLayout.availableRingAlignment, deviceWrites: false, "available ring", queue)
        used = try ringArea(&self.memory, addresses.deviceArea, layout.usedRingSize,
                            SplitLayout.usedRingAlignment, deviceWrites: true, "used ring", queue)
        usedEventOffset = layout.usedEventOffset
        availableEventOffset = layout.availableEventOffset
        eventIndex = features.contains(.eventIndex)
        indirectNegotiated = features.contains(.indirectDescriptors)
        storage = HalfStorage(bytes: MemoryLayout<Segment>.stride * layout.queueSize)
        scratch = storage.base.bindMemory(to: Segment.self, capacity: layout.queueSize)
        lastAvailableIndex = state.lastAvailableIndex
        availableIndexShadow = state.lastAvailableIndex
        usedIndex = state.usedIndex
        usedAtLastInterruptCheck = state.usedIndex
    }

    /// The segments of the chain returned by the last `pop()`.
    @inlinable
    public var segments: UnsafeBufferPointer<Segment> { UnsafeBufferPointer(start: scratch, count: scratchCount) }

    /// The device's position, for suspend / migration (vDPA get_vq_state).
    public var state: SplitQueueState {
        SplitQueueState(lastAvailableIndex: lastAvailableIndex, usedIndex: usedIndex)
    }

    // MARK: - Popping

    /// Whether the driver has published chains not yet popped.
    @inlinable
    public mutating func hasAvailable() -> Bool {
        if lastAvailableIndex != availableIndexShadow { return true }
        // acquire: pairs with the driver's release of avail.idx, so the ring entries and
        // descriptors it covers are visible before we read them.
        availableIndexShadow = available.loadAcquireLE16(SplitLayout.availableIndexOffset)
        return lastAvailableIndex != availableIndexShadow
    }

    /// Pops the next available chain, or nil when the ring is empty. Any broken rule marks
    /// the queue broken and is thrown; chains already completed stay completable.
    @inlinable
    public mutating func pop() throws(VirtqueueError) -> Chain? {
        if isBroken { throw .queueBroken(queue: queueIndex, cause: brokenCause!) }
        guard hasAvailable() else { return nil }
        do throws(VirtqueueError) {
            guard availableIndexShadow &- lastAvailableIndex <= size else {
                throw VirtqueueError.availableIndexJump(queue: queueIndex, lastSeen: lastAvailableIndex, published: availableIndexShadow)
            }
            let head = available.loadLE16(SplitLayout.availableEntryOffset(Int(lastAvailableIndex & mask)))
            let chain = try readChain(head: head)
            lastAvailableIndex &+= 1
            return chain
        } catch {
            brokenCause = error
            isBroken = true
            throw error
        }
    }

    @inlinable
    mutating func readChain(head: UInt16) throws(VirtqueueError) -> Chain {
        guard head < size else {
            throw .descriptorIndexOutOfRange(queue: queueIndex, index: UInt32(head), queueSize: queueSizeInt)
        }
        // Fast path: a chain of one direct descriptor (most packets), nothing to walk.
        let first = descriptors + Int(head) &* 16
        let firstFlags = first.loadLE16(12)
        if firstFlags & (DescriptorFlags.next | DescriptorFlags.indirect) == 0 {
            let address = first.loadLE64(0)
            let length = first.loadLE32(8)
            let writable = firstFlags & DescriptorFlags.write != 0
            var host: UnsafeMutableRawPointer? = nil
            if length != 0 {
                do {
                    host = try memory.translate(address, length: length, deviceWrites: writable)
                } catch {
                    throw .bufferOutsideMemory(queue: queueIndex, head: head, gpa: address, length: length, cause: error)
                }
            }
            #if VQB_GATE_INJECT || VQB_GATE_INJECT_INSTRUCTIONS
            // An extra bounds check against a field the optimiser cannot see through: ~+2 %.
        if length > injectedLengthLimit { throw .chainTooLong(queue: queueIndex, head: head) }
            #endif
            scratch[0] = Segment(host: host, address: address, length: length, isWritable: writable)
            scratchCount = 1
            return Chain(id: head, ringDescriptors: 1, segmentCount: 1, readableCount: writable ? 0 : 1,
                         readableBytes: writable ? 0 : length, writableBytes: writable ? length : 0, isIndirect: false)
        }
        return try readLongChain(head: head)
    }

    @inlinable
    mutating func readLongChain(head: UInt16) throws(VirtqueueError) -> Chain {
        var walk = ChainWalk(head: head)
        var index = head
        while true {
            walk.ringDescriptors &+= 1
            guard walk.ringDescriptors <= queueSizeInt else {
                throw .chainLoop(queue: queueIndex, head: head, length: queueSizeInt)
            }
            let d = descriptors + Int(index) &* 16
            let address = d.loadLE64(0)
            let length = d.loadLE32(8)
            let flags = d.loadLE16(12)
            if flags & DescriptorFlags.indirect != 0 {
                guard indirectNegotiated else { throw .indirectNotNegotiated(queue: queueIndex, head: head) }
                guard flags & DescriptorFlags.next == 0 else { throw .indirectWithNext(queue: queueIndex, head: head) }
                try readIndirectTable(address: address, length: length, walk: &walk)
                break
            }
            try addSegment(address: address, length: length, writable: flags & DescriptorFlags.write != 0, walk: &walk)
            guard flags & DescriptorFlags.next != 0 else { break }
            index = d.loadLE16(14)
            guard index < size else {
                throw .descriptorIndexOutOfRange(queue: queueIndex, index: UInt32(index), queueSize: queueSizeInt)
            }
        }
        scratchCount = walk.segments
        return walk.chain(id: head)
    }

    /// §2.7.5.3: a table of len/16 descriptors, chained by `next` inside the table, no nesting.
    @inlinable
    mutating func readIndirectTable(address: UInt64, length: UInt32, walk: inout ChainWalk) throws(VirtqueueError) {
        let head = walk.head
        let table = try walk.indirectTable(address: address, length: length, memory: &memory, queue: queueIndex)
        let entries = Int(length / 16)
        var i = 0
        var visited = 0
        while true {
            visited &+= 1
            guard visited <= entries else { throw .chainLoop(queue: queueIndex, head: head, length: entries) }
            let d = table + i &* 16
            let flags = d.loadLE16(12)
            guard flags & DescriptorFlags.indirect == 0 else { throw .nestedIndirect(queue: queueIndex, head: head) }
            try addSegment(address: d.loadLE64(0), length: d.loadLE32(8),
                           writable: flags & DescriptorFlags.write != 0, walk: &walk)
            guard flags & DescriptorFlags.next != 0 else { return }
            let successor = Int(d.loadLE16(14))
            guard successor < entries else {
                throw .descriptorIndexOutOfRange(queue: queueIndex, index: UInt32(successor), queueSize: entries)
            }
            i = successor
        }
    }

    @inlinable @inline(__always)
    mutating func addSegment(address: UInt64, length: UInt32, writable: Bool, walk: inout ChainWalk) throws(VirtqueueError) {
        try walk.add(address: address, length: length, writable: writable, memory: &memory, into: scratch,
                     queue: queueIndex, queueSize: queueSizeInt)
    }

    // MARK: - Used ring

    /// Writes one used entry (not yet visible: `publishUsed()` makes a batch visible).
    @inlinable
    public mutating func pushUsed(id: UInt16, length: UInt32) {
        let entry = used + SplitLayout.usedEntryOffset(Int(usedIndex & mask))
        entry.storeLE32(UInt32(id), 0)
        entry.storeLE32(length, 4)
        usedIndex &+= 1
    }

    /// IN_ORDER (§2.7.8): `count` buffers used in order, reported by one entry — in the slot
    /// of the last of them, with its id — and used.idx advanced by `count`.
    @inlinable
    public mutating func pushUsedInOrder(lastId: UInt16, length: UInt32, count: UInt16) {
        guard count > 0 else { return }
        let entry = used + SplitLayout.usedEntryOffset(Int((usedIndex &+ count &- 1) & mask))
        entry.storeLE32(UInt32(lastId), 0)
        entry.storeLE32(length, 4)
        usedIndex &+= count
    }

    /// Publishes every used entry written so far: one release store of used.idx.
    @inlinable
    public mutating func publishUsed() {
        // release: the used entries (and the bytes written into buffers) are visible no
        // later than the index; pairs with the driver's acquire load of used.idx.
        used.storeReleaseLE16(usedIndex, SplitLayout.usedIndexOffset)
    }

    // MARK: - Notification decisions (§2.7.7, §2.7.10)

    /// Whether the driver wants an interrupt for the used entries published since the last
    /// decision. Pure decision: the caller rings the doorbell.
    @inlinable
    public mutating func interruptNeeded() -> Bool {
        // Full fence: used.idx must be visible before we read the driver's suppression
        // field, or a driver that just enabled interrupts is never woken (store → load).
        fullFence()
        let new = usedIndex
        let old = usedAtLastInterruptCheck
        usedAtLastInterruptCheck = new
        guard new != old else { return false }
        if eventIndex {
            return needsEvent(event: available.loadRelaxedLE16(usedEventOffset), new: new, old: old)
        }
        return available.loadRelaxedLE16(SplitLayout.availableFlagsOffset) & SplitRingFlags.noInterrupt == 0
    }

    /// Asks the driver to kick on its next chain, then re-checks the ring. Returns true when
    /// chains are already available (do not sleep: pop them).
    @inlinable
    public mutating func enableKicks() -> Bool {
        if eventIndex {
            // avail_event = the next index we will read: kick when the driver publishes it.
            used.storeRelaxedLE16(lastAvailableIndex, availableEventOffset)
        } else {
            used.storeRelaxedLE16(0, SplitLayout.usedFlagsOffset)
        }
        // Full fence: "kick me" must be visible before we re-read avail.idx (store → load),
        // or a chain published in between is neither seen nor kicked.
        fullFence()
        return hasAvailable()
    }

    /// Tells the driver kicks are not needed while we poll (a hint, §2.7.10).
    @inlinable
    public mutating func disableKicks() {
        if !eventIndex {
            used.storeRelaxedLE16(SplitRingFlags.noNotify, SplitLayout.usedFlagsOffset)
        }
    }

    /// RING_RESET / device reset of this queue: back to the initial state, not broken.
    public mutating func reset(to state: SplitQueueState = .init()) throws(VirtqueueError) {
        try state.validate(queue: queueIndex, queueSize: queueSizeInt)
        lastAvailableIndex = state.lastAvailableIndex
        availableIndexShadow = state.lastAvailableIndex
        usedIndex = state.usedIndex
        usedAtLastInterruptCheck = state.usedIndex
        scratchCount = 0
        brokenCause = nil
        isBroken = false
    }
}
