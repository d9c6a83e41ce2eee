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

    /// VIRTIO_F_IN_ORDER: a burst is reported by one used descriptor.
    @usableFromInline let inOrder: Bool
    /// Segment store: the segments of every chain of the last burst, back to back (twice
    /// the queue size, so a burst always has room for one more chain of the longest kind).
    @usableFromInline let segmentStore: UnsafeMutablePointer<Segment>
    @usableFromInline var lastFirstSegment: Int = 0
    @usableFromInline var lastSegmentCount: Int = 0
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
        inOrder = features.contains(.inOrder)
        storage = HalfStorage(bytes: MemoryLayout<Segment>.stride * 2 * layout.queueSize)
        segmentStore = storage.base.bindMemory(to: Segment.self, capacity: 2 * layout.queueSize)
        nextAvailable = state.lastAvailableIndex
        availableWrap = state.availableWrapCounter
        nextUsed = state.usedIndex
        usedWrap = state.usedWrapCounter
    }

    public var brokenBy: VirtqueueError? { brokenCause }

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

    /// Pops up to `maximum` available chains into `chains`; returns how many. Position and
    /// wrap counter stay in registers and are written back once; a descriptor is available
    /// when its AVAIL/USED bits equal this lap's pattern (one compare). Each chain's
    /// segments are in `segments(of:)` until the next pop. A broken rule met on the
    /// burst's first chain marks the queue broken and is thrown; met later, the burst
    /// ends before that chain (which the next call meets first).
    @inlinable
    public mutating func popBurst(into chains: UnsafeMutablePointer<Chain>, maximum: Int) throws(VirtqueueError) -> Int {
        if isBroken { throw .queueBroken(queue: queueIndex, cause: brokenCause!) }
        var popped = 0
        var fill = 0
        while popped < maximum {
            // Runs of one-descriptor chains inside the direct window, in registers.
            let run = popSingles(count: maximum &- popped, chains: chains + popped,
                                 segments: segmentStore + fill, firstSegment: fill)
            popped &+= run
            fill &+= run
            guard popped < maximum else { break }
            // Anything else, the general way, then back to the fast run.
            let (n, segments) = popGeneral(into: chains + popped, count: maximum &- popped, fill: fill, first: popped == 0)
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
    /// `publishUsed()`); returns how many. When every chain popped so far is used (the used
    /// position is the available one), runs of one direct descriptor in the direct window
    /// are served where they lie: each descriptor is read once, handed to `serve` as a
    /// segment on the stack, and overwritten by its used descriptor, so the device writes
    /// the lines it read and no chain or segment is stored. The batch's first used
    /// descriptor keeps its flags back for `publishUsed()`. Under IN_ORDER the run writes
    /// one used descriptor when the lengths allow (`serveSinglesInOrder`). Anything else
    /// pops into `buffers` and is pushed as a burst. A broken rule met on the burst's first
    /// chain marks the queue broken and is thrown; met after chains were served, the burst
    /// ends before it.
    @inlinable @inline(__always)
    public mutating func serveBurst(_ buffers: DeviceBurstBuffers, maximum: Int,
                                    _ serve: (Chain, UnsafeBufferPointer<Segment>) -> UInt32) throws(VirtqueueError) -> Int {
        if !isBroken && maximum > 0 && nextUsed == nextAvailable && usedWrap == availableWrap {
            let served = inOrder ? serveSinglesInOrder(buffers, count: min(maximum, buffers.capacity), serve)
                                 : serveSingles(count: maximum, serve)
            if served > 0 { return served }
        }
        return try popServePush(buffers, maximum: maximum, serve)
    }

    /// IN_ORDER (§2.8.9): single chains served in place from our position, their lengths
    /// kept in `buffers` and nothing written until the run ends; then one used descriptor
    /// for the run (in its first slot, with its last buffer's id, skipping the run) when
    /// every earlier chain's length is its whole writable length, else one each. The device
    /// then writes one descriptor's line per run, not every line it read.
    @inlinable @inline(__always)
    mutating func serveSinglesInOrder(_ buffers: DeviceBurstBuffers, count: Int,
                                      _ serve: (Chain, UnsafeBufferPointer<Segment>) -> UInt32) -> Int {
        guard let window = inPlaceWindow else { return 0 }
        let ring = descriptors
        let limit = Int(size)
        let lengths = buffers.lengths
        var at = Int(nextAvailable)
        var wrap = availableWrap
        var done = 0
        var impliedSoFar = true
        var impliedBeforeLast = true
        var lastId: UInt16 = 0
        while done < count {
            let pattern = wrap ? DescriptorFlags.available : DescriptorFlags.used
            let stop = min(count &- done, limit &- at)
            var i = 0
            while i < stop {
                guard let served = Self.serveInPlace(ring + (at &+ i) &* 16, pattern: pattern, window, serve) else { break }
                lengths[done &+ i] = served.written
                // The chain's writable bytes: its length when VIRTQ_DESC_F_WRITE is set.
                let writable = served.flags & DescriptorFlags.write != 0 ? served.length : 0
                impliedBeforeLast = impliedSoFar
                impliedSoFar = impliedSoFar && served.written == writable
                lastId = served.id
                i &+= 1
            }
            done &+= i
            at &+= i
            if at == limit {
                at = 0
                wrap.toggle()
            }
            if i < stop { break }
        }
        guard done > 0 else { return 0 }
        // Our position moves past the run; the used descriptors go from the run's start
        // (nextUsed), which the available position equalled.
        nextAvailable = UInt16(truncatingIfNeeded: at)
        availableWrap = wrap
        if impliedBeforeLast {
            pushUsedInOrder(lastId: lastId, length: lengths[done &- 1], ringDescriptors: UInt16(truncatingIfNeeded: done))
        } else {
            for k in 0..<done {
                // Each id from its slot, read before this run's used descriptors overwrite it.
                let id = (ring + Int(nextUsed) &* 16).loadLE16(12)
                pushUsed(id: id, length: lengths[k], ringDescriptors: 1)
            }
        }
        return done
    }

    /// Single chains served in place from our position (used position = available
    /// position), across the end of the lap; returns how many.
    @inlinable @inline(__always)
    mutating func serveSingles(count: Int, _ serve: (Chain, UnsafeBufferPointer<Segment>) -> UInt32) -> Int {
        guard let window = inPlaceWindow else { return 0 }
        let ring = descriptors
        let limit = Int(size)
        var at = Int(nextAvailable)
        var wrap = availableWrap
        var done = 0
        // The batch's first used descriptor (when none is pending) keeps its flags back.
        var holdFirst = pendingUsed < 0
        while done < count {
            let pattern = wrap ? DescriptorFlags.available : DescriptorFlags.used
            let usedFlags: UInt16 = wrap ? DescriptorFlags.available | DescriptorFlags.used : 0
            let stop = min(count &- done, limit &- at)
            var i = 0
            if holdFirst, stop > 0 {
                let d = ring + at &* 16
                guard let served = Self.serveInPlace(d, pattern: pattern, window, serve) else { break }
                // len now (the id is the one the driver wrote in this slot), flags at
                // publishUsed().
                d.storeLE32(served.written, 8)
                pendingUsed = at
                pendingUsedFlags = usedFlags
                holdFirst = false
                i = 1
            }
            while i < stop {
                let d = ring + (at &+ i) &* 16
                guard let served = Self.serveInPlace(d, pattern: pattern, window, serve) else { break }
                // The rest whole: len and the used flags (the id is already the buffer's:
                // the driver wrote it in this slot). The driver reads these only after the
                // batch's first flags, released in publishUsed().
                d.storeLE32(served.written, 8)
                d.storeLE16(usedFlags, PackedLayout.flagsOffset)
                i &+= 1
            }
            done &+= i
            at &+= i
            if at == limit {
                at = 0
                wrap.toggle()
            }
            if i < stop { break }
        }
        nextAvailable = UInt16(truncatingIfNeeded: at)
        nextUsed = nextAvailable
        availableWrap = wrap
        usedWrap = wrap
        usedSinceInterruptCheck &+= UInt16(truncatingIfNeeded: done)
        return done
    }

    /// What serving in place reads buffers through: the direct window and the length limit.
    @usableFromInline
    struct InPlaceWindow {
        @usableFromInline let host: UnsafeMutableRawPointer
        @usableFromInline let base: UInt64
        @usableFromInline let span: UInt64
        @usableFromInline let lengthLimit: UInt32
        @inlinable init(host: UnsafeMutableRawPointer, base: UInt64, span: UInt64, lengthLimit: UInt32) {
            self.host = host
            self.base = base
            self.span = span
            self.lengthLimit = lengthLimit
        }
    }

    /// The memory's direct window for serving in place; nil when it has none.
    @inlinable
    var inPlaceWindow: InPlaceWindow? {
        let window = memory.directWindow
        guard window.size != 0, let host = window.host else { return nil }
        #if VQB_GATE_INJECT || VQB_GATE_INJECT_INSTRUCTIONS
        let lengthLimit = injectedLengthLimit
        #else
        let lengthLimit = UInt32.max
        #endif
        return InPlaceWindow(host: host, base: window.base, span: window.size, lengthLimit: lengthLimit)
    }

    /// What serving one descriptor in place saw and did.
    @usableFromInline
    struct ServedInPlace {
        @usableFromInline var id: UInt16
        @usableFromInline var flags: UInt16
        @usableFromInline var length: UInt32
        @usableFromInline var written: UInt32
        @inlinable init(id: UInt16, flags: UInt16, length: UInt32, written: UInt32) {
            self.id = id
            self.flags = flags
            self.length = length
            self.written = written
        }
    }

    /// The descriptor at `d` served when it is available in this lap (`pattern`), a lone
    /// direct non-empty one, in the direct window: its id, flags, length and the bytes
    /// `serve` wrote; nil for anything else (left for the general path).
    @inlinable @inline(__always)
    static func serveInPlace(_ d: UnsafeMutableRawPointer, pattern: UInt16, _ window: InPlaceWindow,
                             _ serve: (Chain, UnsafeBufferPointer<Segment>) -> UInt32) -> ServedInPlace? {
        let base = window.base
        let span = window.span
        let mask = DescriptorFlags.available | DescriptorFlags.used | DescriptorFlags.next | DescriptorFlags.indirect
        // acquire: pairs with the driver's release of the head flags (§2.8.21.3); later
        // heads of its batch were stored before that release.
        let flags = d.loadAcquireLE16(PackedLayout.flagsOffset)
        guard flags & mask == pattern else { return nil }
        let length = d.loadLE32(8)
        let address = d.loadLE64(0)
        let offset = address &- base
        guard GuestMemory.fits(offset: offset, length: UInt64(length), span: span) else { return nil }
        #if VQB_GATE_INJECT || VQB_GATE_INJECT_INSTRUCTIONS
        guard length <= window.lengthLimit else { return nil }
        #endif
        let writable = UInt64(flags & DescriptorFlags.write) &>> 1
        var segment = Segment(host: window.host + Int(truncatingIfNeeded: offset), address: address, length: length, writableBit: writable)
        let id = d.loadLE16(12)
        let chain = Chain(single: id, length: length, writableBit: writable, firstSegment: 0)
        let written = withUnsafePointer(to: &segment) { serve(chain, UnsafeBufferPointer(start: $0, count: 1)) }
        return ServedInPlace(id: id, flags: flags, length: length, written: written)
    }

    /// Chains at our position the general way, up to `count`: lone descriptors outside the
    /// direct window (a memory with an IOTLB, a second region), translated one by one, and
    /// at most one longer or indirect chain, which ends the run (the fast path may follow).
    /// Out of line, so the burst's fast path keeps a small frame; a run, so a memory without
    /// a direct window pays one call a burst. Stops at a descriptor not yet available, when
    /// the segment store lacks room for the longest chain, and before a descriptor that breaks
    /// a rule: met as the burst's `first`, the queue is marked broken (the caller hears why);
    /// met later, the next call meets it first. Returns the chains popped and the segments
    /// they filled.
    @inlinable @inline(never)
    mutating func popGeneral(into chains: UnsafeMutablePointer<Chain>, count: Int, fill: Int, first: Bool) -> (Int, Int) {
        var n = 0
        var used = 0
        while n < count, fill &+ used <= queueSizeInt {
            let d = descriptors + Int(nextAvailable) &* 16
            // acquire: pairs with the driver's release of the head flags (§2.8.21.3).
            let flags = d.loadAcquireLE16(PackedLayout.flagsOffset)
            let state = Self.classify(flags, wrap: availableWrap)
            if state == .notYet { break }
            if state == .impossible {
                if first && n == 0 {
                    markBroken(.impossiblePackedFlags(queue: queueIndex, index: nextAvailable, flags: flags, wrapCounter: availableWrap))
                }
                break
            }
            let at = fill &+ used
            var long = false
            do throws(VirtqueueError) {
                if let single = try popTranslatedSingle(flags: flags, into: segmentStore + at, firstSegment: at) {
                    chains[n] = single
                } else {
                    chains[n] = try readChain(headFlags: flags, firstSegment: at)
                    long = true
                }
            } catch {
                if first && n == 0 { markBroken(error) }
                break
            }
            used &+= chains[n].segmentCount
            n &+= 1
            if long { break }
        }
        return (n, used)
    }

    /// Pops consecutive available chains of one direct, non-empty descriptor whose buffer
    /// lies in the memory's direct window, stopping at the first descriptor that is not
    /// available or is anything else (left for the general path, which names what is wrong
    /// with it). A descriptor is available when its AVAIL/USED bits equal this lap's
    /// pattern: one compare. Everything it touches is a local, kept in registers.
    @inlinable @inline(__always)
    mutating func popSingles(count: Int, chains: UnsafeMutablePointer<Chain>,
                             segments: UnsafeMutablePointer<Segment>, firstSegment: Int) -> Int {
        let window = memory.directWindow
        #if VQB_GATE_INJECT || VQB_GATE_INJECT_INSTRUCTIONS
        let lengthLimit = injectedLengthLimit
        #else
        let lengthLimit = UInt32.max
        #endif
        var position = Int(nextAvailable)
        var wrap = availableWrap
        let n = Self.popSingleRun(ring: descriptors, size: Int(size), position: &position, wrap: &wrap, count: count,
                                  base: window.base, span: window.size, host: window.host, lengthLimit: lengthLimit,
                                  chains: chains, segments: segments, firstSegment: firstSegment)
        nextAvailable = UInt16(truncatingIfNeeded: position)
        availableWrap = wrap
        return n
    }

    /// The run itself, apart from everything else the half holds, so the loop has the
    /// registers to itself. Stops at the end of the ring's lap too (the caller goes on).
    @usableFromInline @inline(never)
    static func popSingleRun(ring: UnsafeMutableRawPointer, size: Int, position: inout Int, wrap: inout Bool, count: Int,
                             base: UInt64, span: UInt64, host: UnsafeMutableRawPointer?, lengthLimit: UInt32,
                             chains: UnsafeMutablePointer<Chain>, segments: UnsafeMutablePointer<Segment>,
                             firstSegment: Int) -> Int {
        popSingleRunBody(ring: ring, size: size, position: &position, wrap: &wrap, count: count, base: base, span: span,
                         host: host, lengthLimit: lengthLimit, chains: chains, segments: segments, firstSegment: firstSegment)
    }

    /// The run's body (out of line: inlining it for short bursts cost packed more than it saved).
    @inlinable @inline(__always)
    static func popSingleRunBody(ring: UnsafeMutableRawPointer, size: Int, position: inout Int, wrap: inout Bool, count: Int,
                             base: UInt64, span: UInt64, host: UnsafeMutableRawPointer?, lengthLimit: UInt32,
                             chains: UnsafeMutablePointer<Chain>, segments: UnsafeMutablePointer<Segment>,
                             firstSegment: Int) -> Int {
        guard span != 0, let hostBase = host else { return 0 }
        var at = position
        var done = 0
        while done < count {
            // This lap: a descriptor is available when its AVAIL/USED bits are the lap's
            // pattern and it is a lone direct descriptor (no NEXT, no INDIRECT).
            let pattern = wrap ? DescriptorFlags.available : DescriptorFlags.used
            let mask = DescriptorFlags.available | DescriptorFlags.used | DescriptorFlags.next | DescriptorFlags.indirect
            let stop = min(count &- done, size &- at)
            var i = 0
            while i < stop {
                let d = ring + (at &+ i) &* 16
                // acquire: pairs with the driver's release of the head flags (§2.8.21.3);
                // later heads of its batch were stored before that release.
                let flags = d.loadAcquireLE16(PackedLayout.flagsOffset)
                guard flags & mask == pattern else { break }
                let word = d.loadLE64(8)  // len | id << 32 | flags << 48
                let length = UInt32(truncatingIfNeeded: word)
                let address = d.loadLE64(0)
                let offset = address &- base
                guard GuestMemory.fits(offset: offset, length: UInt64(length), span: span) else { break }
                #if VQB_GATE_INJECT || VQB_GATE_INJECT_INSTRUCTIONS
                guard length <= lengthLimit else { break }
                #endif
                // VIRTQ_DESC_F_WRITE is bit 1: the direction as a 0/1 word, without a branch.
                let writable = UInt64(flags & DescriptorFlags.write) &>> 1
                segments[done &+ i] = Segment(host: hostBase + Int(truncatingIfNeeded: offset), address: address,
                                              length: length, writableBit: writable)
                chains[done &+ i] = Chain(single: UInt16(truncatingIfNeeded: word &>> 32), length: length, writableBit: writable,
                                          firstSegment: firstSegment &+ done &+ i)
                i &+= 1
            }
            done &+= i
            at &+= i
            if at == size {
                at = 0
                wrap.toggle()
            }
            if i < stop { break }
        }
        position = at
        return done
    }

    /// The available descriptor at our position when it is a lone direct, non-empty one, its
    /// buffer translated through the device's memory (the position moves past it); nil for
    /// anything else.
    @inlinable @inline(__always)
    mutating func popTranslatedSingle(flags: UInt16, into segment: UnsafeMutablePointer<Segment>,
                                      firstSegment: Int) throws(VirtqueueError) -> Chain? {
        guard flags & (DescriptorFlags.next | DescriptorFlags.indirect) == 0 else { return nil }
        let d = descriptors + Int(nextAvailable) &* 16
        let word = d.loadLE64(8)  // len | id << 32 | flags << 48
        let length = UInt32(truncatingIfNeeded: word)
        guard length != 0 else { return nil }
        let address = d.loadLE64(0)
        let writable = flags & DescriptorFlags.write != 0
        let host: UnsafeMutableRawPointer
        do {
            host = try memory.translate(address, length: length, deviceWrites: writable)
        } catch {
            throw .bufferOutsideMemory(queue: queueIndex, head: nextAvailable, gpa: address, length: length, cause: error)
        }
        #if VQB_GATE_INJECT || VQB_GATE_INJECT_INSTRUCTIONS
        if length > injectedLengthLimit { throw .chainTooLong(queue: queueIndex, head: nextAvailable) }
        #endif
        segment.pointee = Segment(host: host, address: address, length: length, isWritable: writable)
        nextAvailable &+= 1
        if nextAvailable == size {
            nextAvailable = 0
            availableWrap.toggle()
        }
        return Chain(single: UInt16(truncatingIfNeeded: word &>> 32), length: length, writable: writable, firstSegment: firstSegment)
    }

    @inlinable @inline(never)
    mutating func readChain(headFlags: UInt16, firstSegment: Int) throws(VirtqueueError) -> Chain {
        let into = segmentStore + firstSegment
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
                try readIndirectTable(address: address, length: length, walk: &walk, into: into)
                break
            }
            try addSegment(address: address, length: length, writable: flags & DescriptorFlags.write != 0, walk: &walk, into: into)
            if flags & DescriptorFlags.next == 0 { break }
        }
        nextAvailable = position
        availableWrap = wrap
        return walk.chain(id: id, firstSegment: firstSegment)
    }

    /// §2.8.19: an indirect table of len/16 packed descriptors, read in order, no nesting.
    @inlinable
    mutating func readIndirectTable(address: UInt64, length: UInt32, walk: inout ChainWalk,
                                    into: UnsafeMutablePointer<Segment>) throws(VirtqueueError) {
        let head = walk.head
        let table = try walk.indirectTable(address: address, length: length, memory: &memory, queue: queueIndex)
        for i in 0..<Int(length / 16) {
            let d = table + i &* 16
            let flags = d.loadLE16(14)
            guard flags & DescriptorFlags.indirect == 0 else { throw .nestedIndirect(queue: queueIndex, head: head) }
            try addSegment(address: d.loadLE64(0), length: d.loadLE32(8),
                           writable: flags & DescriptorFlags.write != 0, walk: &walk, into: into)
        }
    }

    @inlinable @inline(__always)
    mutating func addSegment(address: UInt64, length: UInt32, writable: Bool, walk: inout ChainWalk,
                             into: UnsafeMutablePointer<Segment>) throws(VirtqueueError) {
        try walk.add(address: address, length: length, writable: writable, memory: &memory, into: into,
                     queue: queueIndex, queueSize: queueSizeInt)
    }

    // MARK: - Used descriptors

    /// Marks a chain used: one used descriptor at our used position, then skip the chain's
    /// ring descriptors (§2.8.7). Not visible until `publishUsed()`.
    @inlinable @inline(__always)
    public mutating func pushUsed(id: UInt16, length: UInt32, ringDescriptors: UInt16) {
        let flags: UInt16 = usedWrap ? DescriptorFlags.available | DescriptorFlags.used : 0
        writeUsed(descriptors + Int(nextUsed) &* 16, position: nextUsed, id: id, length: length, flags: flags)
        nextUsed &+= ringDescriptors
        if nextUsed >= size {
            nextUsed &-= size
            usedWrap.toggle()
        }
        usedSinceInterruptCheck &+= ringDescriptors
    }

    /// One used descriptor. The batch's first keeps its flags back for `publishUsed()`; the
    /// driver reads used descriptors in order and stops at that one, so the rest are written
    /// whole now: len, id and flags in one 8-byte store.
    @inlinable @inline(__always)
    mutating func writeUsed(_ d: UnsafeMutableRawPointer, position: UInt16, id: UInt16, length: UInt32, flags: UInt16) {
        if pendingUsed < 0 {
            d.storeLE32(length, 8)
            d.storeLE16(id, 12)
            pendingUsed = Int(position)
            pendingUsedFlags = flags
        } else {
            d.storeLE64(UInt64(length) | UInt64(id) &<< 32 | UInt64(flags) &<< 48, 8)
        }
    }

    /// IN_ORDER (§2.8.9): one used descriptor, with the last buffer's id, for a batch whose
    /// chains occupy `ringDescriptors` slots in total.
    @inlinable
    public mutating func pushUsedInOrder(lastId: UInt16, length: UInt32, ringDescriptors: UInt16) {
        pushUsed(id: lastId, length: length, ringDescriptors: ringDescriptors)
    }

    /// Marks a burst of chains used, chain `i` with `length(i)` bytes written (not visible
    /// until `publishUsed()`). With IN_ORDER, one used descriptor stands for the burst
    /// (§2.8.9) when every earlier chain's length is what the driver then assumes (its
    /// writable bytes): the device writes one descriptor's line per burst, not one per chain.
    @inlinable @inline(__always)
    public mutating func pushUsedBurst(_ chains: UnsafePointer<Chain>, count: Int, length: (Int) -> UInt32) {
        guard count > 0 else { return }
        if inOrder {
            var implied = true
            var slots = 0
            for i in 0..<(count &- 1) {
                if length(i) != chains[i].writableBytes { implied = false; break }
                slots &+= Int(chains[i].ringDescriptors)
            }
            if implied {
                let last = chains[count &- 1]
                pushUsedInOrder(lastId: last.id, length: length(count &- 1),
                                ringDescriptors: UInt16(truncatingIfNeeded: slots &+ Int(last.ringDescriptors)))
                return
            }
        }
        let ring = descriptors
        let limit = size
        var position = nextUsed
        var wrap = usedWrap
        var flags: UInt16 = wrap ? DescriptorFlags.available | DescriptorFlags.used : 0
        var slots: UInt16 = 0
        var i = 0
        @inline(__always) func advance(_ chain: Chain) {
            position &+= chain.ringDescriptors
            slots &+= chain.ringDescriptors
            if position >= limit {
                position &-= limit
                wrap.toggle()
                flags = wrap ? DescriptorFlags.available | DescriptorFlags.used : 0
            }
        }
        if pendingUsed < 0 {
            // The batch's first used descriptor: its flags wait for publishUsed().
            let chain = chains[0]
            writeUsed(ring + Int(position) &* 16, position: position, id: chain.id, length: length(0), flags: flags)
            advance(chain)
            i = 1
        }
        while i < count {
            // The rest whole: len, id and flags in one store.
            let chain = chains[i]
            (ring + Int(position) &* 16).storeLE64(UInt64(length(i)) | UInt64(chain.id) &<< 32 | UInt64(flags) &<< 48, 8)
            advance(chain)
            i &+= 1
        }
        nextUsed = position
        usedWrap = wrap
        usedSinceInterruptCheck &+= slots
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

    /// Records the first broken rule: the queue refuses to pop until reset.
    @inlinable @inline(never)
    mutating func markBroken(_ error: VirtqueueError) {
        brokenCause = error
        isBroken = true
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
        lastSegmentCount = 0
        brokenCause = nil
        isBroken = false
    }
}
