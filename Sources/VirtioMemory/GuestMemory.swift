// GuestMemory: the guest-physical address space the device side sees. The only way a
// device turns a ring or buffer address into a pointer: translate(gpa, length) succeeds
// only when the whole range lies inside one region.

/// One region of guest-physical memory and the host memory behind it.
public struct GuestRegion: @unchecked Sendable, Equatable {
    public var gpa: UInt64
    public var size: UInt64
    public var host: UnsafeMutableRawPointer

    public init(gpa: UInt64, size: UInt64, host: UnsafeMutableRawPointer) {
        self.gpa = gpa
        self.size = size
        self.host = host
    }

    @inlinable public var end: UInt64 { gpa &+ size }
}

/// A guest-physical address space made of non-overlapping regions.
///
/// Copying it is cheap; it does not own the host memory (keep the `HugepageRegion`s alive,
/// `GuestMemory.Backed` does that for you). Lookups are a binary search over the regions
/// sorted by address; the common one-region case is a single compare.
public struct GuestMemory: @unchecked Sendable {
    @usableFromInline let regions: [GuestRegion]
    // The first region again as plain fields: the one-region case (every queue arena) is
    // then two compares and an add, with no array access on the hot path.
    @usableFromInline let firstGPA: UInt64
    @usableFromInline let firstSize: UInt64
    @usableFromInline let firstHost: UnsafeMutableRawPointer?

    /// Builds an address space; regions may come in any order but must not overlap.
    public init(regions: [GuestRegion]) throws(MemoryError) {
        let sorted = regions.sorted { $0.gpa < $1.gpa }
        for r in sorted {
            guard r.size > 0 else { throw .invalidRegionSize(bytes: 0) }
            guard r.gpa <= UInt64.max - (r.size - 1) else { throw .addressOverflow(gpa: r.gpa, length: r.size) }
        }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.gpa < a.end {
            throw .overlappingRegions(firstGPA: a.gpa, secondGPA: b.gpa)
        }
        self.regions = sorted
        firstGPA = sorted.first?.gpa ?? 0
        firstSize = sorted.first?.size ?? 0
        firstHost = sorted.first?.host
    }

    /// The first region's guest address, size and host memory (size 0, host nil: none):
    /// the range `translate` checks inline, for device halves to check in registers.
    @inlinable
    public var firstRegionWindow: (gpa: UInt64, size: UInt64, host: UnsafeMutableRawPointer?) { (firstGPA, firstSize, firstHost) }

    /// The regions in address order.
    public var allRegions: [GuestRegion] { regions }

    /// Whether `[offset, offset + length)` is a non-empty range inside a window of `span`
    /// bytes, with one sum: the end is past the offset (not empty, no wrap) and at most the
    /// span. `offset` is an address less the window's base, unsigned, so an address below
    /// the base is huge and refused.
    @inlinable @inline(__always)
    public static func fits(offset: UInt64, length: UInt64, span: UInt64) -> Bool {
        let end = offset &+ length
        return end > offset && end <= span
    }

    /// Host pointer for the guest range `[gpa, gpa + length)`, which must lie inside one region.
    @inlinable @inline(__always)
    public func translate(_ gpa: UInt64, length: UInt64) throws(MemoryError) -> UnsafeMutableRawPointer {
        // Fast path: the whole range inside the first region.
        let offset = gpa &- firstGPA
        if Self.fits(offset: offset, length: length, span: firstSize), let host = firstHost {
            return host.advanced(by: Int(truncatingIfNeeded: offset))
        }
        return try translateSlow(gpa, length: length)
    }

    @usableFromInline @inline(never)
    func translateSlow(_ gpa: UInt64, length: UInt64) throws(MemoryError) -> UnsafeMutableRawPointer {
        guard length > 0 else { throw .zeroLength(gpa: gpa) }
        let (last, overflow) = gpa.addingReportingOverflow(length - 1)
        guard !overflow else { throw .addressOverflow(gpa: gpa, length: length) }
        // Binary search for the last region starting at or below gpa.
        var low = 0
        var high = regions.count
        while low < high {
            let mid = (low &+ high) >> 1
            if regions[mid].gpa <= gpa { low = mid &+ 1 } else { high = mid }
        }
        guard low > 0 else { throw .addressOutsideMemory(gpa: gpa, length: length) }
        let region = regions[low &- 1]
        let offset = gpa &- region.gpa
        guard offset < region.size else { throw .addressOutsideMemory(gpa: gpa, length: length) }
        guard last &- region.gpa < region.size else {
            throw .rangeCrossesRegions(gpa: gpa, length: length, regionEnd: region.end)
        }
        return region.host.advanced(by: Int(offset))
    }

    /// The guest address of a host pointer, if it lies in a region (for drivers that
    /// allocate in host memory and publish guest addresses).
    public func guestAddress(of host: UnsafeRawPointer) -> UInt64? {
        let h = UInt(bitPattern: host)
        for r in regions {
            let start = UInt(bitPattern: r.host)
            if h >= start && h - start < UInt(r.size) { return r.gpa + UInt64(h - start) }
        }
        return nil
    }
}

extension GuestMemory {
    /// A guest address space that owns its regions' memory: the usual way to build one.
    public final class Backed: @unchecked Sendable {
        public let memory: GuestMemory
        public let regions: [HugepageRegion]

        /// Lays `regions` out back to back from `firstGPA`, each aligned to its page size.
        public init(regions: [HugepageRegion], firstGPA: UInt64 = 0x1_0000_0000) throws(MemoryError) {
            var gpa = firstGPA
            var layout: [GuestRegion] = []
            for r in regions {
                let align = UInt64(max(4096, r.backing.pageSize))
                gpa = (gpa + align - 1) / align * align
                layout.append(GuestRegion(gpa: gpa, size: UInt64(r.size), host: r.base))
                gpa += UInt64(r.size)
            }
            self.memory = try GuestMemory(regions: layout)
            self.regions = regions
        }
    }
}
