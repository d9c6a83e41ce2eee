// VirtioMemory's error type: one case per broken rule, each carrying what the person
// fixing the caller needs (STYLE.md "Errors").

/// An error from the memory layer: backing allocation, guest address translation,
/// the software IOTLB or the bounce buffer.
public enum MemoryError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The caller required a backing this machine cannot provide right now.
    case backingUnavailable(requested: MemoryBacking, reason: String, remedy: String)
    /// A system call failed while creating or mapping a region.
    case systemCall(name: String, errno: Int32)
    /// A region of zero bytes, or a size that overflows when rounded to the page size.
    case invalidRegionSize(bytes: Int)

    /// `gpa + length` does not fit in 64 bits.
    case addressOverflow(gpa: UInt64, length: UInt64)
    /// A translation of zero bytes: there is nothing to validate, so it is refused.
    case zeroLength(gpa: UInt64)
    /// No region contains `gpa`.
    case addressOutsideMemory(gpa: UInt64, length: UInt64)
    /// The range starts inside a region but runs past its end (into a hole or the next region).
    case rangeCrossesRegions(gpa: UInt64, length: UInt64, regionEnd: UInt64)
    /// Two regions given to a guest address space overlap.
    case overlappingRegions(firstGPA: UInt64, secondGPA: UInt64)

    /// An IOTLB mapping would overlap an existing one.
    case overlappingMapping(iova: UInt64, size: UInt64, existingIOVA: UInt64, existingSize: UInt64)
    /// An IOTLB map or unmap with a zero size or an end past 2^64.
    case invalidMapping(iova: UInt64, size: UInt64)
    /// An unmap named a range that is not exactly one or more whole mappings.
    case unmapOfUnmappedRange(iova: UInt64, size: UInt64)
    /// No IOTLB entry covers `iova` (an IOTLB miss).
    case iotlbMiss(iova: UInt64, length: UInt64)
    /// The mapping covering `iova` does not allow the access asked for.
    case iotlbPermissionDenied(iova: UInt64, needed: IOTLB.Access, granted: IOTLB.Access)
    /// The range starts in one IOTLB entry and leaves it.
    case iotlbRangeCrossesMappings(iova: UInt64, length: UInt64, mappingEnd: UInt64)

    /// Every bounce-buffer slot is in use.
    case bounceBufferExhausted(slots: Int, slotSize: Int)
    /// A copy larger than one bounce slot.
    case bounceCopyTooLarge(bytes: Int, slotSize: Int)
    /// A slot index that was never handed out or was already released.
    case bounceSlotNotAllocated(slot: Int)

    public var description: String {
        switch self {
        case let .backingUnavailable(requested, reason, remedy):
            return "\(requested.rawValue) backing unavailable: \(reason). \(remedy)"
        case let .systemCall(name, errno):
            return "\(name) failed: \(errnoDescription(errno)) (errno \(errno))"
        case let .invalidRegionSize(bytes):
            return "invalid region size \(bytes) bytes"
        case let .addressOverflow(gpa, length):
            return "guest address 0x\(hex(gpa)) + length \(length) overflows 64 bits"
        case let .zeroLength(gpa):
            return "zero-length translation at guest address 0x\(hex(gpa))"
        case let .addressOutsideMemory(gpa, length):
            return "guest range 0x\(hex(gpa))+\(length) lies outside guest memory"
        case let .rangeCrossesRegions(gpa, length, regionEnd):
            return "guest range 0x\(hex(gpa))+\(length) runs past the end of its region at 0x\(hex(regionEnd))"
        case let .overlappingRegions(first, second):
            return "guest memory regions at 0x\(hex(first)) and 0x\(hex(second)) overlap"
        case let .overlappingMapping(iova, size, existingIOVA, existingSize):
            return "IOTLB map 0x\(hex(iova))+\(size) overlaps existing mapping 0x\(hex(existingIOVA))+\(existingSize)"
        case let .invalidMapping(iova, size):
            return "IOTLB mapping 0x\(hex(iova))+\(size) is empty or wraps past 2^64"
        case let .unmapOfUnmappedRange(iova, size):
            return "IOTLB unmap 0x\(hex(iova))+\(size) does not cover whole mappings"
        case let .iotlbMiss(iova, length):
            return "IOTLB miss: no mapping for IOVA 0x\(hex(iova))+\(length)"
        case let .iotlbPermissionDenied(iova, needed, granted):
            return "IOTLB mapping for IOVA 0x\(hex(iova)) grants \(granted) but \(needed) is needed"
        case let .iotlbRangeCrossesMappings(iova, length, mappingEnd):
            return "IOVA range 0x\(hex(iova))+\(length) leaves its mapping at 0x\(hex(mappingEnd))"
        case let .bounceBufferExhausted(slots, slotSize):
            return "bounce buffer exhausted: all \(slots) slots of \(slotSize) bytes are in use"
        case let .bounceCopyTooLarge(bytes, slotSize):
            return "bounce copy of \(bytes) bytes exceeds the slot size \(slotSize)"
        case let .bounceSlotNotAllocated(slot):
            return "bounce slot \(slot) is not allocated"
        }
    }
}

@inline(never)
func hex(_ value: UInt64) -> String { String(value, radix: 16) }
