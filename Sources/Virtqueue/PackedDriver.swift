// The driver half of a packed virtqueue (virtio 1.2 §2.8.21–§2.8.22): writes chains into
// the descriptor ring with AVAIL/USED bits from its wrap counter, head flags last, decides
// whether to kick and reclaims used descriptors. Owned by one thread; shares only ring memory.

import Atomics
import VirtioMemory

/// Driver half of a packed ring. A value type: the thread that drives the queue owns it.
public struct PackedDriver: @unchecked Sendable {
    public let queueIndex: UInt16
    public let layout: PackedLayout
    public let features: VirtioFeatures
    public let addresses: RingAddresses

    @usableFromInline let size: UInt16
    @usableFromInline let descriptors: UnsafeMutableRawPointer
    /// Driver event suppression: we write it (interrupt suppression).
    @usableFromInline let driverEvent: UnsafeMutableRawPointer
    /// Device event suppression: we read it (kick suppression).
    @usableFromInline let deviceEvent: UnsafeMutableRawPointer
    @usableFromInline let eventIndex: Bool
    @usableFromInline let inOrder: Bool

    // Private bookkeeping, per buffer id.
    /// Per buffer id: ring descriptors of its chain (low 16 bits; 0 when not in flight)
    /// and its device-writable bytes (high 32), one word touched once per post and reclaim.
    @usableFromInline let chainMeta: UnsafeMutablePointer<UInt64>
    /// Stack of free buffer ids.
    @usableFromInline let freeIds: UnsafeMutablePointer<UInt16>
    private let storage: HalfStorage

    @usableFromInline var freeIdCount: Int
    @usableFromInline var freeCount: Int
    @usableFromInline var inFlightCount: Int = 0
    @usableFromInline var nextAvailable: UInt16 = 0
    /// §2.8.1: both wrap counters start at 1.
    @usableFromInline var availableWrap = true
    @usableFromInline var nextUsed: UInt16 = 0
    @usableFromInline var usedWrap = true
    /// Ring descriptors made available since the last kick decision.
    @usableFromInline var addedSinceKickCheck: UInt16 = 0
    #if VQB_GATE_INJECT || VQB_GATE_INJECT_KICK
    @usableFromInline var injectedPosted = 0
    #endif
    /// The first head of the batch not yet published: its position and flags (-1: none).
    @usableFromInline var pendingHead: Int = -1
    @usableFromInline var pendingHeadFlags: UInt16 = 0
    /// IN_ORDER: ids are handed out in turn; the oldest in flight.
    @usableFromInline var inOrderNextId: UInt16 = 0
    @usableFromInline var inOrderOldestId: UInt16 = 0

    @usableFromInline let indirectHost: UnsafeMutableRawPointer?
    @usableFromInline let indirectGPA: UInt64
    @usableFromInline let indirectEntries: Int

    public init(queue: UInt16 = 0, layout: PackedLayout, addresses: RingAddresses, memory: GuestMemory,
                features: VirtioFeatures, indirectPool: IndirectPool? = nil) throws(VirtqueueError) {
        self.queueIndex = queue
        self.layout = layout
        self.features = features
        self.addresses = addresses
        var guest = memory
        let n = layout.queueSize
        size = UInt16(truncatingIfNeeded: n)
        descriptors = try ringArea(&guest, addresses.descriptorArea, layout.descriptorRingSize,
                                           PackedLayout.descriptorRingAlignment, deviceWrites: false, "descriptor ring", queue)
        driverEvent = try ringArea(&guest, addresses.driverArea, PackedLayout.eventSuppressionSize,
                                           PackedLayout.eventSuppressionAlignment, deviceWrites: false, "driver event suppression", queue)
        deviceEvent = try ringArea(&guest, addresses.deviceArea, PackedLayout.eventSuppressionSize,
                                           PackedLayout.eventSuppressionAlignment, deviceWrites: false, "device event suppression", queue)
        eventIndex = features.contains(.eventIndex)
        inOrder = features.contains(.inOrder)
        freeCount = n
        freeIdCount = n
        storage = HalfStorage(bytes: n * (8 + 2))
        chainMeta = storage.base.bindMemory(to: UInt64.self, capacity: n)
        freeIds = (storage.base + 8 * n).bindMemory(to: UInt16.self, capacity: n)
        for i in 0..<n { freeIds[i] = UInt16(truncatingIfNeeded: n - 1 - i) }
        (indirectHost, indirectGPA, indirectEntries) =
            try attachIndirectPool(indirectPool, features: features, memory: &guest, queueSize: n, queue: queue)
        descriptors.initializeMemory(as: UInt8.self, repeating: 0, count: layout.descriptorRingSize)
        driverEvent.initializeMemory(as: UInt8.self, repeating: 0, count: PackedLayout.eventSuppressionSize)
        deviceEvent.initializeMemory(as: UInt8.self, repeating: 0, count: PackedLayout.eventSuppressionSize)
    }

    public var queueSize: Int { layout.queueSize }
    public var freeDescriptors: Int { freeCount }
    public var buffersInFlight: Int { inFlightCount }

    /// AVAIL = wrap counter, USED = its inverse (§2.8.1): "available in this lap".
    @inlinable @inline(__always)
    static func availableBits(_ wrap: Bool) -> UInt16 {
        wrap ? DescriptorFlags.available : DescriptorFlags.used
    }

    // MARK: - Posting

    /// The burst itself: position, wrap counter, free-id stack and counters stay in
    /// registers and are written back once. Each descriptor is two stores (address; len,
    /// id and flags together), except the first head of an unpublished batch, whose flags
    /// wait for `publish()`. `posted(i, id)` is told each chain's buffer id.
    @inlinable @inline(__always)
    public mutating func postBurst(count: Int, _ buffer: (Int) -> Buffer, posted: (Int, UInt16) -> Void) -> Int {
        let n = min(count, freeCount)
        guard n > 0 else { return 0 }
        let ring = descriptors
        let meta = chainMeta
        let stack = freeIds
        var position = nextAvailable
        var wrap = availableWrap
        var bits = Self.availableBits(wrap)
        var freeTop = freeIdCount
        var ordered = inOrderNextId
        var i = 0
        if pendingHead < 0 {
            // The batch's first head: everything but its flags now.
            let b = buffer(0)
            let id = takeBurstId(&freeTop, &ordered, stack)
            let d = ring + Int(position) &* 16
            d.storeLE64(b.address, 0)
            d.storeLE32(b.length, 8)
            d.storeLE16(id, 12)
            pendingHead = Int(position)
            pendingHeadFlags = (b.isWritable ? DescriptorFlags.write : 0) | bits
            meta[Int(id)] = (b.isWritable ? UInt64(b.length) &<< 32 : 0) | 1
            posted(0, id)
            position &+= 1
            if position == size { position = 0; wrap.toggle(); bits = Self.availableBits(wrap) }
            i = 1
        }
        // The rest in runs that end at the ring's end (the wrap is checked once a run), and
        // with the id source chosen once: the loop body is two stores and the bookkeeping.
        @inline(__always) func write(_ i: Int, _ id: UInt16, _ d: UnsafeMutableRawPointer, _ bits: UInt16) {
            let b = buffer(i)
            d.storeLE64(b.address, 0)
            // len | id << 32 | flags << 48: the device reads this slot only after the batch's
            // first head flags (released in publish()), so one plain store is enough.
            let flags = (b.isWritable ? DescriptorFlags.write : 0) | bits
            d.storeLE64(UInt64(b.length) | UInt64(id) &<< 32 | UInt64(flags) &<< 48, 8)
            meta[Int(id)] = (b.isWritable ? UInt64(b.length) &<< 32 : 0) | 1
            posted(i, id)
        }
        while i < n {
            let run = min(n &- i, Int(size &- position))
            let d = ring + Int(position) &* 16
            if inOrder {
                for k in 0..<run {
                    write(i &+ k, ordered, d + k &* 16, bits)
                    ordered = ordered &+ 1 == size ? 0 : ordered &+ 1
                }
            } else {
                // The stack is read downwards from its top by one pointer.
                var top = stack + freeTop
                for k in 0..<run {
                    top -= 1
                    write(i &+ k, top.pointee, d + k &* 16, bits)
                }
            }
            freeTop &-= run
            i &+= run
            position &+= UInt16(truncatingIfNeeded: run)
            if position == size { position = 0; wrap.toggle(); bits = Self.availableBits(wrap) }
        }
        nextAvailable = position
        availableWrap = wrap
        freeIdCount = freeTop
        inOrderNextId = ordered
        freeCount &-= n
        inFlightCount &+= n
        addedSinceKickCheck &+= UInt16(truncatingIfNeeded: n)
        return n
    }

    @inlinable @inline(__always)
    func takeBurstId(_ freeTop: inout Int, _ ordered: inout UInt16, _ stack: UnsafeMutablePointer<UInt16>) -> UInt16 {
        freeTop &-= 1
        if inOrder {
            let id = ordered
            ordered = ordered &+ 1 == size ? 0 : ordered &+ 1
            return id
        }
        return stack[freeTop]
    }

    /// Posts a chain of buffers, device-readable first; the id goes in every descriptor
    /// (the device reads it from the last), the head's flags are written last.
    @inlinable
    public mutating func post(_ buffers: UnsafeBufferPointer<Buffer>) throws(VirtqueueError) -> UInt16 {
        let count = buffers.count
        try validateChain(buffers, queue: queueIndex)
        guard count <= freeCount else { throw .queueFull(queue: queueIndex, needed: count, free: freeCount) }
        let id = takeId()
        let headPosition = nextAvailable
        var headFlags: UInt16 = 0
        var writable: UInt32 = 0
        for i in 0..<count {
            let b = buffers[i]
            var flags: UInt16 = (b.isWritable ? DescriptorFlags.write : 0) | Self.availableBits(availableWrap)
            if i != count &- 1 { flags |= DescriptorFlags.next }
            if b.isWritable { writable &+= b.length }
            let d = descriptors + Int(nextAvailable) &* 16
            d.storeLE64(b.address, 0)
            d.storeLE32(b.length, 8)
            d.storeLE16(id, 12)
            if i == 0 { headFlags = flags } else { d.storeRelaxedLE16(flags, PackedLayout.flagsOffset) }
            advanceAvailable(by: 1)
        }
        writeHeadFlags(position: headPosition, flags: headFlags)
        return addChain(id: id, descriptors: UInt16(truncatingIfNeeded: count), writable: writable)
    }

    /// Posts a chain through one indirect table (§2.8.19): one ring descriptor.
    @inlinable
    public mutating func postIndirect(_ buffers: UnsafeBufferPointer<Buffer>) throws(VirtqueueError) -> UInt16 {
        guard let table = indirectHost else { throw .indirectUnavailable(queue: queueIndex) }
        try validateChain(buffers, queue: queueIndex)
        guard buffers.count <= indirectEntries else {
            throw .invalidChain(queue: queueIndex, reason: "\(buffers.count) buffers exceed the indirect table of \(indirectEntries)")
        }
        guard freeCount > 0 else { throw .queueFull(queue: queueIndex, needed: 1, free: 0) }
        let id = takeId()
        let tableHost = table + Int(id) &* indirectEntries &* 16
        var writable: UInt32 = 0
        for i in 0..<buffers.count {
            let b = buffers[i]
            if b.isWritable { writable &+= b.length }
            let e = tableHost + i &* 16
            e.storeLE64(b.address, 0)
            e.storeLE32(b.length, 8)
            e.storeLE16(0, 12)
            e.storeLE16(b.isWritable ? DescriptorFlags.write : 0, 14)
        }
        let position = nextAvailable
        let d = descriptors + Int(position) &* 16
        d.storeLE64(indirectGPA &+ UInt64(Int(id) &* indirectEntries &* 16), 0)
        d.storeLE32(UInt32(buffers.count &* 16), 8)
        d.storeLE16(id, 12)
        let flags = DescriptorFlags.indirect | Self.availableBits(availableWrap)
        advanceAvailable(by: 1)
        writeHeadFlags(position: position, flags: flags)
        return addChain(id: id, descriptors: 1, writable: writable)
    }

    @inlinable @inline(__always)
    mutating func takeId() -> UInt16 {
        if inOrder {
            let id = inOrderNextId
            inOrderNextId = inOrderNextId &+ 1 == size ? 0 : inOrderNextId &+ 1
            freeIdCount &-= 1
            return id
        }
        freeIdCount &-= 1
        return freeIds[freeIdCount]
    }

    @inlinable @inline(__always)
    mutating func advanceAvailable(by n: UInt16) {
        nextAvailable &+= n
        if nextAvailable >= size {
            nextAvailable &-= size
            availableWrap.toggle()
        }
    }

    /// The first head of a batch is held back until `publish()`; later heads in the batch
    /// can be stored now, since the device reads the ring in order and stops at the first.
    @inlinable @inline(__always)
    mutating func writeHeadFlags(position: UInt16, flags: UInt16) {
        if pendingHead < 0 {
            pendingHead = Int(position)
            pendingHeadFlags = flags
        } else {
            (descriptors + Int(position) &* 16).storeRelaxedLE16(flags, PackedLayout.flagsOffset)
        }
    }

    @inlinable @inline(__always)
    mutating func addChain(id: UInt16, descriptors count: UInt16, writable: UInt32) -> UInt16 {
        chainMeta[Int(id)] = UInt64(writable) &<< 32 | UInt64(count)
        freeCount &-= Int(count)
        inFlightCount &+= 1
        addedSinceKickCheck &+= count
        return id
    }

    /// Makes every chain posted so far visible: one release store of the batch's first head flags.
    @inlinable
    public mutating func publish() {
        #if VQB_GATE_INJECT || VQB_GATE_INJECT_MALLOC
        gateInjectedAllocation()
        #endif
        guard pendingHead >= 0 else { return }
        // release: every descriptor of the batch is visible no later than the first head's
        // flags; pairs with the device's acquire load of those flags (§2.8.21.3).
        (descriptors + pendingHead &* 16).storeReleaseLE16(pendingHeadFlags, PackedLayout.flagsOffset)
        pendingHead = -1
    }

    // MARK: - Kick decision (§2.8.10, §2.8.21.3.1)

    @inlinable
    public mutating func kickNeeded() -> Bool {
        // Full fence: the published flags must be visible before we read the device's
        // event suppression (store → load), or a device going to sleep is never kicked.
        fullFence()
        let new = nextAvailable
        let old = new &- addedSinceKickCheck
        addedSinceKickCheck = 0
        #if VQB_GATE_INJECT || VQB_GATE_INJECT_KICK
        // One extra kick per 1000 descriptors made available.
        let before = injectedPosted / 1000
        injectedPosted &+= Int(new &- old)
        if injectedPosted / 1000 != before { return true }
        #endif
        // acquire: pairs with the device's release of flags after writing off_wrap.
        let flags = deviceEvent.loadAcquireLE16(PackedLayout.eventFlagsOffset)
        if flags == PackedEventFlags.disable { return false }
        guard flags == PackedEventFlags.descriptor, eventIndex else { return true }
        let offWrap = deviceEvent.loadRelaxedLE16(PackedLayout.eventOffsetWrapOffset)
        var event = offWrap & 0x7FFF
        if (offWrap >> 15 != 0) != availableWrap { event &-= size }
        return needsEvent(event: event, new: new, old: old)
    }

    @inlinable
    public var notificationData: NotificationData {
        NotificationData(queue: queueIndex, packedNextOffset: nextAvailable, wrapCounter: availableWrap)
    }

    // MARK: - Reclaiming

    /// Whether the descriptor at our used position has been used by the device.
    @inlinable
    public func hasUsed() -> Bool {
        // acquire: pairs with the device's release of the used flags, so id and len are visible.
        let flags = (descriptors + Int(nextUsed) &* 16).loadAcquireLE16(PackedLayout.flagsOffset)
        return Self.isUsed(flags, wrap: usedWrap)
    }

    @inlinable @inline(__always)
    static func isUsed(_ flags: UInt16, wrap: Bool) -> Bool {
        let bits = flags & (DescriptorFlags.available | DescriptorFlags.used)
        return bits == (wrap ? DescriptorFlags.available | DescriptorFlags.used : 0)
    }

    /// Reclaims up to `maximum` used descriptors, handing each buffer to `body`; returns
    /// how many. Position, wrap counter and free-id stack stay in registers. Each used
    /// descriptor is an acquire load of its flags and one 8-byte load of len and id,
    /// checked against our bookkeeping before anything is freed. A descriptor that breaks
    /// a rule is thrown when it is the burst's first, else it ends the burst.
    @inlinable @inline(__always)
    public mutating func reclaimBurst(maximum: Int, _ body: (UsedBuffer) -> Void) throws(VirtqueueError) -> Int {
        var done = 0
        if !inOrder && deferredUsedSkip == 0 {
            let ring = descriptors
            let meta = chainMeta
            let limit = Int(size)
            var wrap = usedWrap
            var expected: UInt16 = wrap ? DescriptorFlags.available | DescriptorFlags.used : 0
            // Freed ids go on the stack from its top, one slot per buffer reclaimed.
            let freed = freeIds + freeIdCount
            let start = Int(nextUsed)
            var laps = 0
            let count = min(maximum, inFlightCount)
            // The walk is one pointer, checked against the ring's end; the position is
            // worked out from it once, after the burst.
            var d = ring + start &* 16
            let end = ring + limit &* 16
            while done < count {
                // acquire: pairs with the device's release of the used flags (the batch's
                // first; the rest were written before it), so id and len are visible.
                let flags = d.loadAcquireLE16(PackedLayout.flagsOffset)
                guard flags & (DescriptorFlags.available | DescriptorFlags.used) == expected else { break }
                let length = d.loadLE32(8)
                let id = d.loadLE16(12)
                guard Int(id) < limit else { break }
                // Our bookkeeping is writable << 32 | ring slots (0: not in flight), so
                // `len << 32 | 1 <= info` says in flight and len ≤ writable in one compare.
                let info = meta[Int(id)]
                guard UInt64(length) &<< 32 | 1 <= info else { break }
                meta[Int(id)] = 0
                freed[done] = id
                // The next slot as a branch, not as arithmetic on the loaded length: a single
                // descriptor (the rule) steps 16 bytes whatever was loaded, so the next used
                // descriptor's load need not wait for this one's id and bookkeeping (a chain
                // of loads across the ring's lines otherwise, one line's miss after another).
                if UInt16(truncatingIfNeeded: info) == 1 {
                    d += 16
                } else {
                    d = Self.pastChain(d, info)
                }
                if d >= end {
                    d -= limit &* 16
                    laps &+= limit
                    wrap.toggle()
                    expected = wrap ? DescriptorFlags.available | DescriptorFlags.used : 0
                }
                done &+= 1
                body(UsedBuffer(id: id, length: length))
            }
            let position = (d - ring) / 16
            nextUsed = UInt16(truncatingIfNeeded: position)
            usedWrap = wrap
            freeIdCount &+= done
            // Ring slots freed: how far the position moved.
            freeCount &+= position &- start &+ laps
            inFlightCount &-= done
            // Stopped at a descriptor not yet used, or at one that broke a rule (checked below).
            if done > 0 || count == 0 { return done }
        } else if inOrder {
            let (n, count) = reclaimInOrderBurst(maximum: maximum, body)
            if n > 0 || count == 0 { return n }
        }
        while done < maximum, inFlightCount > 0, hasUsed() {
            guard let buffer = try reclaimChecked() else { break }
            body(buffer)
            done &+= 1
        }
        return done
    }

    /// The slot after a chain of several ring descriptors (kept out of line, so the
    /// reclaim burst's step for a single descriptor stays a branch the CPU predicts).
    @usableFromInline @inline(never)
    static func pastChain(_ d: UnsafeMutableRawPointer, _ info: UInt64) -> UnsafeMutableRawPointer {
        d + Int(UInt16(truncatingIfNeeded: info)) &* 16
    }

    /// IN_ORDER bursts, apart from the hot path. Returns how many and how many it could have.
    @inlinable @inline(never)
    mutating func reclaimInOrderBurst(maximum: Int, _ body: (UsedBuffer) -> Void) -> (Int, Int) {
        var done = 0
            // IN_ORDER (§2.8.9): the used descriptor at our position names the last buffer
            // of the device's batch; every buffer up to it is complete. Earlier ones report
            // their whole writable length; the position moves past the batch at its last.
            let ring = descriptors
            let meta = chainMeta
            let limit = size
            var position = nextUsed
            var wrap = usedWrap
            var skip = deferredUsedSkip
            var oldest = inOrderOldestId
            var freed = 0
            let count = min(maximum, inFlightCount)
            while done < count {
                let d = ring + Int(position) &* 16
                // acquire: pairs with the device's release of the used flags, so id and len are visible.
                let flags = d.loadAcquireLE16(PackedLayout.flagsOffset)
                guard Self.isUsed(flags, wrap: wrap) else { break }
                let word = d.loadLE64(8)
                let length = UInt32(truncatingIfNeeded: word)
                let lastId = UInt16(truncatingIfNeeded: word &>> 32)
                guard lastId < limit, meta[Int(lastId)] != 0 else { break }
                let info = meta[Int(oldest)]
                let chain = UInt16(truncatingIfNeeded: info)
                guard chain != 0 else { break }
                var reported = UInt32(truncatingIfNeeded: info &>> 32)
                if oldest == lastId {
                    guard length <= reported else { break }
                    reported = length
                    // The batch's ring slots are free only now, once its used descriptor is passed.
                    freed &+= Int(chain &+ skip)
                    position &+= chain &+ skip
                    skip = 0
                    if position >= limit {
                        position &-= limit
                        wrap.toggle()
                    }
                } else {
                    skip &+= chain
                }
                meta[Int(oldest)] = 0
                let id = oldest
                oldest = oldest &+ 1 == limit ? 0 : oldest &+ 1
                done &+= 1
                body(UsedBuffer(id: id, length: reported))
            }
            nextUsed = position
            usedWrap = wrap
            deferredUsedSkip = skip
            inOrderOldestId = oldest
            freeCount &+= freed
            freeIdCount &+= done
            inFlightCount &-= done
        return (done, count)
    }

    /// The general path: IN_ORDER, or a used descriptor that broke a rule (which it names).
    @inlinable @inline(never)
    mutating func reclaimChecked() throws(VirtqueueError) -> UsedBuffer? {
        let d = descriptors + Int(nextUsed) &* 16
        let rawId = d.loadLE16(12)
        let length = d.loadLE32(8)
        let id = UInt32(rawId)
        guard rawId < size else { throw .usedIdOutOfRange(queue: queueIndex, id: id, queueSize: layout.queueSize) }
        if inOrder {
            // IN_ORDER (§2.8.9): one used descriptor may stand for every buffer up to its id.
            let oldest = inOrderOldestId
            guard chainLength(oldest) != 0, chainLength(rawId) != 0 else {
                throw .usedIdNotInFlight(queue: queueIndex, id: id)
            }
            let count = chainLength(oldest)
            var reported = writableBytes(oldest)
            // The ring slots of a batch are free only once its used descriptor is passed:
            // the driver must not write into them while it still has to read that one.
            var freedSlots: UInt16 = 0
            if oldest == rawId {
                guard length <= reported else {
                    throw .usedLengthTooLarge(queue: queueIndex, id: id, length: length, writable: reported)
                }
                reported = length
                freedSlots = count &+ deferredUsedSkip
                advanceUsed(by: count)
            } else {
                // Not the batch's last buffer: the used descriptor stays for the next call,
                // so skip none of the ring but account this buffer's descriptors in advance.
                advanceUsedDeferred(by: count)
            }
            inOrderOldestId = oldest &+ 1 == size ? 0 : oldest &+ 1
            releaseId(oldest, count: freedSlots)
            return UsedBuffer(id: oldest, length: reported)
        }
        let count = chainLength(rawId)
        guard count != 0 else { throw .usedIdNotInFlight(queue: queueIndex, id: id) }
        guard length <= writableBytes(rawId) else {
            throw .usedLengthTooLarge(queue: queueIndex, id: id, length: length, writable: writableBytes(rawId))
        }
        advanceUsed(by: count)
        releaseId(rawId, count: count)
        return UsedBuffer(id: rawId, length: length)
    }

    /// Descriptors of earlier in-order buffers whose used descriptor has not been reached yet.
    @usableFromInline var deferredUsedSkip: UInt16 = 0

    @inlinable @inline(__always)
    mutating func advanceUsedDeferred(by n: UInt16) {
        deferredUsedSkip &+= n
    }

    @inlinable @inline(__always)
    mutating func advanceUsed(by n: UInt16) {
        nextUsed &+= n &+ deferredUsedSkip
        deferredUsedSkip = 0
        if nextUsed >= size {
            nextUsed &-= size
            usedWrap.toggle()
        }
    }

    /// Ring descriptors of the chain with buffer id `id` (0: not in flight).
    @inlinable @inline(__always)
    func chainLength(_ id: UInt16) -> UInt16 { UInt16(truncatingIfNeeded: chainMeta[Int(id)]) }

    /// Device-writable bytes of the chain with buffer id `id`.
    @inlinable @inline(__always)
    func writableBytes(_ id: UInt16) -> UInt32 { UInt32(truncatingIfNeeded: chainMeta[Int(id)] &>> 32) }

    @inlinable @inline(__always)
    mutating func releaseId(_ id: UInt16, count: UInt16) {
        chainMeta[Int(id)] = 0
        freeCount &+= Int(count)
        inFlightCount &-= 1
        if !inOrder { freeIds[freeIdCount] = id }
        freeIdCount &+= 1
    }

    // MARK: - Interrupt suppression (§2.8.10)

    /// Asks the device for an interrupt on the next used descriptor, then re-checks.
    /// Returns true when used descriptors are already pending (do not sleep).
    @inlinable
    public mutating func enableInterrupts() -> Bool {
        if eventIndex {
            let offWrap = nextUsed | (usedWrap ? 0x8000 : 0)
            driverEvent.storeRelaxedLE16(offWrap, PackedLayout.eventOffsetWrapOffset)
            // release: off_wrap is visible before the flags that make the device read it.
            driverEvent.storeReleaseLE16(PackedEventFlags.descriptor, PackedLayout.eventFlagsOffset)
        } else {
            driverEvent.storeRelaxedLE16(PackedEventFlags.enable, PackedLayout.eventFlagsOffset)
        }
        // Full fence: "interrupt me" must be visible before the re-check (store → load).
        fullFence()
        return inFlightCount > 0 && hasUsed()
    }

    @inlinable
    public mutating func disableInterrupts() {
        driverEvent.storeRelaxedLE16(PackedEventFlags.disable, PackedLayout.eventFlagsOffset)
    }
}
