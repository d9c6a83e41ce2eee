// How the device half reaches memory: every address it reads from the ring goes through a
// DeviceMemory, a generic parameter so the translation specialises into the hot loop.
// GuestMemory is the identity case (IOVA = GPA); mediators add an IOTLB or a bounce buffer.

import VirtioMemory

/// Translates a device-visible address range into host memory, or says why it cannot.
public protocol DeviceMemory: SendableMetatype {
    /// Host pointer for `[address, address + length)`; `length` is never 0.
    mutating func translate(_ address: UInt64, length: UInt32, deviceWrites: Bool) throws(MemoryError) -> UnsafeMutableRawPointer
    /// A range that translates by a fixed offset for reads and writes alike, checked inline
    /// by the device halves' bursts before they call `translate` (empty when there is none).
    var directWindow: DirectWindow { get }
}

/// Addresses `[base, base + size)` are host memory at `host + (address - base)`.
public struct DirectWindow: @unchecked Sendable {
    public var base: UInt64
    public var size: UInt64
    public var host: UnsafeMutableRawPointer?
    @inlinable
    public init(base: UInt64, size: UInt64, host: UnsafeMutableRawPointer?) {
        self.base = base
        self.size = host == nil ? 0 : size
        self.host = host
    }
    /// No window: every address goes through `translate`.
    public static var none: DirectWindow { DirectWindow(base: 0, size: 0, host: nil) }
}

extension DeviceMemory {
    @inlinable
    public var directWindow: DirectWindow { .none }
}

extension GuestMemory: DeviceMemory {
    @inlinable @inline(__always)
    public mutating func translate(_ address: UInt64, length: UInt32, deviceWrites: Bool) throws(MemoryError) -> UnsafeMutableRawPointer {
        try translate(address, length: UInt64(length))
    }

    /// The first region: what GuestMemory's own fast path covers.
    @inlinable
    public var directWindow: DirectWindow {
        let w = firstRegionWindow
        return DirectWindow(base: w.gpa, size: w.size, host: w.host)
    }
}

/// One buffer of a chain the device popped, translated into host memory. Three words, so
/// the device half writes one in three stores.
public struct Segment: @unchecked Sendable, Equatable {
    /// Host address of the buffer; nil for a zero-length descriptor.
    public var host: UnsafeMutableRawPointer?
    /// The descriptor's address (GPA or IOVA) as the driver wrote it.
    public var address: UInt64
    /// len | device-writable << 32.
    @usableFromInline var lengthAndDirection: UInt64

    public var length: UInt32 { UInt32(truncatingIfNeeded: lengthAndDirection) }
    /// Device-writable (VIRTQ_DESC_F_WRITE).
    public var isWritable: Bool { lengthAndDirection &>> 32 != 0 }

    /// The direction given as 0 (device-readable) or 1 (device-writable).
    @inlinable @inline(__always)
    init(host: UnsafeMutableRawPointer?, address: UInt64, length: UInt32, writableBit w: UInt64) {
        self.host = host
        self.address = address
        self.lengthAndDirection = UInt64(length) | w &<< 32
    }

    @inlinable @inline(__always)
    public init(host: UnsafeMutableRawPointer?, address: UInt64, length: UInt32, isWritable: Bool) {
        self.host = host
        self.address = address
        self.lengthAndDirection = UInt64(length) | (isWritable ? 1 &<< 32 : 0)
    }
}

/// A chain the device popped: its buffer id and what its segments add up to. Its segments
/// are in the device half's segment store (`segments(of:)`) until the next pop. Three
/// words, so a burst of them costs three stores a chain.
public struct Chain: Sendable, Equatable {
    /// id | ringDescriptors << 16 | segmentCount << 32 | readableCount << 48.
    @usableFromInline var shape: UInt64
    /// readableBytes | writableBytes << 32.
    @usableFromInline var bytes: UInt64
    /// firstSegment | isIndirect << 32.
    @usableFromInline var place: UInt64

    /// The id to return in the used entry (split: head index; packed: buffer id).
    @inlinable public var id: UInt16 { UInt16(truncatingIfNeeded: shape) }
    /// Ring slots the chain occupies (packed: how far the device skips; split: 1 + next links).
    @inlinable public var ringDescriptors: UInt16 { UInt16(truncatingIfNeeded: shape &>> 16) }
    @inlinable public var segmentCount: Int { Int(UInt16(truncatingIfNeeded: shape &>> 32)) }
    /// Segments `0..<readableCount` are device-readable, the rest device-writable.
    @inlinable public var readableCount: Int { Int(UInt16(truncatingIfNeeded: shape &>> 48)) }
    @inlinable public var readableBytes: UInt32 { UInt32(truncatingIfNeeded: bytes) }
    @inlinable public var writableBytes: UInt32 { UInt32(truncatingIfNeeded: bytes &>> 32) }
    /// Where the chain's segments start in the device half's segment store.
    @inlinable public var firstSegment: UInt32 { UInt32(truncatingIfNeeded: place) }
    /// The chain used an indirect table.
    @inlinable public var isIndirect: Bool { place &>> 32 != 0 }

    @inlinable @inline(__always)
    public init(id: UInt16, ringDescriptors: UInt16, segmentCount: Int, readableCount: Int,
                readableBytes: UInt32, writableBytes: UInt32, isIndirect: Bool, firstSegment: Int = 0) {
        shape = UInt64(id) | UInt64(ringDescriptors) &<< 16 | UInt64(UInt16(truncatingIfNeeded: segmentCount)) &<< 32
            | UInt64(UInt16(truncatingIfNeeded: readableCount)) &<< 48
        bytes = UInt64(readableBytes) | UInt64(writableBytes) &<< 32
        place = UInt64(UInt32(truncatingIfNeeded: firstSegment)) | (isIndirect ? 1 &<< 32 : 0)
    }

    /// A chain of one direct descriptor (the device halves' fast path), its direction given
    /// as 0 (device-readable) or 1.
    @inlinable @inline(__always)
    init(single id: UInt16, length: UInt32, writableBit w: UInt64, firstSegment: Int) {
        // readableCount 1 - w, segmentCount 1, ringDescriptors 1.
        shape = UInt64(id) | (0x1_0001_0001_0000 &- w &<< 48)
        bytes = UInt64(length) &<< (w &<< 5)
        place = UInt64(UInt32(truncatingIfNeeded: firstSegment))
    }

    /// A chain of one direct descriptor.
    @inlinable @inline(__always)
    init(single id: UInt16, length: UInt32, writable: Bool, firstSegment: Int) {
        shape = UInt64(id) | 0x1_0001_0000 | (writable ? 0 : 1 &<< 48)
        bytes = writable ? UInt64(length) &<< 32 : UInt64(length)
        place = UInt64(UInt32(truncatingIfNeeded: firstSegment))
    }
}

/// A buffer the driver posts: its guest address, length and direction.
public struct Buffer: Sendable, Equatable {
    public var address: UInt64
    public var length: UInt32
    /// Device-writable.
    public var isWritable: Bool

    @inlinable
    public init(address: UInt64, length: UInt32, isWritable: Bool = false) {
        self.address = address
        self.length = length
        self.isWritable = isWritable
    }
}

/// A buffer the device returned: the id the driver got when it posted it, and bytes written.
public struct UsedBuffer: Sendable, Equatable {
    public var id: UInt16
    public var length: UInt32
    @inlinable
    public init(id: UInt16, length: UInt32) {
        self.id = id
        self.length = length
    }
}

/// Driver-side memory for indirect tables: one table of `entriesPerTable` descriptors per
/// buffer id, contiguous in guest memory at `gpa`.
public struct IndirectPool: Sendable {
    public var gpa: UInt64
    public var entriesPerTable: Int
    public init(gpa: UInt64, entriesPerTable: Int) {
        self.gpa = gpa
        self.entriesPerTable = entriesPerTable
    }
    public static func bytes(queueSize: Int, entriesPerTable: Int) -> Int { queueSize * entriesPerTable * 16 }
}
