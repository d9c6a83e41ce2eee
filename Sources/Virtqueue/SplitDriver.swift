// The driver half of a split virtqueue (virtio 1.2 §2.7.13–§2.7.14): posts chains into
// the descriptor table and available ring, decides whether to kick, reclaims used buffers
// and checks what the device wrote. Owned by one thread; shares only ring memory.

import Atomics
import VirtioMemory

/// Driver half of a split ring. A value type: the thread that drives the queue owns it.
public struct SplitDriver: @unchecked Sendable {
    public let queueIndex: UInt16
    public let layout: SplitLayout
    public let features: VirtioFeatures
    public let addresses: RingAddresses

    @usableFromInline let size: UInt16
    @usableFromInline let sizeU32: UInt32
    @usableFromInline let mask: UInt16
    @usableFromInline let descriptors: UnsafeMutableRawPointer
    @usableFromInline let available: UnsafeMutableRawPointer
    @usableFromInline let used: UnsafeMutableRawPointer
    @usableFromInline let usedEventOffset: Int
    @usableFromInline let availableEventOffset: Int
    @usableFromInline let eventIndex: Bool
    @usableFromInline let inOrder: Bool

    // Private bookkeeping (never read back from ring memory, which the device could scribble on).
    /// Free-list and chain links, one per descriptor.
    @usableFromInline let next: UnsafeMutablePointer<UInt16>
    /// Per head: descriptors in the chain (low 16 bits), 0xFFFF (bits 16–31) and its
    /// device-writable bytes (high 32), or 0 when not in flight: one word so posting and
    /// reclaiming touch it once (`chainInfo` builds it; the reclaim burst says why 0xFFFF).
    @usableFromInline let chainMeta: UnsafeMutablePointer<UInt64>
    private let storage: HalfStorage

    @usableFromInline var freeHead: UInt16 = 0
    @usableFromInline var freeCount: Int
    @usableFromInline var inFlightCount: Int = 0
    /// Next available index to write (published or not).
    @usableFromInline var availableIndex: UInt16 = 0
    /// Chains added since the last kick decision.
    @usableFromInline var addedSinceKickCheck: UInt16 = 0
    #if VQB_GATE_INJECT || VQB_GATE_INJECT_KICK
    @usableFromInline var injectedPosted = 0
    #endif
    /// Used index up to which buffers were reclaimed.
    @usableFromInline var lastUsedIndex: UInt16 = 0
    /// Last used index read from the ring (re-read only when everything up to it is reclaimed).
    @usableFromInline var usedIndexShadow: UInt16 = 0
    /// IN_ORDER: the next descriptor to hand out (descriptors go round the table in order).
    @usableFromInline var inOrderNext: UInt16 = 0
    /// IN_ORDER: the oldest head in flight.
    @usableFromInline var inOrderOldest: UInt16 = 0

    @usableFromInline let indirectHost: UnsafeMutableRawPointer?
    @usableFromInline let indirectGPA: UInt64
    @usableFromInline let indirectEntries: Int

    /// Sets up the driver side of a queue whose areas are at `addresses` in `memory`, and
    /// initialises the ring (zeroes it, as a driver allocating a ring does).
    public init(queue: UInt16 = 0, layout: SplitLayout, addresses: RingAddresses, memory: GuestMemory,
                features: VirtioFeatures, indirectPool: IndirectPool? = nil) throws(VirtqueueError) {
        self.queueIndex = queue
        self.layout = layout
        self.features = features
        self.addresses = addresses
        var guest = memory
        let n = layout.queueSize
        size = UInt16(truncatingIfNeeded: n)  // 32768 fits; masks use size - 1
        sizeU32 = UInt32(n)
        mask = UInt16(n - 1)
        descriptors = try ringArea(&guest, addresses.descriptorArea, layout.descriptorTableSize,
                                    SplitLayout.descriptorTableAlignment, deviceWrites: false, "descriptor table", queue)
        available = try ringArea(&guest, addresses.driverArea, layout.availableRingSize,
                                  SplitLayout.availableRingAlignment, deviceWrites: false, "available ring", queue)
        used = try ringArea(&guest, addresses.deviceArea, layout.usedRingSize,
                             SplitLayout.usedRingAlignment, deviceWrites: false, "used ring", queue)
        usedEventOffset = layout.usedEventOffset
        availableEventOffset = layout.availableEventOffset
        eventIndex = features.contains(.eventIndex)
        inOrder = features.contains(.inOrder)
        freeCount = n

        storage = HalfStorage(bytes: n * (8 + 2))
        chainMeta = storage.base.bindMemory(to: UInt64.self, capacity: n)
        next = (storage.base + 8 * n).bindMemory(to: UInt16.self, capacity: n)
        for i in 0..<n { next[i] = UInt16(truncatingIfNeeded: (i + 1) & (n - 1)) }

        (indirectHost, indirectGPA, indirectEntries) =
            try attachIndirectPool(indirectPool, features: features, memory: &guest, queueSize: n, queue: queue)
        descriptors.initializeMemory(as: UInt8.self, repeating: 0, count: layout.descriptorTableSize)
        available.initializeMemory(as: UInt8.self, repeating: 0, count: layout.availableRingSize)
        used.initializeMemory(as: UInt8.self, repeating: 0, count: layout.usedRingSize)
    }

    public var queueSize: Int { layout.queueSize }
    /// Descriptors free for new chains.
    public var freeDescriptors: Int { freeCount }
    /// Chains posted and not yet reclaimed.
    public var buffersInFlight: Int { inFlightCount }

    // MARK: - Posting

    /// Our bookkeeping word for a chain in flight: writable << 32 | 0xFFFF << 16 | descriptors.
    /// A used entry is id | len << 32 with id < 2^16, so `entry < info` says both "in flight"
    /// (info is 0 otherwise) and "len ≤ writable" in one compare.
    @inlinable @inline(__always)
    static func chainInfo(writable: UInt32, descriptors: UInt16) -> UInt64 {
        UInt64(writable) &<< 32 | 0xFFFF_0000 | UInt64(descriptors)
    }

    /// The burst itself: the free-list head, the available index and the counters stay in
    /// registers and are written back once; each descriptor is two stores, its bookkeeping
    /// one, its available entry one. `posted(i, id)` is told each chain's id.
    @inlinable @inline(__always)
    public mutating func postBurst(count: Int, _ buffer: (Int) -> Buffer, posted: (Int, UInt16) -> Void) -> Int {
        let n = min(count, freeCount)
        guard n > 0 else { return 0 }
        let table = descriptors
        let ring = available
        let links = next
        let meta = chainMeta
        let m = mask
        var free = freeHead
        var ordered = inOrderNext
        var index = availableIndex
        @inline(__always) func write(_ i: Int, _ head: UInt16, _ b: Buffer, _ entry: UnsafeMutableRawPointer) {
            let d = table + Int(head) &* 16
            d.storeLE64(b.address, 0)
            // len, flags and next (0) in one store.
            let writable = b.isWritable
            d.storeLE64(UInt64(b.length) | (writable ? UInt64(DescriptorFlags.write) &<< 32 : 0), 8)
            meta[Int(head)] = Self.chainInfo(writable: writable ? b.length : 0, descriptors: 1)
            entry.storeLE16(head, 0)
            posted(i, head)
        }
        // In runs that end at the available ring's end, so each entry is one store at the
        // run's start plus its index.
        var i = 0
        while i < n {
            let start = Int(index & m)
            let run = min(n &- i, Int(m) &+ 1 &- start)
            let entries = ring + SplitLayout.availableEntryOffset(start)
            if inOrder {
                // §2.7.5: with IN_ORDER, descriptors are used in table order, wrapping at the end.
                for k in 0..<run {
                    let head = ordered
                    ordered = (ordered &+ 1) & m
                    write(i &+ k, head, buffer(i &+ k), entries + k &* 2)
                }
            } else {
                for k in 0..<run {
                    let head = free
                    free = links[Int(head)]
                    write(i &+ k, head, buffer(i &+ k), entries + k &* 2)
                }
            }
            i &+= run
            index &+= UInt16(truncatingIfNeeded: run)
        }
        freeHead = free
        inOrderNext = ordered
        availableIndex = index
        freeCount &-= n
        inFlightCount &+= n
        addedSinceKickCheck &+= UInt16(truncatingIfNeeded: n)
        return n
    }

    /// Posts a chain of buffers, device-readable ones first (§2.7.4). Returns its id.
    @inlinable
    public mutating func post(_ buffers: UnsafeBufferPointer<Buffer>) throws(VirtqueueError) -> UInt16 {
        let count = buffers.count
        try validateChain(buffers, queue: queueIndex)
        guard count <= freeCount else { throw .queueFull(queue: queueIndex, needed: count, free: freeCount) }
        let head = takeDescriptor()
        var index = head
        var writable: UInt32 = 0
        for i in 0..<count {
            let b = buffers[i]
            let last = i == count &- 1
            let successor = last ? 0 : takeDescriptor()
            if !last { next[Int(index)] = successor }
            var flags: UInt16 = b.isWritable ? DescriptorFlags.write : 0
            if !last { flags |= DescriptorFlags.next }
            if b.isWritable { writable &+= b.length }
            writeDescriptor(index, b.address, b.length, flags, successor)
            index = successor
        }
        return addChain(head: head, length: UInt16(truncatingIfNeeded: count), writable: writable)
    }

    /// Posts a chain through one indirect table (VIRTIO_F_INDIRECT_DESC, §2.7.5.3).
    @inlinable
    public mutating func postIndirect(_ buffers: UnsafeBufferPointer<Buffer>) throws(VirtqueueError) -> UInt16 {
        guard let table = indirectHost else { throw .indirectUnavailable(queue: queueIndex) }
        try validateChain(buffers, queue: queueIndex)
        guard buffers.count <= indirectEntries else {
            throw .invalidChain(queue: queueIndex, reason: "\(buffers.count) buffers exceed the indirect table of \(indirectEntries)")
        }
        guard freeCount > 0 else { throw .queueFull(queue: queueIndex, needed: 1, free: 0) }
        let head = takeDescriptor()
        let tableHost = table + Int(head) &* indirectEntries &* 16
        var writable: UInt32 = 0
        for i in 0..<buffers.count {
            let b = buffers[i]
            let last = i == buffers.count &- 1
            var flags: UInt16 = b.isWritable ? DescriptorFlags.write : 0
            if !last { flags |= DescriptorFlags.next }
            if b.isWritable { writable &+= b.length }
            let d = tableHost + i &* 16
            d.storeLE64(b.address, 0)
            d.storeLE32(b.length, 8)
            d.storeLE16(flags, 12)
            d.storeLE16(last ? 0 : UInt16(truncatingIfNeeded: i &+ 1), 14)
        }
        let tableGPA = indirectGPA &+ UInt64(Int(head) &* indirectEntries &* 16)
        writeDescriptor(head, tableGPA, UInt32(buffers.count &* 16), DescriptorFlags.indirect, 0)
        return addChain(head: head, length: 1, writable: writable)
    }

    @inlinable @inline(__always)
    mutating func takeDescriptor() -> UInt16 {
        freeCount &-= 1
        if inOrder {
            // §2.7.5: with IN_ORDER, descriptors are used in table order, wrapping at the end.
            let d = inOrderNext
            inOrderNext = (inOrderNext &+ 1) & mask
            return d
        }
        let d = freeHead
        freeHead = next[Int(d)]
        return d
    }

    @inlinable @inline(__always)
    func writeDescriptor(_ index: UInt16, _ address: UInt64, _ length: UInt32, _ flags: UInt16, _ successor: UInt16) {
        let d = descriptors + Int(index) &* 16
        d.storeLE64(address, 0)
        d.storeLE32(length, 8)
        d.storeLE16(flags, 12)
        d.storeLE16(successor, 14)
    }

    @inlinable @inline(__always)
    mutating func addChain(head: UInt16, length: UInt16, writable: UInt32) -> UInt16 {
        chainMeta[Int(head)] = Self.chainInfo(writable: writable, descriptors: length)
        available.storeLE16(head, SplitLayout.availableEntryOffset(Int(availableIndex & mask)))
        availableIndex &+= 1
        addedSinceKickCheck &+= 1
        inFlightCount &+= 1
        return head
    }

    /// Makes every chain posted so far visible to the device: one release store of avail.idx
    /// for the whole batch (§2.7.13.3).
    @inlinable
    public mutating func publish() {
        #if VQB_GATE_INJECT || VQB_GATE_INJECT_MALLOC
        gateInjectedAllocation()
        #endif
        // release: the descriptors and ring entries written above become visible no later
        // than the new index; pairs with the device's acquire load of avail.idx.
        available.storeReleaseLE16(availableIndex, SplitLayout.availableIndexOffset)
    }

    // MARK: - Kick decision

    /// Whether the device wants a kick for the chains published since the last decision
    /// (§2.7.13.4 / §2.7.10). Pure decision: ringing the doorbell is the caller's business.
    @inlinable
    public mutating func kickNeeded() -> Bool {
        // Full fence: our avail.idx store must be visible before we read the device's
        // suppression field, or the device may have gone to sleep unseen (store → load).
        fullFence()
        let new = availableIndex
        let old = new &- addedSinceKickCheck
        addedSinceKickCheck = 0
        #if VQB_GATE_INJECT || VQB_GATE_INJECT_KICK
        // One extra kick per 1000 descriptors made available.
        let before = injectedPosted / 1000
        injectedPosted &+= Int(new &- old)
        if injectedPosted / 1000 != before { return true }
        #endif
        if eventIndex {
            let event = used.loadRelaxedLE16(availableEventOffset)
            return needsEvent(event: event, new: new, old: old)
        }
        return used.loadRelaxedLE16(SplitLayout.usedFlagsOffset) & SplitRingFlags.noNotify == 0
    }

    /// The value a kick carries with VIRTIO_F_NOTIFICATION_DATA (§2.9).
    @inlinable
    public var notificationData: NotificationData {
        NotificationData(queue: queueIndex, splitAvailableIndex: availableIndex)
    }

    // MARK: - Reclaiming

    /// Whether the device has returned buffers not yet reclaimed.
    @inlinable
    public mutating func hasUsed() -> Bool {
        if lastUsedIndex != usedIndexShadow { return true }
        // acquire: pairs with the device's release of used.idx, so the entries are visible.
        usedIndexShadow = used.loadAcquireLE16(SplitLayout.usedIndexOffset)
        return lastUsedIndex != usedIndexShadow
    }

    /// Reclaims up to `maximum` used buffers, handing each to `body`; returns how many.
    /// used.idx is read once (when the entries seen last time are all reclaimed); each
    /// entry is one 8-byte load, checked against our own bookkeeping (id in range, in
    /// flight, length within its writable bytes) before anything is freed. An entry that
    /// breaks a rule is thrown when it is the burst's first, else it ends the burst.
    @inlinable @inline(__always)
    public mutating func reclaimBurst(maximum: Int, _ body: (UsedBuffer) -> Void) throws(VirtqueueError) -> Int {
        guard maximum > 0 else { return 0 }
        if Int(usedIndexShadow &- lastUsedIndex) < maximum {
            // acquire: pairs with the device's release of used.idx, so the entries are
            // visible. Read once per burst, and only when the entries seen last time do not fill it.
            usedIndexShadow = used.loadAcquireLE16(SplitLayout.usedIndexOffset)
        }
        guard lastUsedIndex != usedIndexShadow else { return 0 }
        var done = 0
        if !inOrder && usedIndexShadow &- lastUsedIndex <= UInt16(truncatingIfNeeded: inFlightCount) {
            let count = min(Int(usedIndexShadow &- lastUsedIndex), maximum)
            let ring = used
            let meta = chainMeta
            let links = next
            let m = Int(mask)
            let limit = Int(size)
            let first = Int(lastUsedIndex)
            let end = first &+ count
            var last = first
            var free = freeHead
            // Descriptors beyond each chain's first (0 while every chain is one descriptor).
            var extra = 0
            // In runs that end at the used ring's end, so each entry is one load at the
            // run's start plus its index.
            while last != end {
                let slot = last & m
                let run = min(end &- last, limit &- slot)
                let base = ring + SplitLayout.usedEntryOffset(slot)
                var k = 0
                while k < run {
                    // id | len << 32.
                    let word = base.loadLE64(k &* 8)
                    let id = Int(UInt32(truncatingIfNeeded: word))
                    guard id < limit else { break }
                    // In flight and len ≤ writable, in one compare (chainInfo).
                    let info = meta[id]
                    guard word < info else { break }
                    meta[id] = 0
                    let head = UInt16(truncatingIfNeeded: id)
                    // Put the chain on the free list: its tail (reached by our private links)
                    // points at the old head.
                    var tail = id
                    let chain = Int(UInt16(truncatingIfNeeded: info))
                    if chain != 1 {
                        for _ in 1..<chain { tail = Int(links[tail]) }
                        extra &+= chain &- 1
                    }
                    links[tail] = free
                    free = head
                    k &+= 1
                    body(UsedBuffer(id: head, length: UInt32(truncatingIfNeeded: word &>> 32)))
                }
                last &+= k
                // Stopped at an entry that broke a rule.
                if k < run { break }
            }
            done = last &- first
            lastUsedIndex = UInt16(truncatingIfNeeded: last)
            freeHead = free
            freeCount &+= done &+ extra
            inFlightCount &-= done
            // Stopped early at an entry that broke a rule: the next call throws it.
            if done > 0 { return done }
        } else if inOrder && usedIndexShadow &- lastUsedIndex <= UInt16(truncatingIfNeeded: inFlightCount) {
            done = reclaimInOrderBurst(maximum: maximum, body)
            if done > 0 { return done }
        }
        while done < maximum, lastUsedIndex != usedIndexShadow {
            guard let buffer = try reclaimChecked() else { break }
            body(buffer)
            done &+= 1
        }
        return done
    }

    /// IN_ORDER bursts, apart from the hot path.
    @inlinable @inline(never)
    mutating func reclaimInOrderBurst(maximum: Int, _ body: (UsedBuffer) -> Void) -> Int {
        var done = 0
            // IN_ORDER (§2.7.8): buffers come back in the order posted; only the newest
            // published slot is sure to hold a real entry (the last of the device's batch),
            // and it must name the buffer it stands for. Earlier buffers report their whole
            // writable length, as Linux does.
            let count = min(Int(usedIndexShadow &- lastUsedIndex), maximum)
            let meta = chainMeta
            let m = mask
            let newest = usedIndexShadow &- 1
            var last = lastUsedIndex
            var oldest = inOrderOldest
            var freed = 0
            while done < count {
                let head = oldest
                let info = meta[Int(head)]
                let chain = UInt16(truncatingIfNeeded: info)
                guard chain != 0 else { break }
                var length = UInt32(truncatingIfNeeded: info &>> 32)
                if last == newest {
                    let word = used.loadLE64(SplitLayout.usedEntryOffset(Int(last & m)))
                    let reported = UInt32(truncatingIfNeeded: word &>> 32)
                    guard UInt32(truncatingIfNeeded: word) == UInt32(head), reported <= length else { break }
                    length = reported
                }
                meta[Int(head)] = 0
                oldest = (head &+ chain) & m
                freed &+= Int(chain)
                last &+= 1
                done &+= 1
                body(UsedBuffer(id: head, length: length))
            }
            lastUsedIndex = last
            inOrderOldest = oldest
            freeCount &+= freed
            inFlightCount &-= done
        return done
    }

    /// The general path: IN_ORDER, or an entry that broke a rule (which it names).
    @inlinable @inline(never)
    mutating func reclaimChecked() throws(VirtqueueError) -> UsedBuffer? {
        let pending = Int(usedIndexShadow &- lastUsedIndex)
        guard pending <= inFlightCount else {
            throw .usedIndexJump(queue: queueIndex, lastSeen: lastUsedIndex, published: usedIndexShadow, inFlight: inFlightCount)
        }
        if inOrder { return try reclaimInOrder() }
        let entry = used + SplitLayout.usedEntryOffset(Int(lastUsedIndex & mask))
        let id = entry.loadLE32(0)
        let length = entry.loadLE32(4)
        guard id < sizeU32 else {
            throw .usedIdOutOfRange(queue: queueIndex, id: id, queueSize: layout.queueSize)
        }
        let head = UInt16(truncatingIfNeeded: id)
        let count = chainLength(head)
        guard count != 0 else { throw .usedIdNotInFlight(queue: queueIndex, id: id) }
        guard length <= writableBytes(head) else {
            throw .usedLengthTooLarge(queue: queueIndex, id: id, length: length, writable: writableBytes(head))
        }
        lastUsedIndex &+= 1
        release(head: head, count: count)
        return UsedBuffer(id: head, length: length)
    }

    /// IN_ORDER (§2.7.5, §2.7.8): buffers come back in the order posted, and the device may
    /// write one used entry for a batch — in the slot of the batch's last buffer, with its
    /// id. Earlier buffers of a batch report their whole writable length, as Linux does.
    @inlinable
    mutating func reclaimInOrder() throws(VirtqueueError) -> UsedBuffer {
        let head = inOrderOldest
        let count = chainLength(head)
        guard count != 0 else { throw .usedIdNotInFlight(queue: queueIndex, id: UInt32(head)) }
        var length = writableBytes(head)
        if lastUsedIndex &+ 1 == usedIndexShadow {
            // The newest published slot always holds a real entry: check it names this buffer.
            let entry = used + SplitLayout.usedEntryOffset(Int(lastUsedIndex & mask))
            let id = entry.loadLE32(0)
            guard id == UInt32(head) else {
                if id >= sizeU32 {
                    throw .usedIdOutOfRange(queue: queueIndex, id: id, queueSize: layout.queueSize)
                }
                throw .usedOutOfOrder(queue: queueIndex, id: id, expected: UInt32(head))
            }
            length = entry.loadLE32(4)
            guard length <= writableBytes(head) else {
                throw .usedLengthTooLarge(queue: queueIndex, id: id, length: length, writable: writableBytes(head))
            }
        }
        lastUsedIndex &+= 1
        inOrderOldest = (head &+ count) & mask
        release(head: head, count: count)
        return UsedBuffer(id: head, length: length)
    }

    /// Descriptors in the chain headed by `head` (0: not in flight).
    @inlinable @inline(__always)
    func chainLength(_ head: UInt16) -> UInt16 { UInt16(truncatingIfNeeded: chainMeta[Int(head)]) }

    /// Device-writable bytes of the chain headed by `head`.
    @inlinable @inline(__always)
    func writableBytes(_ head: UInt16) -> UInt32 { UInt32(truncatingIfNeeded: chainMeta[Int(head)] &>> 32) }

    @inlinable @inline(__always)
    mutating func release(head: UInt16, count: UInt16) {
        chainMeta[Int(head)] = 0
        inFlightCount &-= 1
        freeCount &+= Int(count)
        guard !inOrder else { return }
        // Walk our private links to the tail, then put the whole chain on the free list.
        var tail = head
        var remaining = count &- 1
        while remaining > 0 {
            tail = next[Int(tail)]
            remaining &-= 1
        }
        next[Int(tail)] = freeHead
        freeHead = head
    }

    // MARK: - Interrupt suppression (§2.7.7)

    /// Asks the device for an interrupt on the next used buffer, then re-checks the ring.
    /// Returns true when used buffers are already pending (do not sleep: reclaim them).
    @inlinable
    public mutating func enableInterrupts() -> Bool {
        if eventIndex {
            // used_event = the next used index we have not seen: interrupt when it is written.
            available.storeRelaxedLE16(lastUsedIndex, usedEventOffset)
        } else {
            available.storeRelaxedLE16(0, SplitLayout.availableFlagsOffset)
        }
        // Full fence: "interrupt me" must be visible before we re-read used.idx, or an
        // entry written in between goes unnoticed and unsignalled (the lost wakeup).
        fullFence()
        return hasUsed()
    }

    /// Tells the device interrupts are not needed (a hint, §2.7.7).
    @inlinable
    public mutating func disableInterrupts() {
        if !eventIndex {
            available.storeRelaxedLE16(SplitRingFlags.noInterrupt, SplitLayout.availableFlagsOffset)
        }
        // With EVENT_IDX, leaving used_event behind the used index suppresses interrupts.
    }
}
