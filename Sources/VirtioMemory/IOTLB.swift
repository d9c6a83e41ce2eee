// IOTLB: a software IOVA → GPA translation, the per-descriptor cost of vdpa_sim-style and
// shadow-virtqueue mediation. Linux keeps this in an interval tree (vhost_iotlb); mappings
// never overlap here, so a sorted array searched by bisection gives the same O(log n)
// lookups with better locality. Bulk `setMap` (on-chip IOMMU style) and incremental
// `map`/`unmap` (dma_map / dma_unmap) both exist.

/// A software IOTLB. Owned by one thread (the device or relay that translates).
public struct IOTLB: Sendable {
    /// Access rights of a mapping, as vhost's `VHOST_ACCESS_RO/WO/RW`.
    public struct Access: OptionSet, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let read = Access(rawValue: 1)
        public static let write = Access(rawValue: 2)
        public static let readWrite: Access = [.read, .write]
        public var description: String {
            switch self {
            case .read: return "read-only"
            case .write: return "write-only"
            case .readWrite: return "read-write"
            default: return "no access"
            }
        }
    }

    /// One mapping: `[iova, iova + size)` → `[gpa, gpa + size)`.
    public struct Mapping: Sendable, Equatable {
        public var iova: UInt64
        public var size: UInt64
        public var gpa: UInt64
        public var access: Access
        public init(iova: UInt64, size: UInt64, gpa: UInt64, access: Access = .readWrite) {
            self.iova = iova
            self.size = size
            self.gpa = gpa
            self.access = access
        }
        @inlinable var last: UInt64 { iova &+ (size &- 1) }
    }

    /// The contiguous part of a translation that fits in one mapping.
    public struct Translation: Sendable, Equatable {
        public var gpa: UInt64
        public var length: UInt64
        @inlinable public init(gpa: UInt64, length: UInt64) {
            self.gpa = gpa
            self.length = length
        }
    }

    @usableFromInline var mappings: [Mapping] = []
    @usableFromInline var hitCount: UInt64 = 0
    @usableFromInline var missCount: UInt64 = 0
    /// Lookups that found a mapping.
    public var hits: UInt64 { hitCount }
    /// Lookups that found none (a vhost IOTLB miss).
    public var misses: UInt64 { missCount }

    public init() {}

    public var count: Int { mappings.count }
    public var allMappings: [Mapping] { mappings }

    /// Replaces the whole translation at once (`set_map`). Mappings must not overlap.
    public mutating func setMap(_ newMappings: [Mapping]) throws(MemoryError) {
        let sorted = newMappings.sorted { $0.iova < $1.iova }
        for m in sorted { try Self.validate(m) }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.iova <= a.last {
            throw .overlappingMapping(iova: b.iova, size: b.size, existingIOVA: a.iova, existingSize: a.size)
        }
        mappings = sorted
    }

    /// Takes `other`'s mappings, keeping this copy's hit and miss counts (a device-side
    /// copy re-reading the map after the control path changed it).
    public mutating func adoptMappings(of other: IOTLB) {
        mappings = other.mappings
    }

    /// Adds one mapping (`dma_map`); an overlap with an existing mapping is an error.
    public mutating func map(_ m: Mapping) throws(MemoryError) {
        try Self.validate(m)
        let i = firstIndex(endingAtOrAfter: m.iova)
        if i < mappings.count, mappings[i].iova <= m.last {
            throw .overlappingMapping(iova: m.iova, size: m.size, existingIOVA: mappings[i].iova, existingSize: mappings[i].size)
        }
        mappings.insert(m, at: i)
    }

    /// Removes the mappings that make up exactly `[iova, iova + size)` (`dma_unmap`).
    /// Returns how many mappings were removed.
    @discardableResult
    public mutating func unmap(iova: UInt64, size: UInt64) throws(MemoryError) -> Int {
        try Self.validate(Mapping(iova: iova, size: size, gpa: 0))
        let last = iova &+ (size &- 1)
        let first = firstIndex(endingAtOrAfter: iova)
        var end = first
        while end < mappings.count, mappings[end].iova <= last { end += 1 }
        guard end > first, mappings[first].iova == iova, mappings[end - 1].last == last else {
            throw .unmapOfUnmappedRange(iova: iova, size: size)
        }
        mappings.removeSubrange(first..<end)
        return end - first
    }

    /// Translates the start of `[iova, iova + length)`: the GPA and how many bytes of the
    /// range the mapping covers (callers split a buffer that spans mappings).
    @inlinable
    public mutating func lookup(iova: UInt64, length: UInt64, access: Access) throws(MemoryError) -> Translation {
        let i = firstIndex(endingAtOrAfter: iova)
        guard i < mappings.count, mappings[i].iova <= iova else {
            missCount &+= 1
            throw .iotlbMiss(iova: iova, length: length)
        }
        let m = mappings[i]
        guard m.access.isSuperset(of: access) else {
            throw .iotlbPermissionDenied(iova: iova, needed: access, granted: m.access)
        }
        hitCount &+= 1
        let offset = iova &- m.iova
        return Translation(gpa: m.gpa &+ offset, length: Swift.min(length, m.size &- offset))
    }

    /// Translates a whole range that must lie in one mapping.
    @inlinable
    public mutating func translate(iova: UInt64, length: UInt64, access: Access) throws(MemoryError) -> UInt64 {
        guard length > 0 else { throw .zeroLength(gpa: iova) }
        let t = try lookup(iova: iova, length: length, access: access)
        guard t.length == length else {
            throw .iotlbRangeCrossesMappings(iova: iova, length: length, mappingEnd: iova &+ t.length)
        }
        return t.gpa
    }

    /// Index of the first mapping whose last byte is at or after `iova`.
    @inlinable
    func firstIndex(endingAtOrAfter iova: UInt64) -> Int {
        var low = 0
        var high = mappings.count
        while low < high {
            let mid = (low &+ high) >> 1
            if mappings[mid].last < iova { low = mid &+ 1 } else { high = mid }
        }
        return low
    }

    static func validate(_ m: Mapping) throws(MemoryError) {
        guard m.size > 0, m.iova <= UInt64.max - (m.size - 1) else {
            throw .invalidMapping(iova: m.iova, size: m.size)
        }
    }
}
