// The verbs both layouts share, so the hot loop (post → kick decision → pop → push used →
// interrupt decision → reclaim) is written once and specialised for each layout at
// compile time. Protocols used only as generic constraints, never as existentials.

/// What a driver half does, split or packed.
public protocol VirtqueueDriverHalf: SendableMetatype {
    var queueIndex: UInt16 { get }
    var queueSize: Int { get }
    var freeDescriptors: Int { get }
    var buffersInFlight: Int { get }
    var notificationData: NotificationData { get }
    mutating func post(_ buffer: Buffer) throws(VirtqueueError) -> UInt16
    /// Posts up to `count` single-descriptor chains (`buffer(i)`), telling `posted(i, id)`
    /// each one's id; returns how many (as many as there are free descriptors).
    mutating func postBurst(count: Int, _ buffer: (Int) -> Buffer, posted: (Int, UInt16) -> Void) -> Int
    mutating func post(_ buffers: UnsafeBufferPointer<Buffer>) throws(VirtqueueError) -> UInt16
    mutating func postIndirect(_ buffers: UnsafeBufferPointer<Buffer>) throws(VirtqueueError) -> UInt16
    mutating func publish()
    mutating func kickNeeded() -> Bool
    /// Whether the device has returned buffers not yet reclaimed (no error checks).
    mutating func hasUsed() -> Bool
    mutating func reclaim() throws(VirtqueueError) -> UsedBuffer?
    /// Reclaims up to `maximum` used buffers, each handed to `body`; returns how many.
    mutating func reclaimBurst(maximum: Int, _ body: (UsedBuffer) -> Void) throws(VirtqueueError) -> Int
    mutating func enableInterrupts() -> Bool
    mutating func disableInterrupts()
}

/// What a device half does, split or packed.
public protocol VirtqueueDeviceHalf: SendableMetatype {
    var segments: UnsafeBufferPointer<Segment> { get }
    var brokenBy: VirtqueueError? { get }
    mutating func hasAvailable() -> Bool
    mutating func pop() throws(VirtqueueError) -> Chain?
    /// Pops up to `maximum` chains into `chains`; returns how many.
    mutating func popBurst(into chains: UnsafeMutablePointer<Chain>, maximum: Int) throws(VirtqueueError) -> Int
    /// The segments of a chain of the last burst.
    func segments(of chain: Chain) -> UnsafeBufferPointer<Segment>
    /// Marks a burst used, chain `i` with `length(i)` bytes written (visible at `publishUsed()`).
    mutating func pushUsedBurst(_ chains: UnsafePointer<Chain>, count: Int, length: (Int) -> UInt32)
    /// Pops up to `maximum` chains (at most the buffers' capacity), has `serve` handle each
    /// (it returns the bytes written into the chain's writable segments) and marks them
    /// used; returns how many. The caller publishes (`publishUsed()`) when it will.
    mutating func serveBurst(_ buffers: DeviceBurstBuffers, maximum: Int,
                             _ serve: (Chain, UnsafeBufferPointer<Segment>) -> UInt32) throws(VirtqueueError) -> Int
    /// Marks `chain` used with `length` bytes written (not visible until `publishUsed()`).
    mutating func pushUsed(_ chain: Chain, length: UInt32)
    mutating func publishUsed()
    mutating func interruptNeeded() -> Bool
    mutating func enableKicks() -> Bool
    mutating func disableKicks()
}

extension SplitDriver: VirtqueueDriverHalf {}
extension PackedDriver: VirtqueueDriverHalf {}

extension SplitDevice: VirtqueueDeviceHalf {
    @inlinable @inline(__always)
    public mutating func pushUsed(_ chain: Chain, length: UInt32) {
        pushUsed(id: chain.id, length: length)
    }
}

extension PackedDevice: VirtqueueDeviceHalf {
    @inlinable @inline(__always)
    public mutating func pushUsed(_ chain: Chain, length: UInt32) {
        pushUsed(id: chain.id, length: length, ringDescriptors: chain.ringDescriptors)
    }
}

// The one-descriptor calls, the same for both layouts: thin wrappers over the bursts.

extension VirtqueueDriverHalf {
    /// Posts one single-descriptor chain; returns its id (split: the head index; packed:
    /// the buffer id).
    @inlinable
    public mutating func post(_ buffer: Buffer) throws(VirtqueueError) -> UInt16 {
        guard freeDescriptors > 0 else { throw .queueFull(queue: queueIndex, needed: 1, free: 0) }
        var id: UInt16 = 0
        _ = postBurst(count: 1, { _ in buffer }, posted: { _, posted in id = posted })
        return id
    }

    /// Posts up to `count` single-descriptor chains, chain `i` being `buffer(i)`; returns
    /// how many (as many as there are free descriptors). Not visible until `publish()`.
    @inlinable @inline(__always)
    public mutating func postBurst(count: Int, _ buffer: (Int) -> Buffer) -> Int {
        postBurst(count: count, buffer, posted: { _, _ in })
    }

    /// Reclaims one used buffer, or nil when none is pending. Checks what the device wrote.
    @inlinable
    public mutating func reclaim() throws(VirtqueueError) -> UsedBuffer? {
        var out: UsedBuffer? = nil
        _ = try reclaimBurst(maximum: 1) { out = $0 }
        return out
    }
}

extension VirtqueueDeviceHalf {
    /// Pops the next available chain, or nil when the ring is empty. Any broken rule marks
    /// the queue broken and is thrown; chains already completed stay completable.
    @inlinable
    public mutating func pop() throws(VirtqueueError) -> Chain? {
        var chain = Chain(id: 0, ringDescriptors: 0, segmentCount: 0, readableCount: 0,
                          readableBytes: 0, writableBytes: 0, isIndirect: false)
        return try popBurst(into: &chain, maximum: 1) == 1 ? chain : nil
    }
}
