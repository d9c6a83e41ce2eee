// The device half of a packed virtqueue (virtio 1.2 §2.8): reads available descriptors by
// their AVAIL/USED bits and its wrap counter, validates every byte, writes one used
// descriptor per chain (batches published by one release store) and decides whether to
// interrupt. Owned by one thread; shares only ring memory.

import Atomics
import VirtioMemory

/// Device half of a packed ring, generic over how it reaches memory.
public struct PackedDevice<Memory: DeviceMemory>: @unchecked Sendable {
    public let queueIndex: UInt16
    public let layout: PackedLayout
    public let features: VirtioFeatures
    public var memory: Memory

    @usableFromInline let size: UInt16
    @usableFromInline let queueSizeInt: Int
    @usableFromInline let descriptors: UnsafeMutableRawPointer
    /// Driver event suppression: we read it (interrupt decision).
    @usableFromInline let driverEvent: UnsafeMutableRawPointer
    /// Device event suppression: we write it (kick suppression).
    @usableFromInline let deviceEvent: UnsafeMutableRawPointer
    @usableFromInline let eventIndex: Bool
    @usableFromInline let indirectNegotiated: Bool

    @usableFromInline let scratch: UnsafeMutablePointer<Segment>
    @usableFromInline var scratchCount: Int = 0
    private let storage: HalfStorage

    @usableFromInline var nextAvailable: UInt16
    @usableFromInline var availableWrap: Bool
    @usableFromInline var nextUsed: UInt16
    @usableFromInline var usedWrap: Bool
    /// Ring descriptors marked used since the last interrupt decision.
    @usableFromInline var usedSinceInterruptCheck: UInt16 = 0
    /// The first used descriptor of the batch not yet published (-1: none) and its flags.
    @usableFromInline var pendingUsed: Int = -1
    @usableFromInline var pendingUsedFlags: UInt16 = 0
    @usableFromInline var brokenCause: VirtqueueError?
    @usableFromInline var isBroken = false
    #if VQB_GATE_INJECT || VQB_GATE_INJECT_INSTRUCTIONS
    @usableFromInline var injectedLengthLimit: UInt32
    #endif

    public init(queue: UInt16 = 0, layout: PackedLayout, addresses: RingAddresses, memory: Memory,
                features: VirtioFeatures, state: PackedQueueState = .init()) throws(VirtqueueError) {
        try state.validate(queue: queue, queueSize: layout.queueSize)
        #if VQB_GATE_INJECT || VQB_GATE_INJECT_INSTRUCTIONS
        // A runtime value, so the check below cannot be folded away.
        injectedLengthLimit = UInt32(truncatingIfNeeded: layout.queueSize) | 0x8000_0000
        #endif
        self.queueIndex = queue
        self.layout = layout
        self.features = features
        self.memory = memory
        size = UInt16(truncatingIfNeeded: layout.queueSize)
        queueSizeInt = layout.queueSize
        descriptors = try ringArea(&self.memory, addresses.descriptorArea, layout.descriptorRingSize,
                                 PackedLayout.descriptorRingAlignment, deviceWrites: true, "descriptor ring", queue)
        driverEvent = try ringArea(&self.memory, addresses.driverArea, PackedLayout.eventSuppressionSize,
                                 PackedLayout.eventSuppressionAlignment, deviceWrites: false, "driver event suppression", queue)
        deviceEvent = try ringArea(&self.memory, addresses.deviceArea, PackedLayout.eventSuppressionSize,
                                 PackedLayout.eventSuppressionAlignment, deviceWrites: true, "device event suppression", queue)
        eventIndex = features.contains(.eventIndex)
        indirectNegotiated = features.contains(.indirectDescriptors)
        storage = HalfStorage(bytes: MemoryLayout<Segment>.stride * layout.queueSize)
        scratch = storage.base.bindMemory(to: Segment.self, capacity: layout.queueSize)
        nextAvailable = state.lastAvailableIndex
        availableWrap = state.availableWrapCounter
        nextUsed = state.usedIndex
        usedWrap = state.usedWrapCounter
    }

    public var brokenBy: VirtqueueError? { brokenCause }

    @inlinable
    public var segments: UnsafeBufferPointer<Segment> { UnsafeBufferPointer(start: scratch, count: scratchCount) }

    /// The device's position (vDPA get_vq_state, packed). Publish pending used entries first.
    public var state: PackedQueueState {
        PackedQueueState(lastAvailableIndex: nextAvailable, availableWrapCounter: availableWrap,
                         usedIndex: nextUsed, usedWrapCounter: usedWrap)
    }

    // MARK: - Popping

    /// The three AVAIL/USED states a descriptor at the device's available position can be in.
    @usableFromInline enum SlotState { case available, notYet, impossible }

    @inlinable @inline(__always)
    static func classify(_ flags: UInt16, wrap: Bool) -> SlotState {
        let avail = flags & DescriptorFlags.available != 0
        let used = flags & DescriptorFlags.used != 0
        if avail == wrap && used != wrap { return .available }
        // AVAIL == USED == wrap would be a descriptor used in this lap ahead of the device:
        // only a driver can have written it, and no driver writes AVAIL == USED.
        if avail == wrap && used == wrap { return .impossible }
        // Used in the previous lap, or a chain member left from it: not available yet.
        return .notYet
    }

    @inlinable
    public func hasAvailable() -> Bool {
        // acquire: pairs with the driver's release of the head flags, so the chain is visible.
        let flags = (descriptors + Int(nextAvailable) &* 16).loadAcquireLE16(PackedLayout.flagsOffset)
        return Self.classify(flags, wrap: availableWrap) == .available
    }

    @inlinable
    public mutating func pop() throws(VirtqueueError) -> Chain? {
        if isBroken { throw .queueBroken(queue: queueIndex, cause: brokenCause!) }
        // acquire: pairs with the driver's release of the head flags (§2.8.21.3).
        let flags = (descriptors + Int(nextAvailable) &* 16).loadAcquireLE16(PackedLayout.flagsOffset)
        switch Self.classify(flags, wrap: availableWrap) {
        case .notYet: return nil
        case .impossible:
            let error = VirtqueueError.impossiblePackedFlags(queue: queueIndex, index: nextAvailable, flags: flags, wrapCounter: availableWrap)
            brokenCause = error
            isBroken = true
            throw error
        case .available:
            do throws(VirtqueueError) {
                if flags & (DescriptorFlags.next | DescriptorFlags.indirect) == 0 {
                    return try readSingle(flags: flags)
                }
                return try readChain(headFlags: flags)
            } catch {
                brokenCause = error
                isBroken = true
                throw error
            }
        }
    }

    /// Fast path: a chain of one direct descriptor.
    @inlinable @inline(__always)
    mutating func readSingle(flags: UInt16) throws(VirtqueueError) -> Chain {
        let d = descriptors + Int(nextAvailable) &* 16
        let address = d.loadLE64(0)
        let length = d.loadLE32(8)
        let id = d.loadLE16(12)
        let writable = flags & DescriptorFlags.write != 0
        var host: UnsafeMutableRawPointer? = nil
        if length != 0 {
            do {
                host = try memory.translate(address, length: length, deviceWrites: writable)
            } catch {
                throw .bufferOutsideMemory(queue: queueIndex, head: nextAvailable, gpa: address, length: length, cause: error)
            }
        }
        #if VQB_GATE_INJECT || VQB_GATE_INJECT_INSTRUCTIONS
        // An extra bounds check against a field the optimiser cannot see through: ~+2 %.
        if length > injectedLengthLimit { throw .chainTooLong(queue: queueIndex, head: nextAvailable) }
        #endif
        scratch[0] = Segment(host: host, address: address, length: length, isWritable: writable)
        scratchCount = 1
        nextAvailable &+= 1
        if nextAvailable == size {
            nextAvailable = 0
            availableWrap.toggle()
        }
        return Chain(id: id, ringDescriptors: 1, segmentCount: 1, readableCount: writable ? 0 : 1,
                     readableBytes: writable ? 0 : length, writableBytes: writable ? length : 0, isIndirect: false)
    }

    @inlinable
    mutating func readChain(headFlags: UInt16) throws(VirtqueueError) -> Chain {
        let headPosition = nextAvailable
        var walk = ChainWalk(head: headPosition)
        var position = nextAvailable
        var wrap = availableWrap
        var flags = headFlags
        var id: UInt16 = 0
        while true {
            walk.ringDescriptors &+= 1
            guard walk.ringDescriptors <= queueSizeInt else {
                throw .chainLoop(queue: queueIndex, head: headPosition, length: queueSizeInt)
            }
            let d = descriptors + Int(position) &* 16
            if walk.ringDescriptors > 1 {
                flags = d.loadRelaxedLE16(PackedLayout.flagsOffset)
                // Every member of a chain is made available before its head: anything else
                // is a broken chain.
                guard Self.classify(flags, wrap: wrap) == .available else {
                    throw .impossiblePackedFlags(queue: queueIndex, index: position, flags: flags, wrapCounter: wrap)
                }
            }
            let address = d.loadLE64(0)
            let length = d.loadLE32(8)
            id = d.loadLE16(12)
            position &+= 1
            if position == size {
                position = 0
                wrap.toggle()
            }
            if flags & DescriptorFlags.indirect != 0 {
                guard indirectNegotiated else { throw .indirectNotNegotiated(queue: queueIndex, head: headPosition) }
                guard flags & DescriptorFlags.next == 0 else { throw .indirectWithNext(queue: queueIndex, head: headPosition) }
                try readIndirectTable(address: address, length: length, walk: &walk)
                break
            }
            try addSegment(address: address, length: length, writable: flags & DescriptorFlags.write != 0, walk: &walk)
            if flags & DescriptorFlags.next == 0 { break }
        }
        nextAvailable = position
        availableWrap = wrap
        scratchCount = walk.segments
        return walk.chain(id: id)
    }

    /// §2.8.19: an indirect table of len/16 packed descriptors, read in order, no nesting.
    @inlinable
    mutating func readIndirectTable(address: UInt64, length: UInt32, walk: inout ChainWalk) throws(VirtqueueError) {
        let head = walk.head
        let table = try walk.indirectTable(address: address, length: length, memory: &memory, queue: queueIndex)
        for i in 0..<Int(length / 16) {
            let d = table + i &* 16
            let flags = d.loadLE16(14)
            guard flags & DescriptorFlags.indirect == 0 else { throw .nestedIndirect(queue: queueIndex, head: head) }
            try addSegment(address: d.loadLE64(0), length: d.loadLE32(8),
                           writable: flags & DescriptorFlags.write != 0, walk: &walk)
        }
    }

    @inlinable @inline(__always)
    mutating func addSegment(address: UInt64, length: UInt32, writable: Bool, walk: inout ChainWalk) throws(VirtqueueError) {
        try walk.add(address: address, length: length, writable: writable, memory: &memory, into: scratch,
                     queue: queueIndex, queueSize: queueSizeInt)
    }

    // MARK: - Used descriptors

    /// Marks a chain used: one used descriptor at our used position, then skip the chain's
    /// ring descriptors (§2.8.7). Not visible until `publishUsed()`.
    @inlinable
    public mutating func pushUsed(id: UInt16, length: UInt32, ringDescriptors: UInt16) {
        let position = nextUsed
        let d = descriptors + Int(position) &* 16
        d.storeLE32(length, 8)
        d.storeLE16(id, 12)
        let flags: UInt16 = usedWrap ? DescriptorFlags.available | DescriptorFlags.used : 0
        if pendingUsed < 0 {
            pendingUsed = Int(position)
            pendingUsedFlags = flags
        } else {
            // The driver reads used descriptors in order and stops at the batch's first,
            // so the rest can be marked now; the first is published last.
            d.storeRelaxedLE16(flags, PackedLayout.flagsOffset)
        }
        nextUsed &+= ringDescriptors
        if nextUsed >= size {
            nextUsed &-= size
            usedWrap.toggle()
        }
        usedSinceInterruptCheck &+= ringDescriptors
    }

    /// IN_ORDER (§2.8.9): one used descriptor, with the last buffer's id, for a batch whose
    /// chains occupy `ringDescriptors` slots in total.
    @inlinable
    public mutating func pushUsedInOrder(lastId: UInt16, length: UInt32, ringDescriptors: UInt16) {
        pushUsed(id: lastId, length: length, ringDescriptors: ringDescriptors)
    }

    /// Publishes the batch: one release store of its first used descriptor's flags.
    @inlinable
    public mutating func publishUsed() {
        guard pendingUsed >= 0 else { return }
        // release: ids, lengths, written buffers and the batch's other used descriptors are
        // visible no later than these flags; pairs with the driver's acquire load.
        (descriptors + pendingUsed &* 16).storeReleaseLE16(pendingUsedFlags, PackedLayout.flagsOffset)
        pendingUsed = -1
    }

    // MARK: - Notification decisions (§2.8.10)

    @inlinable
    public mutating func interruptNeeded() -> Bool {
        // Full fence: the used flags must be visible before we read the driver's event
        // suppression (store → load), or a driver that just asked is never woken.
        fullFence()
        let new = nextUsed
        let old = new &- usedSinceInterruptCheck
        guard usedSinceInterruptCheck != 0 else { return false }
        usedSinceInterruptCheck = 0
        // acquire: pairs with the driver's release of flags after it wrote off_wrap.
        let flags = driverEvent.loadAcquireLE16(PackedLayout.eventFlagsOffset)
        if flags == PackedEventFlags.disable { return false }
        guard flags == PackedEventFlags.descriptor, eventIndex else { return true }
        let offWrap = driverEvent.loadRelaxedLE16(PackedLayout.eventOffsetWrapOffset)
        var event = offWrap & 0x7FFF
        if (offWrap >> 15 != 0) != usedWrap { event &-= size }
        return needsEvent(event: event, new: new, old: old)
    }

    /// Asks the driver to kick for its next chain, then re-checks. True: chains are pending.
    @inlinable
    public mutating func enableKicks() -> Bool {
        if eventIndex {
            let offWrap = nextAvailable | (availableWrap ? 0x8000 : 0)
            deviceEvent.storeRelaxedLE16(offWrap, PackedLayout.eventOffsetWrapOffset)
            // release: off_wrap is visible before the flags that make the driver read it.
            deviceEvent.storeReleaseLE16(PackedEventFlags.descriptor, PackedLayout.eventFlagsOffset)
        } else {
            deviceEvent.storeRelaxedLE16(PackedEventFlags.enable, PackedLayout.eventFlagsOffset)
        }
        // Full fence: "kick me" must be visible before the re-check (store → load).
        fullFence()
        return hasAvailable()
    }

    @inlinable
    public mutating func disableKicks() {
        deviceEvent.storeRelaxedLE16(PackedEventFlags.disable, PackedLayout.eventFlagsOffset)
    }

    /// RING_RESET / device reset of this queue.
    public mutating func reset(to state: PackedQueueState = .init()) throws(VirtqueueError) {
        try state.validate(queue: queueIndex, queueSize: queueSizeInt)
        nextAvailable = state.lastAvailableIndex
        availableWrap = state.availableWrapCounter
        nextUsed = state.usedIndex
        usedWrap = state.usedWrapCounter
        usedSinceInterruptCheck = 0
        pendingUsed = -1
        scratchCount = 0
        brokenCause = nil
        isBroken = false
    }
}
