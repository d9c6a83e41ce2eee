// What the split and packed halves share when reading or building a chain: the running
// totals and the per-buffer rules of a chain the device reads (§2.7.4, §2.7.5.3.1), the
// check a driver makes before posting one, and how a ring area becomes memory.

import VirtioMemory

/// Running totals while the device reads a chain.
@usableFromInline
struct ChainWalk {
    @usableFromInline let head: UInt16
    @usableFromInline var ringDescriptors = 0
    @usableFromInline var segments = 0
    @usableFromInline var readable = 0
    @usableFromInline var readableBytes: UInt64 = 0
    @usableFromInline var writableBytes: UInt64 = 0
    @usableFromInline var indirect = false
    @inlinable init(head: UInt16) { self.head = head }

    /// Checks one buffer against the chain rules, translates it and appends it to `scratch`.
    @inlinable @inline(__always)
    mutating func add<Memory: DeviceMemory>(
        address: UInt64, length: UInt32, writable: Bool, memory: inout Memory,
        into scratch: UnsafeMutablePointer<Segment>, queue: UInt16, queueSize: Int
    ) throws(VirtqueueError) {
        // §2.7.5.3.1: no chain, indirect entries included, may be longer than the queue.
        guard segments < queueSize else { throw .chainLongerThanQueue(queue: queue, head: head, queueSize: queueSize) }
        if writable {
            writableBytes &+= UInt64(length)
        } else {
            // §2.7.4: device-readable buffers come before device-writable ones.
            guard writableBytes == 0 && segments == readable else {
                throw .readableAfterWritable(queue: queue, head: head, position: segments)
            }
            readable &+= 1
            readableBytes &+= UInt64(length)
        }
        guard readableBytes &+ writableBytes <= UInt64(UInt32.max) else {
            throw .chainTooLong(queue: queue, head: head)
        }
        var host: UnsafeMutableRawPointer? = nil
        if length > 0 {
            do {
                host = try memory.translate(address, length: length, deviceWrites: writable)
            } catch {
                throw .bufferOutsideMemory(queue: queue, head: head, gpa: address, length: length, cause: error)
            }
        }
        scratch[segments] = Segment(host: host, address: address, length: length, isWritable: writable)
        segments &+= 1
    }

    /// An indirect table's memory (§2.7.5.3, §2.8.19): a non-zero multiple of 16 bytes that
    /// lies in device-visible memory. Marks the chain indirect.
    @inlinable
    mutating func indirectTable<Memory: DeviceMemory>(address: UInt64, length: UInt32, memory: inout Memory,
                                                     queue: UInt16) throws(VirtqueueError) -> UnsafeMutableRawPointer {
        guard length > 0, length % 16 == 0 else {
            throw .indirectTableLength(queue: queue, head: head, length: length)
        }
        let table: UnsafeMutableRawPointer
        do {
            table = try memory.translate(address, length: length, deviceWrites: false)
        } catch {
            throw .bufferOutsideMemory(queue: queue, head: head, gpa: address, length: length, cause: error)
        }
        indirect = true
        return table
    }

    /// The chain as the device half reports it, its segments from `firstSegment` on.
    @inlinable
    func chain(id: UInt16, firstSegment: Int) -> Chain {
        Chain(id: id, ringDescriptors: UInt16(truncatingIfNeeded: ringDescriptors), segmentCount: segments,
              readableCount: readable, readableBytes: UInt32(truncatingIfNeeded: readableBytes),
              writableBytes: UInt32(truncatingIfNeeded: writableBytes), isIndirect: indirect, firstSegment: firstSegment)
    }
}

/// A driver's own check before posting: at least one buffer, readable ones first (§2.7.4).
@inlinable
func validateChain(_ buffers: UnsafeBufferPointer<Buffer>, queue: UInt16) throws(VirtqueueError) {
    guard !buffers.isEmpty else { throw .invalidChain(queue: queue, reason: "no buffers") }
    var seenWritable = false
    for b in buffers {
        if b.isWritable { seenWritable = true } else if seenWritable {
            throw .invalidChain(queue: queue, reason: "a device-readable buffer follows a device-writable one")
        }
    }
}

/// A ring area's memory, after checking its alignment (§2.7, §2.8.10.1).
func ringArea<Memory: DeviceMemory>(_ memory: inout Memory, _ address: UInt64, _ bytes: Int, _ alignment: Int,
                                    deviceWrites: Bool, _ name: String, _ queue: UInt16) throws(VirtqueueError) -> UnsafeMutableRawPointer {
    guard address % UInt64(alignment) == 0 else {
        throw .misalignedRingArea(queue: queue, area: name, gpa: address, alignment: alignment)
    }
    do {
        return try memory.translate(address, length: UInt32(bytes), deviceWrites: deviceWrites)
    } catch {
        throw .ringAreaOutsideMemory(queue: queue, area: name, cause: error)
    }
}

/// The driver's indirect tables, when VIRTIO_F_INDIRECT_DESC is negotiated and a pool given:
/// host pointer, guest address and entries per table (nil, 0, 0 otherwise).
func attachIndirectPool(_ pool: IndirectPool?, features: VirtioFeatures, memory: inout GuestMemory,
                        queueSize: Int, queue: UInt16) throws(VirtqueueError) -> (UnsafeMutableRawPointer?, UInt64, Int) {
    guard let pool, features.contains(.indirectDescriptors) else { return (nil, 0, 0) }
    let host = try ringArea(&memory, pool.gpa, IndirectPool.bytes(queueSize: queueSize, entriesPerTable: pool.entriesPerTable),
                            16, deviceWrites: false, "indirect table pool", queue)
    return (host, pool.gpa, pool.entriesPerTable)
}
