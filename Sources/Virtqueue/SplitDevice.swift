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
    /// VIRTIO_F_IN_ORDER: a burst is reported by one used entry.
    @usableFromInline let inOrder: Bool

    /// Segment store: the segments of every chain of the last burst, back to back. Twice
    /// the queue size, so a burst always has room for one more chain of the longest kind.
    @usableFromInline let segmentStore: UnsafeMutablePointer<Segment>
    /// Where the last chain popped starts in the store, and its segment count.
    @usableFromInline var lastFirstSegment: Int = 0
    @usableFromInline var lastSegmentCount: Int = 0
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
        inOrder = features.contains(.inOrder)
        storage = HalfStorage(bytes: MemoryLayout<Segment>.stride * 2 * layout.queueSize)
        segmentStore = storage.base.bindMemory(to: Segment.self, capacity: 2 * layout.queueSize)
        lastAvailableIndex = state.lastAvailableIndex
        availableIndexShadow = state.lastAvailableIndex
        usedIndex = state.usedIndex
        usedAtLastInterruptCheck = state.usedIndex
    }

    /// The segments of the chain returned by the last `pop()` (or the last of a burst).
    @inlinable
    public var segments: UnsafeBufferPointer<Segment> {
        UnsafeBufferPointer(start: segmentStore + lastFirstSegment, count: lastSegmentCount)
    }

    /// The segments of `chain`, one of the last burst's.
    @inlinable @inline(__always)
    public func segments(of chain: Chain) -> UnsafeBufferPointer<Segment> {
        UnsafeBufferPointer(start: segmentStore + Int(chain.firstSegment), count: chain.segmentCount)
    }

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

    /// Pops up to `maximum` available chains into `chains`; returns how many. avail.idx is
    /// read once per burst (and only when the chains seen last time are all popped); the
    /// position and the segment store's fill stay in registers and are written back once.
    /// Each chain's segments are in `segments(of:)` until the next pop. A broken rule met
    /// on the burst's first chain marks the queue broken and is thrown; met later, the
    /// burst ends before that chain (which the next call meets first).
    @inlinable
    public mutating func popBurst(into chains: UnsafeMutablePointer<Chain>, maximum: Int) throws(VirtqueueError) -> Int {
        if isBroken { throw .queueBroken(queue: queueIndex, cause: brokenCause!) }
        guard maximum > 0 else { return 0 }
        if Int(availableIndexShadow &- lastAvailableIndex) < maximum {
            // acquire: pairs with the driver's release of avail.idx, so the ring entries and
            // descriptors it covers are visible. Read once per burst, and only when the
            // chains seen last time do not fill it.
            availableIndexShadow = available.loadAcquireLE16(SplitLayout.availableIndexOffset)
        }
        let pending = availableIndexShadow &- lastAvailableIndex
        guard pending != 0 else { return 0 }
        guard pending <= size else {
            let error = VirtqueueError.availableIndexJump(queue: queueIndex, lastSeen: lastAvailableIndex, published: availableIndexShadow)
            brokenCause = error
            isBroken = true
            throw error
        }
        let count = min(Int(pending), maximum)
        var popped = 0
        var fill = 0
        while popped < count {
            // Runs of one-descriptor chains inside the direct window, in registers.
            let run = popSingles(from: lastAvailableIndex, count: count &- popped, chains: chains + popped,
                                 segments: segmentStore + fill, firstSegment: fill)
            popped &+= run
            fill &+= run
            lastAvailableIndex &+= UInt16(truncatingIfNeeded: run)
            guard popped < count else { break }
            // Anything else, the general way, then back to the fast run.
            let (n, segments) = popGeneral(into: chains + popped, count: count &- popped, fill: fill, first: popped == 0)
            guard n > 0 else { break }
            popped &+= n
            fill &+= segments
        }
        if popped > 0 {
            lastFirstSegment = Int(chains[popped &- 1].firstSegment)
            lastSegmentCount = chains[popped &- 1].segmentCount
        } else if isBroken {
            throw brokenCause.unsafelyUnwrapped
        }
        return popped
    }

    /// Pops up to `maximum` chains, has `serve` handle each and marks them used (visible at
    /// `publishUsed()`); returns how many. Runs of one direct descriptor in the direct window
    /// are served where they lie: each descriptor is read once and handed to `serve` as a
    /// segment on the stack, with no chain or segment stored; its used entry is written at
    /// once, or under IN_ORDER one entry stands for the run when every earlier length is what
    /// the driver assumes (else every entry is written, as pushUsedBurst does). Anything else
    /// pops into `buffers` and is pushed as a burst. A broken rule met on the burst's first
    /// chain marks the queue broken and is thrown; met after chains were served, the burst
    /// ends before it.
    @inlinable @inline(__always)
    public mutating func serveBurst(_ buffers: DeviceBurstBuffers, maximum: Int,
                                    _ serve: (Chain, UnsafeBufferPointer<Segment>) -> UInt32) throws(VirtqueueError) -> Int {
        if !isBroken && maximum > 0 {
            if Int(availableIndexShadow &- lastAvailableIndex) < maximum {
                // acquire: pairs with the driver's release of avail.idx (as in popBurst).
                availableIndexShadow = available.loadAcquireLE16(SplitLayout.availableIndexOffset)
            }
            let pending = availableIndexShadow &- lastAvailableIndex
            guard pending != 0 else { return 0 }
            if pending <= size {
                let count = min(Int(pending), maximum)
                let served = inOrder ? serveSinglesInOrder(buffers, count: min(count, buffers.capacity), serve)
                                     : serveSingles(count: count, serve)
                if served > 0 { return served }
            }
        }
        return try popServePush(buffers, maximum: maximum, serve)
    }

    /// Runs of single chains served in place, each used entry written at once.
    @inlinable @inline(__always)
    mutating func serveSingles(count: Int, _ serve: (Chain, UnsafeBufferPointer<Segment>) -> UInt32) -> Int {
        let ring = used + SplitLayout.usedEntryOffset(0)
        // Runs end at the used ring's end too (the used index need not equal the available
        // one), so each used entry is one store at the run's slot plus its index.
        let served = serveSingleRuns(count: count, usedSlot: Int(usedIndex & mask), serve) { _, k, slot, head, written, _ in
            (ring + slot &* 8).storeLE64(UInt64(head) | UInt64(written) &<< 32, k &* 8)
        }
        usedIndex &+= UInt16(truncatingIfNeeded: served)
        return served
    }

    /// IN_ORDER (§2.7.8): runs of single chains served in place, their lengths kept in
    /// `buffers`; then one used entry for the run, in its last slot with its last id, when
    /// every earlier chain's length is its whole writable length (what the driver assumes
    /// for a skipped entry), else one entry each.
    @inlinable @inline(__always)
    mutating func serveSinglesInOrder(_ buffers: DeviceBurstBuffers, count: Int,
                                      _ serve: (Chain, UnsafeBufferPointer<Segment>) -> UInt32) -> Int {
        let lengths = buffers.lengths
        var impliedSoFar = true
        var impliedBeforeLast = true
        var lastHead = 0
        let served = serveSingleRuns(count: count, usedSlot: nil, serve) { i, _, _, head, written, writable in
            lengths[i] = written
            impliedBeforeLast = impliedSoFar
            impliedSoFar = impliedSoFar && written == writable
            lastHead = head
        }
        guard served > 0 else { return 0 }
        if impliedBeforeLast {
            pushUsedInOrder(lastId: UInt16(truncatingIfNeeded: lastHead), length: lengths[served &- 1],
                            count: UInt16(truncatingIfNeeded: served))
        } else {
            // The heads again from the available ring (the driver reuses a slot only after
            // its buffer is used).
            let first = lastAvailableIndex &- UInt16(truncatingIfNeeded: served)
            for i in 0..<served {
                let head = available.loadLE16(SplitLayout.availableEntryOffset(Int((first &+ UInt16(truncatingIfNeeded: i)) & mask)))
                pushUsed(id: head, length: lengths[i])
            }
        }
        return served
    }

    /// Single chains from our position, in runs that end at the available ring's end (and
    /// at the used ring's end, when `usedSlot` says where the used entries start);
    /// `complete(i, k, slot, head, written, writableBytes)` for the `i`th of the burst, the
    /// `k`th of a run whose used entries start at `slot`. Moves the available position past
    /// them; returns how many.
    @inlinable @inline(__always)
    mutating func serveSingleRuns(count: Int, usedSlot: Int?, _ serve: (Chain, UnsafeBufferPointer<Segment>) -> UInt32,
                                  _ complete: (Int, Int, Int, Int, UInt32, UInt32) -> Void) -> Int {
        let window = memory.directWindow
        guard window.size != 0, let host = window.host else { return 0 }
        let run = SingleRun(table: descriptors, mask: Int(mask), base: window.base, span: window.size, host: host)
        let ring = available + SplitLayout.availableEntryOffset(0)
        let m = Int(mask)
        var at = Int(lastAvailableIndex) & m
        var slot = usedSlot ?? 0
        var served = 0
        while served < count {
            var length = min(count &- served, queueSizeInt &- at)
            if usedSlot != nil { length = min(length, queueSizeInt &- slot) }
            let n = Self.serveSingleRun(run, entries: ring + at &* 2, count: length, from: served, slot: slot,
                                        limit: lengthLimit, serve, complete)
            served &+= n
            guard n == length else { break }
            at = (at &+ n) & m
            slot = (slot &+ n) & m
        }
        lastAvailableIndex &+= UInt16(truncatingIfNeeded: served)
        return served
    }

    /// One contiguous run: per chain the entry, one descriptor's three fields, the window
    /// check (`SingleRun.walk`), `serve`, then `complete`.
    @inlinable @inline(__always)
    static func serveSingleRun(_ run: SingleRun, entries: UnsafeMutableRawPointer, count: Int, from: Int, slot: Int, limit: UInt32,
                               _ serve: (Chain, UnsafeBufferPointer<Segment>) -> UInt32,
                               _ complete: (Int, Int, Int, Int, UInt32, UInt32) -> Void) -> Int {
        run.walk(entries: entries, count: count, limit: limit) { i, head, segment, writable in
            var segment = segment
            let length = segment.length
            let chain = Chain(single: UInt16(truncatingIfNeeded: head), length: length, writableBit: writable, firstSegment: 0)
            let written = withUnsafePointer(to: &segment) { serve(chain, UnsafeBufferPointer(start: $0, count: 1)) }
            complete(from &+ i, i, slot, head, written, length & UInt32(truncatingIfNeeded: 0 &- writable))
        }
    }

    /// Chains at our position the general way, up to `count`: lone descriptors outside the
    /// direct window (a memory with an IOTLB, a second region), translated one by one, and
    /// at most one longer or indirect chain, which ends the run (the fast path may follow).
    /// Out of line, so the burst's fast path keeps a small frame; a run, so a memory without
    /// a direct window pays one call a burst. Only while the segment store has room for the
    /// longest chain. Stops before a chain that breaks a rule: met as the burst's `first`,
    /// the queue is marked broken (the caller hears why); met later, the next call meets it
    /// first. Returns the chains popped and the segments they filled.
    @inlinable @inline(never)
    mutating func popGeneral(into chains: UnsafeMutablePointer<Chain>, count: Int, fill: Int, first: Bool) -> (Int, Int) {
        var n = 0
        var used = 0
        while n < count, fill &+ used <= queueSizeInt {
            let head = available.loadLE16(SplitLayout.availableEntryOffset(Int(lastAvailableIndex & mask)))
            let at = fill &+ used
            var long = false
            do throws(VirtqueueError) {
                if head < size, let single = try popTranslatedSingle(head: head, into: segmentStore + at, firstSegment: at) {
                    chains[n] = single
                } else {
                    chains[n] = try readChain(head: head, firstSegment: at)
                    long = true
                }
            } catch {
                if first && n == 0 { markBroken(error) }
                break
            }
            used &+= chains[n].segmentCount
            n &+= 1
            lastAvailableIndex &+= 1
            if long { break }
        }
        return (n, used)
    }

    /// Pops consecutive chains of one direct, non-empty descriptor whose buffer lies in
    /// the memory's direct window, stopping at the first that is anything else (left for
    /// the general path, which also names what is wrong with it). At most two runs: up to
    /// the end of the available ring, then from its start, so the loop walks pointers.
    @inlinable @inline(__always)
    func popSingles(from first: UInt16, count: Int, chains: UnsafeMutablePointer<Chain>,
                    segments: UnsafeMutablePointer<Segment>, firstSegment: Int) -> Int {
        let window = memory.directWindow
        guard window.size != 0, let host = window.host else { return 0 }
        let run = SingleRun(table: descriptors, mask: Int(mask), base: window.base, span: window.size, host: host)
        let ring = available + SplitLayout.availableEntryOffset(0)
        let start = Int(first & mask)
        let toEnd = min(count, queueSizeInt &- start)
        if count <= 2 && toEnd == count {
            return Self.popSingleRunBody(run, entries: ring + start &* 2, count: count, chains: chains, segments: segments,
                                         firstSegment: firstSegment, limit: lengthLimit)
        }
        let popped = Self.popSingleRun(run, entries: ring + start &* 2, count: toEnd, chains: chains, segments: segments,
                                       firstSegment: firstSegment, limit: lengthLimit)
        guard popped == toEnd, toEnd < count else { return popped }
        return popped &+ Self.popSingleRun(run, entries: ring, count: count &- toEnd, chains: chains + popped,
                                           segments: segments + popped, firstSegment: firstSegment &+ popped, limit: lengthLimit)
    }

    /// What a run of single-descriptor chains reads besides the ring: the descriptor table and
    /// the direct window.
    @usableFromInline
    struct SingleRun {
        @usableFromInline let table: UnsafeMutableRawPointer
        @usableFromInline let mask: Int
        @usableFromInline let base: UInt64
        @usableFromInline let span: UInt64
        @usableFromInline let host: UnsafeMutableRawPointer
        @inlinable init(table: UnsafeMutableRawPointer, mask: Int, base: UInt64, span: UInt64, host: UnsafeMutableRawPointer) {
            self.table = table
            self.mask = mask
            self.base = base
            self.span = span
            self.host = host
        }

        /// Walks `count` available entries from `entries` (the run never wraps) while each
        /// names one direct, non-empty descriptor whose buffer lies in the window: three
        /// loads and the checks a chain, then `body(i, head, segment, writableBit)`. Stops
        /// at the first that is anything else (left for the general path, which names what
        /// is wrong with it); returns how many it walked.
        @inlinable @inline(__always)
        func walk(entries: UnsafeMutableRawPointer, count: Int, limit: UInt32,
                  _ body: (Int, Int, Segment, UInt64) -> Void) -> Int {
            let table = self.table
            let mask = self.mask
            let base = self.base
            let span = self.span
            let host = self.host
            var i = 0
            while i < count {
                let head = Int(entries.loadLE16(i &* 2))
                // Split queue sizes are powers of two: in range means at most the mask.
                guard head <= mask else { break }
                let d = table + head &* 16
                let flags = d.loadLE16(12)
                let length = d.loadLE32(8)
                guard flags & (DescriptorFlags.next | DescriptorFlags.indirect) == 0 else { break }
                let address = d.loadLE64(0)
                let offset = address &- base
                // Not empty and inside the window, in one sum.
                guard GuestMemory.fits(offset: offset, length: UInt64(length), span: span) else { break }
                #if VQB_GATE_INJECT || VQB_GATE_INJECT_INSTRUCTIONS
                guard length <= limit else { break }
                #endif
                // VIRTQ_DESC_F_WRITE is bit 1: the direction as a 0/1 word, without a branch.
                let writable = UInt64(flags & DescriptorFlags.write) &>> 1
                body(i, head, Segment(host: host + Int(truncatingIfNeeded: offset), address: address, length: length,
                                      writableBit: writable), writable)
                i &+= 1
            }
            return i
        }
    }

    /// The gate's injected build refuses long single buffers, so an instruction count can rise.
    @inlinable var lengthLimit: UInt32 {
        #if VQB_GATE_INJECT || VQB_GATE_INJECT_INSTRUCTIONS
        return injectedLengthLimit
        #else
        return UInt32.max
        #endif
    }

    /// One contiguous run, apart from everything else the half holds, so the loop has the
    /// registers to itself: three loads, the checks and six stores a chain. `entries` is the
    /// first available-ring entry of the run; the run never wraps.
    @usableFromInline @inline(never)
    static func popSingleRun(_ run: SingleRun, entries: UnsafeMutableRawPointer, count: Int, chains: UnsafeMutablePointer<Chain>,
                             segments: UnsafeMutablePointer<Segment>, firstSegment: Int, limit: UInt32) -> Int {
        popSingleRunBody(run, entries: entries, count: count, chains: chains, segments: segments, firstSegment: firstSegment, limit: limit)
    }

    /// The run's body: out of line for bursts, inline for a burst of one or two (where a
    /// call's setup would cost more than the loop).
    @inlinable @inline(__always)
    static func popSingleRunBody(_ run: SingleRun, entries: UnsafeMutableRawPointer, count: Int, chains: UnsafeMutablePointer<Chain>,
                                 segments: UnsafeMutablePointer<Segment>, firstSegment: Int, limit: UInt32) -> Int {
        run.walk(entries: entries, count: count, limit: limit) { i, head, segment, writable in
            segments[i] = segment
            chains[i] = Chain(single: UInt16(truncatingIfNeeded: head), length: segment.length, writableBit: writable,
                              firstSegment: firstSegment &+ i)
        }
    }

    /// The chain at `head` when it is one direct, non-empty descriptor, its buffer
    /// translated through the device's memory; nil for anything else.
    @inlinable @inline(__always)
    mutating func popTranslatedSingle(head: UInt16, into segment: UnsafeMutablePointer<Segment>,
                                      firstSegment: Int) throws(VirtqueueError) -> Chain? {
        let d = descriptors + Int(head) &* 16
        let word = d.loadLE64(8)  // len | flags << 32 | next << 48
        let flags = UInt16(truncatingIfNeeded: word &>> 32)
        let length = UInt32(truncatingIfNeeded: word)
        guard flags & (DescriptorFlags.next | DescriptorFlags.indirect) == 0, length != 0 else { return nil }
        let address = d.loadLE64(0)
        let writable = flags & DescriptorFlags.write != 0
        let host: UnsafeMutableRawPointer
        do {
            host = try memory.translate(address, length: length, deviceWrites: writable)
        } catch {
            throw .bufferOutsideMemory(queue: queueIndex, head: head, gpa: address, length: length, cause: error)
        }
        #if VQB_GATE_INJECT || VQB_GATE_INJECT_INSTRUCTIONS
        if length > injectedLengthLimit { throw .chainTooLong(queue: queueIndex, head: head) }
        #endif
        segment.pointee = Segment(host: host, address: address, length: length, isWritable: writable)
        return Chain(single: head, length: length, writable: writable, firstSegment: firstSegment)
    }

    @inlinable
    mutating func readChain(head: UInt16, firstSegment: Int) throws(VirtqueueError) -> Chain {
        guard head < size else {
            throw .descriptorIndexOutOfRange(queue: queueIndex, index: UInt32(head), queueSize: queueSizeInt)
        }
        #if VQB_GATE_INJECT || VQB_GATE_INJECT_INSTRUCTIONS
        let first = descriptors + Int(head) &* 16
        if first.loadLE32(8) > injectedLengthLimit, first.loadLE16(12) & (DescriptorFlags.next | DescriptorFlags.indirect) == 0 {
            throw .chainTooLong(queue: queueIndex, head: head)
        }
        #endif
        return try readLongChain(head: head, firstSegment: firstSegment)
    }

    @inlinable @inline(never)
    mutating func readLongChain(head: UInt16, firstSegment: Int) throws(VirtqueueError) -> Chain {
        var walk = ChainWalk(head: head)
        let into = segmentStore + firstSegment
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
                try readIndirectTable(address: address, length: length, walk: &walk, into: into)
                break
            }
            try addSegment(address: address, length: length, writable: flags & DescriptorFlags.write != 0, walk: &walk, into: into)
            guard flags & DescriptorFlags.next != 0 else { break }
            index = d.loadLE16(14)
            guard index < size else {
                throw .descriptorIndexOutOfRange(queue: queueIndex, index: UInt32(index), queueSize: queueSizeInt)
            }
        }
        return walk.chain(id: head, firstSegment: firstSegment)
    }

    /// §2.7.5.3: a table of len/16 descriptors, chained by `next` inside the table, no nesting.
    @inlinable
    mutating func readIndirectTable(address: UInt64, length: UInt32, walk: inout ChainWalk,
                                    into: UnsafeMutablePointer<Segment>) throws(VirtqueueError) {
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
                           writable: flags & DescriptorFlags.write != 0, walk: &walk, into: into)
            guard flags & DescriptorFlags.next != 0 else { return }
            let successor = Int(d.loadLE16(14))
            guard successor < entries else {
                throw .descriptorIndexOutOfRange(queue: queueIndex, index: UInt32(successor), queueSize: entries)
            }
            i = successor
        }
    }

    @inlinable @inline(__always)
    mutating func addSegment(address: UInt64, length: UInt32, writable: Bool, walk: inout ChainWalk,
                             into: UnsafeMutablePointer<Segment>) throws(VirtqueueError) {
        try walk.add(address: address, length: length, writable: writable, memory: &memory, into: into,
                     queue: queueIndex, queueSize: queueSizeInt)
    }

    // MARK: - Used ring

    /// Writes one used entry (not yet visible: `publishUsed()` makes a batch visible).
    @inlinable @inline(__always)
    public mutating func pushUsed(id: UInt16, length: UInt32) {
        writeUsedEntry(used, Int(usedIndex & mask), id: id, length: length)
        usedIndex &+= 1
    }

    /// One used entry: id and len in one 8-byte store.
    @inlinable @inline(__always)
    func writeUsedEntry(_ ring: UnsafeMutableRawPointer, _ slot: Int, id: UInt16, length: UInt32) {
        ring.storeLE64(UInt64(id) | UInt64(length) &<< 32, SplitLayout.usedEntryOffset(slot))
    }

    /// Marks a burst of chains used, chain `i` with `length(i)` bytes written (not visible
    /// until `publishUsed()`). With IN_ORDER, one entry stands for the whole burst (§2.7.8),
    /// in the slot of its last chain with that chain's id and length.
    @inlinable @inline(__always)
    public mutating func pushUsedBurst(_ chains: UnsafePointer<Chain>, count: Int, length: (Int) -> UInt32) {
        guard count > 0 else { return }
        let ring = used
        var index = usedIndex
        if inOrder {
            // The shortcut is exact only when every earlier chain's length is what a driver
            // assumes for it (its whole writable length); otherwise write every entry.
            var implied = true
            for i in 0..<(count &- 1) where length(i) != chains[i].writableBytes { implied = false; break }
            if implied {
                pushUsedInOrder(lastId: chains[count &- 1].id, length: length(count &- 1), count: UInt16(truncatingIfNeeded: count))
                return
            }
        }
        for i in 0..<count {
            writeUsedEntry(ring, Int(index & mask), id: chains[i].id, length: length(i))
            index &+= 1
        }
        usedIndex = index
    }

    /// IN_ORDER (§2.7.8): `count` buffers used in order, reported by one entry — in the slot
    /// of the last of them, with its id — and used.idx advanced by `count`.
    @inlinable
    public mutating func pushUsedInOrder(lastId: UInt16, length: UInt32, count: UInt16) {
        guard count > 0 else { return }
        writeUsedEntry(used, Int((usedIndex &+ count &- 1) & mask), id: lastId, length: length)
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

    /// Records the first broken rule: the queue refuses to pop until reset.
    @inlinable @inline(never)
    mutating func markBroken(_ error: VirtqueueError) {
        brokenCause = error
        isBroken = true
    }

    /// RING_RESET / device reset of this queue: back to the initial state, not broken.
    public mutating func reset(to state: SplitQueueState = .init()) throws(VirtqueueError) {
        try state.validate(queue: queueIndex, queueSize: queueSizeInt)
        lastAvailableIndex = state.lastAvailableIndex
        availableIndexShadow = state.lastAvailableIndex
        usedIndex = state.usedIndex
        usedAtLastInterruptCheck = state.usedIndex
        lastSegmentCount = 0
        brokenCause = nil
        isBroken = false
    }
}
