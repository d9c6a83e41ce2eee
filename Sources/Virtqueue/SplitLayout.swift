// Split virtqueue layout (virtio 1.2 §2.7): descriptor table, available ring, used ring,
// little-endian in guest memory. Offsets match Linux's vring_init/vring_size for the same
// alignment (checked against <linux/virtio_ring.h> in the tests).

/// Byte offsets of a split ring of `queueSize` entries laid out contiguously, the used
/// ring aligned to `usedAlignment` (4096 for legacy devices; 64, a cache line, by default).
public struct SplitLayout: Sendable, Equatable {
    public let queueSize: Int
    public let usedAlignment: Int

    public static let maxQueueSize = 32768
    public static let descriptorSize = 16
    /// §2.7: descriptor table 16, available ring 2, used ring 4.
    public static let descriptorTableAlignment = 16
    public static let availableRingAlignment = 2
    public static let usedRingAlignment = 4

    public init(queueSize: Int, usedAlignment: Int = 64, queue: UInt16 = 0) throws(VirtqueueError) {
        guard queueSize > 0, queueSize <= Self.maxQueueSize, queueSize & (queueSize - 1) == 0 else {
            throw .invalidQueueSize(queue: queue, size: queueSize, layout: "split")
        }
        guard usedAlignment >= 4, usedAlignment & (usedAlignment - 1) == 0 else {
            throw .misalignedRingArea(queue: queue, area: "used ring", gpa: 0, alignment: usedAlignment)
        }
        self.queueSize = queueSize
        self.usedAlignment = usedAlignment
    }

    public var descriptorTableOffset: Int { 0 }
    public var descriptorTableSize: Int { Self.descriptorSize * queueSize }
    public var availableRingOffset: Int { descriptorTableSize }
    /// flags, idx, ring[N], used_event
    public var availableRingSize: Int { 6 + 2 * queueSize }
    public var usedRingOffset: Int {
        (availableRingOffset + availableRingSize + usedAlignment - 1) & ~(usedAlignment - 1)
    }
    /// flags, idx, ring[N] of {id, len}, avail_event
    public var usedRingSize: Int { 6 + 8 * queueSize }
    public var totalSize: Int { usedRingOffset + usedRingSize }

    // Field offsets inside the available ring (§2.7.6).
    public static let availableFlagsOffset = 0
    public static let availableIndexOffset = 2
    @inlinable public static func availableEntryOffset(_ i: Int) -> Int { 4 + 2 * i }
    public var usedEventOffset: Int { 4 + 2 * queueSize }

    // Field offsets inside the used ring (§2.7.8).
    public static let usedFlagsOffset = 0
    public static let usedIndexOffset = 2
    @inlinable public static func usedEntryOffset(_ i: Int) -> Int { 4 + 8 * i }
    public var availableEventOffset: Int { 4 + 8 * queueSize }

    /// Guest addresses of the three areas when the ring starts at `base`.
    public func addresses(at base: UInt64) -> RingAddresses {
        RingAddresses(descriptorArea: base + UInt64(descriptorTableOffset),
                      driverArea: base + UInt64(availableRingOffset),
                      deviceArea: base + UInt64(usedRingOffset))
    }
}

/// The three guest (or IO virtual) addresses a queue is configured with (§4.1.4.3
/// queue_desc, queue_driver, queue_device; vDPA `set_vq_address`).
public struct RingAddresses: Sendable, Equatable, Codable {
    /// Split: descriptor table. Packed: descriptor ring.
    public var descriptorArea: UInt64
    /// Split: available ring. Packed: driver event suppression.
    public var driverArea: UInt64
    /// Split: used ring. Packed: device event suppression.
    public var deviceArea: UInt64

    public init(descriptorArea: UInt64, driverArea: UInt64, deviceArea: UInt64) {
        self.descriptorArea = descriptorArea
        self.driverArea = driverArea
        self.deviceArea = deviceArea
    }
}
