// How the device half reaches memory: every address it reads from the ring goes through a
// DeviceMemory, a generic parameter so the translation specialises into the hot loop.
// GuestMemory is the identity case (IOVA = GPA); mediators add an IOTLB or a bounce buffer.

import VirtioMemory

/// Translates a device-visible address range into host memory, or says why it cannot.
public protocol DeviceMemory: SendableMetatype {
    /// Host pointer for `[address, address + length)`; `length` is never 0.
    mutating func translate(_ address: UInt64, length: UInt32, deviceWrites: Bool) throws(MemoryError) -> UnsafeMutableRawPointer
}

extension GuestMemory: DeviceMemory {
    @inlinable @inline(__always)
    public mutating func translate(_ address: UInt64, length: UInt32, deviceWrites: Bool) throws(MemoryError) -> UnsafeMutableRawPointer {
        try translate(address, length: UInt64(length))
    }
}

/// One buffer of a chain the device popped, translated into host memory.
public struct Segment: @unchecked Sendable, Equatable {
    /// Host address of the buffer; nil for a zero-length descriptor.
    public var host: UnsafeMutableRawPointer?
    /// The descriptor's address (GPA or IOVA) as the driver wrote it.
    public var address: UInt64
    public var length: UInt32
    /// Device-writable (VIRTQ_DESC_F_WRITE).
    public var isWritable: Bool

    @inlinable
    public init(host: UnsafeMutableRawPointer?, address: UInt64, length: UInt32, isWritable: Bool) {
        self.host = host
        self.address = address
        self.length = length
        self.isWritable = isWritable
    }
}

/// A chain the device popped: its buffer id and what its segments add up to. The segments
/// themselves are in the device half's `segments` until the next pop.
public struct Chain: Sendable, Equatable {
    /// The id to return in the used entry (split: head index; packed: buffer id).
    public var id: UInt16
    /// Ring slots the chain occupies (packed: how far the device skips; split: 1 + next links).
    public var ringDescriptors: UInt16
    public var segmentCount: Int
    /// Segments `0..<readableCount` are device-readable, the rest device-writable.
    public var readableCount: Int
    public var readableBytes: UInt32
    public var writableBytes: UInt32
    /// The chain used an indirect table.
    public var isIndirect: Bool

    @inlinable
    public init(id: UInt16, ringDescriptors: UInt16, segmentCount: Int, readableCount: Int,
                readableBytes: UInt32, writableBytes: UInt32, isIndirect: Bool) {
        self.id = id
        self.ringDescriptors = ringDescriptors
        self.segmentCount = segmentCount
        self.readableCount = readableCount
        self.readableBytes = readableBytes
        self.writableBytes = writableBytes
        self.isIndirect = isIndirect
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
