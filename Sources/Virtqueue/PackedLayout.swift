// Packed virtqueue layout (virtio 1.2 §2.8): one ring of 16-byte descriptors and two 4-byte
// event suppression structures, little-endian. The suppression structures sit on their own
// cache lines so the driver's and the device's writes never share one.

/// Byte offsets of a packed ring of `queueSize` descriptors laid out contiguously.
public struct PackedLayout: Sendable, Equatable {
    public let queueSize: Int

    public static let maxQueueSize = 32768
    public static let descriptorSize = 16
    /// §2.8.10.1: descriptor ring 16, both event suppression structures 4.
    public static let descriptorRingAlignment = 16
    public static let eventSuppressionAlignment = 4
    static let cacheLine = 64

    public init(queueSize: Int, queue: UInt16 = 0) throws(VirtqueueError) {
        guard queueSize > 0, queueSize <= Self.maxQueueSize else {
            throw .invalidQueueSize(queue: queue, size: queueSize, layout: "packed")
        }
        self.queueSize = queueSize
    }

    public var descriptorRingOffset: Int { 0 }
    public var descriptorRingSize: Int { Self.descriptorSize * queueSize }
    /// Driver event suppression (written by the driver, read by the device).
    public var driverEventOffset: Int { (descriptorRingSize + Self.cacheLine - 1) & ~(Self.cacheLine - 1) }
    /// Device event suppression (written by the device, read by the driver).
    public var deviceEventOffset: Int { driverEventOffset + Self.cacheLine }
    public static let eventSuppressionSize = 4
    public var totalSize: Int { deviceEventOffset + Self.eventSuppressionSize }

    // Field offsets inside a descriptor (§2.8.13 struct pvirtq_desc).
    public static let addressOffset = 0
    public static let lengthOffset = 8
    public static let idOffset = 12
    public static let flagsOffset = 14
    // Field offsets inside an event suppression structure (§2.8.14 struct pvirtq_event_suppress).
    public static let eventOffsetWrapOffset = 0
    public static let eventFlagsOffset = 2

    public func addresses(at base: UInt64) -> RingAddresses {
        RingAddresses(descriptorArea: base + UInt64(descriptorRingOffset),
                      driverArea: base + UInt64(driverEventOffset),
                      deviceArea: base + UInt64(deviceEventOffset))
    }
}
