// The verbs both layouts share, so the hot loop (post → kick decision → pop → push used →
// interrupt decision → reclaim) is written once and specialised for each layout at
// compile time. Protocols used only as generic constraints, never as existentials.

/// What a driver half does, split or packed.
public protocol VirtqueueDriverHalf: SendableMetatype {
    var queueSize: Int { get }
    var freeDescriptors: Int { get }
    var buffersInFlight: Int { get }
    var notificationData: NotificationData { get }
    mutating func post(_ buffer: Buffer) throws(VirtqueueError) -> UInt16
    /// Posts up to `count` single-descriptor chains (`buffer(i)`); returns how many.
    mutating func postBurst(count: Int, _ buffer: (Int) -> Buffer) -> Int
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
