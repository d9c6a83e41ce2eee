// Virtqueue's error type: one case per ring rule, each naming the queue, where in the
// ring the rule broke and the values involved, written for the person fixing the peer.

import VirtioMemory

/// A broken ring rule, seen by the device half (hostile driver) or the driver half
/// (hostile device), or a misuse of a half's API.
public enum VirtqueueError: Error, Equatable, Sendable, CustomStringConvertible {
    // MARK: Configuration
    /// A queue size the layout does not allow (split: power of two ≤ 32768; packed: 1...32768).
    case invalidQueueSize(queue: UInt16, size: Int, layout: String)
    /// A ring area's guest address is not aligned as virtio 1.2 §2.7 / §2.8 requires.
    case misalignedRingArea(queue: UInt16, area: String, gpa: UInt64, alignment: Int)
    /// A ring area could not be translated into memory.
    case ringAreaOutsideMemory(queue: UInt16, area: String, cause: MemoryError)
    /// A saved queue state that cannot belong to a queue of this size.
    case invalidQueueState(queue: UInt16, reason: String)

    // MARK: Driver-side misuse (our own caller)
    /// A chain of no buffers, or one whose readable buffers do not all come first.
    case invalidChain(queue: UInt16, reason: String)
    /// Not enough free descriptors for the chain.
    case queueFull(queue: UInt16, needed: Int, free: Int)
    /// An indirect chain posted without VIRTIO_F_INDIRECT_DESC or without an indirect pool.
    case indirectUnavailable(queue: UInt16)

    // MARK: Hostile driver (seen by the device half)
    /// The available index moved further than the queue size past the last one seen.
    case availableIndexJump(queue: UInt16, lastSeen: UInt16, published: UInt16)
    /// A descriptor index (a head in the available ring or a `next` link) ≥ queue size.
    case descriptorIndexOutOfRange(queue: UInt16, index: UInt32, queueSize: Int)
    /// Following `next` visited more descriptors than the queue (or indirect table) holds: a loop.
    case chainLoop(queue: UInt16, head: UInt16, length: Int)
    /// A chain (indirect table entries included) of more buffers than the queue size (§2.7.5.3.1).
    case chainLongerThanQueue(queue: UInt16, head: UInt16, queueSize: Int)
    /// An INDIRECT descriptor inside an indirect table.
    case nestedIndirect(queue: UInt16, head: UInt16)
    /// An indirect descriptor that also has NEXT set (§2.7.5.3.1), or one in a packed chain.
    case indirectWithNext(queue: UInt16, head: UInt16)
    /// An indirect table whose length is zero or not a multiple of 16.
    case indirectTableLength(queue: UInt16, head: UInt16, length: UInt32)
    /// INDIRECT used although VIRTIO_F_INDIRECT_DESC was not negotiated.
    case indirectNotNegotiated(queue: UInt16, head: UInt16)
    /// A buffer's address range overflows or lies outside guest memory.
    case bufferOutsideMemory(queue: UInt16, head: UInt16, gpa: UInt64, length: UInt32, cause: MemoryError)
    /// A device-readable descriptor after a device-writable one in the same chain.
    case readableAfterWritable(queue: UInt16, head: UInt16, position: Int)
    /// The total length of a chain exceeds 2^32 bytes (§2.7.5: "MUST NOT add a chain over 2^32 bytes").
    case chainTooLong(queue: UInt16, head: UInt16)
    /// A packed descriptor whose AVAIL/USED bits cannot occur at this ring position and wrap counter.
    case impossiblePackedFlags(queue: UInt16, index: UInt16, flags: UInt16, wrapCounter: Bool)

    // MARK: Hostile device (seen by the driver half)
    /// The used index moved further than the number of buffers in flight.
    case usedIndexJump(queue: UInt16, lastSeen: UInt16, published: UInt16, inFlight: Int)
    /// A used id ≥ queue size.
    case usedIdOutOfRange(queue: UInt16, id: UInt32, queueSize: Int)
    /// A used id that names no buffer in flight (never posted, or already returned).
    case usedIdNotInFlight(queue: UInt16, id: UInt32)
    /// A used length larger than the chain's device-writable bytes.
    case usedLengthTooLarge(queue: UInt16, id: UInt32, length: UInt32, writable: UInt32)
    /// With IN_ORDER, a used id that is not the next buffer in order.
    case usedOutOfOrder(queue: UInt16, id: UInt32, expected: UInt32)

    // MARK: State
    /// The queue saw a broken rule earlier and stays broken until reset (like NEEDS_RESET).
    indirect case queueBroken(queue: UInt16, cause: VirtqueueError)

    public var description: String {
        switch self {
        case let .invalidQueueSize(q, size, layout):
            return "queue \(q): size \(size) is not allowed for a \(layout) ring"
        case let .misalignedRingArea(q, area, gpa, alignment):
            return "queue \(q): \(area) at 0x\(String(gpa, radix: 16)) is not \(alignment)-byte aligned"
        case let .ringAreaOutsideMemory(q, area, cause):
            return "queue \(q): \(area) is not in guest memory: \(cause)"
        case let .invalidQueueState(q, reason):
            return "queue \(q): invalid queue state: \(reason)"
        case let .invalidChain(q, reason):
            return "queue \(q): invalid chain: \(reason)"
        case let .queueFull(q, needed, free):
            return "queue \(q): \(needed) descriptors needed, \(free) free"
        case let .indirectUnavailable(q):
            return "queue \(q): indirect descriptors need VIRTIO_F_INDIRECT_DESC and an indirect table pool"
        case let .availableIndexJump(q, last, published):
            return "queue \(q): available index jumped from \(last) to \(published), more than the queue size"
        case let .descriptorIndexOutOfRange(q, index, size):
            return "queue \(q): descriptor index \(index) is outside the table of \(size)"
        case let .chainLoop(q, head, length):
            return "queue \(q): chain at head \(head) is longer than \(length) descriptors: a loop"
        case let .chainLongerThanQueue(q, head, size):
            return "queue \(q): chain at head \(head) has more buffers than the queue size \(size)"
        case let .nestedIndirect(q, head):
            return "queue \(q): chain at head \(head) has an indirect descriptor inside an indirect table"
        case let .indirectWithNext(q, head):
            return "queue \(q): chain at head \(head) has an indirect descriptor with NEXT set"
        case let .indirectTableLength(q, head, length):
            return "queue \(q): chain at head \(head) has an indirect table of \(length) bytes, not a non-zero multiple of 16"
        case let .indirectNotNegotiated(q, head):
            return "queue \(q): chain at head \(head) uses INDIRECT, but VIRTIO_F_INDIRECT_DESC was not negotiated"
        case let .bufferOutsideMemory(q, head, gpa, length, cause):
            return "queue \(q): chain at head \(head) has a buffer 0x\(String(gpa, radix: 16))+\(length) outside guest memory (\(cause))"
        case let .readableAfterWritable(q, head, position):
            return "queue \(q): chain at head \(head) has a device-readable descriptor at position \(position) after a device-writable one"
        case let .chainTooLong(q, head):
            return "queue \(q): chain at head \(head) is longer than 2^32 bytes in total"
        case let .impossiblePackedFlags(q, index, flags, wrap):
            return "queue \(q): packed descriptor \(index) has flags 0x\(String(flags, radix: 16)), impossible with wrap counter \(wrap ? 1 : 0)"
        case let .usedIndexJump(q, last, published, inFlight):
            return "queue \(q): used index jumped from \(last) to \(published) with only \(inFlight) buffers in flight"
        case let .usedIdOutOfRange(q, id, size):
            return "queue \(q): used id \(id) is outside the queue of \(size)"
        case let .usedIdNotInFlight(q, id):
            return "queue \(q): used id \(id) names no buffer in flight"
        case let .usedLengthTooLarge(q, id, length, writable):
            return "queue \(q): used id \(id) reports \(length) bytes written into \(writable) writable bytes"
        case let .usedOutOfOrder(q, id, expected):
            return "queue \(q): used id \(id) out of order with IN_ORDER (expected \(expected))"
        case let .queueBroken(q, cause):
            return "queue \(q) is broken until reset: \(cause)"
        }
    }
}
