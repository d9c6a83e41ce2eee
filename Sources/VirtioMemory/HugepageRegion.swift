// HugepageRegion: one mapping that rings and buffers live in, backed by the best pages
// the machine offers (1 GiB hugetlb → 2 MiB hugetlb → THP → 4 KiB) or by exactly the
// backing a caller requires. The backing is read back from /proc/self/smaps, not assumed.

#if canImport(Glibc)
import Glibc
#endif
import CPlatform

/// How a caller chooses the backing of a region.
public enum BackingPolicy: Sendable, Equatable {
    /// The best backing available, trying `MemoryBacking.preferenceOrder` in turn.
    case best
    /// Exactly this backing, or `MemoryError.backingUnavailable`.
    case require(MemoryBacking)
    /// The best backing not better than this one (e.g. `.atMost(.transparentHuge)` to compare THP).
    case atMost(MemoryBacking)

    var candidates: [MemoryBacking] {
        switch self {
        case .best: return MemoryBacking.preferenceOrder
        case let .require(b): return [b]
        case let .atMost(b): return MemoryBacking.preferenceOrder.filter { $0 >= b }
        }
    }
}

/// What the kernel says backs a region, read from its `/proc/self/smaps` entry.
public struct ObservedBacking: Sendable, Equatable, Codable {
    /// `KernelPageSize` of the mapping, in bytes.
    public var kernelPageSize: Int
    /// Bytes mapped by PMD-sized transparent huge pages (`AnonHugePages` + `ShmemPmdMapped`).
    public var transparentHugeBytes: Int
    /// Resident bytes (`Rss` plus hugetlb pages, which smaps counts apart).
    public var residentBytes: Int

    /// The backing these figures amount to.
    public var backing: MemoryBacking {
        switch kernelPageSize {
        case 1 << 30: return .hugetlb1G
        case 2 << 20: return .hugetlb2M
        default: return transparentHugeBytes > 0 ? .transparentHuge : .smallPages
        }
    }
}

/// A report of how a region's backing was chosen: every attempt and what it got.
public struct BackingReport: Sendable, Equatable, Codable {
    public struct Attempt: Sendable, Equatable, Codable {
        public var backing: MemoryBacking
        /// nil when the attempt succeeded, else why it did not.
        public var failure: String?
    }
    public var requestedBytes: Int
    public var mappedBytes: Int
    public var shareable: Bool
    public var attempts: [Attempt]
    public var observed: ObservedBacking

    /// One line a person reads: what was obtained, and why anything better was not.
    public var summary: String {
        let got = observed.backing
        let thp = observed.transparentHugeBytes
        var line = "\(mappedBytes >> 20) MiB region: \(got.rawValue)"
        if got == .transparentHuge { line += " (\(thp >> 20) MiB in transparent huge pages)" }
        let missed = attempts.compactMap { a in a.failure.map { "\(a.backing.rawValue): \($0)" } }
        if !missed.isEmpty { line += "; fell back because " + missed.joined(separator: "; ") }
        return line
    }
}

/// One mapping of ring and buffer memory. The mapping lives as long as this object.
public final class HugepageRegion: @unchecked Sendable {
    /// First byte of the mapping (page aligned).
    public let base: UnsafeMutableRawPointer
    /// Mapped length in bytes (the request rounded up to the page size).
    public let size: Int
    /// The memfd behind a shareable region (a vhost-user peer maps it), else nil.
    public let fd: Int32?
    /// How the backing was chosen and what the kernel reports for it. For THP and 4 KiB
    /// regions the kernel's answer is read from /proc/self/smaps (a walk of every mapping of
    /// the process: 12–15 ms in a large one) the first time the report is asked for, not when
    /// the region is made, so a region nobody inspects (a shadow ring made inside DRIVER_OK)
    /// does not pay for it.
    public var report: BackingReport {
        pthread_mutex_lock(reportLock)
        defer { pthread_mutex_unlock(reportLock) }
        switch reportState {
        case let .known(r):
            return r
        case let .pending(requested, shareable, attempts, chosen, thpMode):
            let observed = Self.observe(base)
            var all = attempts
            // THP is a hint: when the kernel gave no huge pages the region is really 4 KiB.
            let failure = chosen == .transparentHuge && observed.backing != .transparentHuge
                ? "madvise(MADV_HUGEPAGE) obtained no huge pages (THP \(thpMode))" : nil
            all.append(.init(backing: chosen, failure: failure))
            let r = BackingReport(requestedBytes: requested, mappedBytes: size, shareable: shareable, attempts: all, observed: observed)
            reportState = .known(r)
            return r
        }
    }

    enum ReportState {
        case known(BackingReport)
        /// Made, not yet observed: what the report needs besides smaps.
        case pending(requested: Int, shareable: Bool, attempts: [BackingReport.Attempt], chosen: MemoryBacking, thpMode: String)
    }
    /// Guarded by `reportLock` (the report may be read from any thread).
    private var reportState: ReportState
    private let reportLock: UnsafeMutablePointer<pthread_mutex_t>

    /// The backing really obtained (read back from smaps).
    public var backing: MemoryBacking { report.observed.backing }

    /// Maps `bytes` of zeroed memory.
    /// - Parameters:
    ///   - policy: `.best` falls back silently (the report says why); `.require` throws.
    ///   - shareable: back the region with a memfd so another process can map it.
    public init(bytes: Int, policy: BackingPolicy = .best, shareable: Bool = false) throws(MemoryError) {
        guard bytes > 0, bytes <= Int.max - (1 << 30) else { throw .invalidRegionSize(bytes: bytes) }
        let inventory = HugepageInventory.current()
        var attempts: [BackingReport.Attempt] = []
        var lastError: MemoryError?
        for backing in policy.candidates {
            do throws(MemoryError) {
                let mapped = try Self.map(bytes: bytes, backing: backing, shareable: shareable, inventory: inventory)
                let thpMode = shareable ? "shmem_enabled=\(inventory.thpShmemMode)" : "enabled=\(inventory.thpMode)"
                let state: ReportState
                if backing.isHugetlb {
                    // A hugetlb mapping that mmap granted and populated is that page size and
                    // all resident by definition.
                    attempts.append(.init(backing: backing, failure: nil))
                    state = .known(BackingReport(
                        requestedBytes: bytes, mappedBytes: mapped.size, shareable: shareable, attempts: attempts,
                        observed: ObservedBacking(kernelPageSize: backing.pageSize, transparentHugeBytes: 0, residentBytes: mapped.size)))
                } else if backing == .transparentHuge, case .require = policy {
                    // Required THP must be checked now: without huge pages it is an error.
                    let observed = Self.observe(mapped.base)
                    guard observed.backing == .transparentHuge else {
                        Self.unmap(mapped)
                        throw MemoryError.backingUnavailable(
                            requested: backing, reason: "madvise(MADV_HUGEPAGE) obtained no huge pages (THP \(thpMode))",
                            remedy: shareable
                                ? "echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled"
                                : "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled")
                    }
                    attempts.append(.init(backing: backing, failure: nil))
                    state = .known(BackingReport(requestedBytes: bytes, mappedBytes: mapped.size, shareable: shareable,
                                                 attempts: attempts, observed: observed))
                } else {
                    // THP as a hint (it may have got no huge pages: the report will say so),
                    // or 4 KiB pages: observed when the report is first read.
                    state = .pending(requested: bytes, shareable: shareable, attempts: attempts, chosen: backing, thpMode: thpMode)
                }
                self.base = mapped.base
                self.size = mapped.size
                self.fd = mapped.fd
                self.reportState = state
                self.reportLock = .allocate(capacity: 1)
                pthread_mutex_init(self.reportLock, nil)
                return
            } catch {
                attempts.append(.init(backing: backing, failure: Self.shortReason(error)))
                lastError = error
            }
        }
        throw lastError ?? .invalidRegionSize(bytes: bytes)
    }

    deinit {
        Self.unmap((base, size, fd))
        pthread_mutex_destroy(reportLock)
        reportLock.deallocate()
    }

    /// The whole region as raw bytes.
    public var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: size) }

    /// Re-reads the kernel's view of this region (pages may have been split or collapsed since).
    public func observeBacking() -> ObservedBacking { Self.observe(base) }

    // MARK: - Mapping

    private typealias Mapping = (base: UnsafeMutableRawPointer, size: Int, fd: Int32?)

    private static func shortReason(_ error: MemoryError) -> String {
        switch error {
        case let .backingUnavailable(_, reason, _): return reason
        default: return error.description
        }
    }

    private static func roundUp(_ n: Int, _ to: Int) -> Int { (n + to - 1) / to * to }

    private static func unavailable(_ b: MemoryBacking, _ reason: String, _ remedy: String) -> MemoryError {
        .backingUnavailable(requested: b, reason: reason, remedy: remedy)
    }

    private static func map(bytes: Int, backing: MemoryBacking, shareable: Bool,
                            inventory: HugepageInventory) throws(MemoryError) -> Mapping {
        switch backing {
        case .hugetlb1G, .hugetlb2M:
            let pageSize = backing.pageSize
            let size = roundUp(bytes, pageSize)
            let needed = size / pageSize
            let pages = "\(pageSize >> 20 >= 1024 ? "1048576" : "2048")kB"
            let remedy = "reserve pages as root: echo \(max(needed, backing == .hugetlb2M ? 512 : needed)) > /sys/kernel/mm/hugepages/hugepages-\(pages)/nr_hugepages"
            guard let pool = inventory.pool(pageSize: pageSize) else {
                throw unavailable(backing, "the kernel has no \(pageSize >> 20) MiB huge page size", "use a kernel and CPU with \(pageSize >> 20) MiB pages")
            }
            guard pool.free >= needed else {
                throw unavailable(backing, "\(needed) free \(pageSize >> 20) MiB huge pages needed, \(pool.free) free of \(pool.total) reserved", remedy)
            }
            let log2 = UInt32(pageSize.trailingZeroBitCount)
            if shareable {
                let flags = cplatform_mfd_cloexec() | cplatform_mfd_hugetlb() | cplatform_huge_page_size_flag(log2)
                let fd = cplatform_memfd_create("vqbench-hugetlb", flags)
                guard fd >= 0 else { throw unavailable(backing, "memfd_create(MFD_HUGETLB) failed: \(errnoDescription(errno))", remedy) }
                return try mapShared(fd: fd, size: size, backing: backing, remedy: remedy, populate: true)
            }
            let flags = MAP_PRIVATE | MAP_ANONYMOUS | cplatform_map_hugetlb() | Int32(bitPattern: cplatform_huge_page_size_flag(log2)) | cplatform_map_populate()
            let p = mmap(nil, size, PROT_READ | PROT_WRITE, flags, -1, 0)
            guard let p, p != MAP_FAILED else {
                throw unavailable(backing, "mmap(MAP_HUGETLB) failed: \(errnoDescription(errno))", remedy)
            }
            return (p, size, nil)

        case .transparentHuge:
            guard inventory.thpMode != "unavailable" else {
                throw unavailable(backing, "this kernel has no transparent huge pages", "build the kernel with CONFIG_TRANSPARENT_HUGEPAGE")
            }
            let huge = MemoryBacking.transparentHuge.pageSize
            let size = roundUp(bytes, huge)
            if shareable {
                let fd = cplatform_memfd_create("vqbench-thp", cplatform_mfd_cloexec())
                guard fd >= 0 else { throw .systemCall(name: "memfd_create", errno: errno) }
                let m = try mapShared(fd: fd, size: size, backing: backing, remedy: "", populate: false)
                _ = madvise(m.base, size, cplatform_madv_hugepage())
                touch(m.base, size, stride: 4096)
                return m
            }
            // A private, 2 MiB-aligned mapping, then the hint, then the first touch:
            // MAP_POPULATE before madvise would fault in 4 KiB pages and defeat THP.
            let raw = mmap(nil, size + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let raw, raw != MAP_FAILED else { throw .systemCall(name: "mmap", errno: errno) }
            let rawAddress = UInt(bitPattern: raw)
            let aligned = (rawAddress + UInt(huge) - 1) & ~UInt(huge - 1)
            let head = Int(aligned - rawAddress)
            if head > 0 { munmap(raw, head) }
            let tail = huge - head
            if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: aligned + UInt(size)), tail) }
            let base = UnsafeMutableRawPointer(bitPattern: aligned)!
            _ = madvise(base, size, cplatform_madv_hugepage())
            touch(base, size, stride: 4096)
            return (base, size, nil)

        case .smallPages:
            let size = roundUp(bytes, 4096)
            if shareable {
                let fd = cplatform_memfd_create("vqbench", cplatform_mfd_cloexec())
                guard fd >= 0 else { throw .systemCall(name: "memfd_create", errno: errno) }
                return try mapShared(fd: fd, size: size, backing: backing, remedy: "", populate: true)
            }
            let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | cplatform_map_populate(), -1, 0)
            guard let p, p != MAP_FAILED else { throw .systemCall(name: "mmap", errno: errno) }
            return (p, size, nil)
        }
    }

    private static func mapShared(fd: Int32, size: Int, backing: MemoryBacking, remedy: String,
                                  populate: Bool) throws(MemoryError) -> Mapping {
        guard ftruncate(fd, off_t(size)) == 0 else {
            let e = errno
            close(fd)
            if backing == .hugetlb2M || backing == .hugetlb1G {
                throw unavailable(backing, "ftruncate of a hugetlb memfd failed: \(errnoDescription(e))", remedy)
            }
            throw .systemCall(name: "ftruncate", errno: e)
        }
        let flags = MAP_SHARED | (populate ? cplatform_map_populate() : 0)
        let p = mmap(nil, size, PROT_READ | PROT_WRITE, flags, fd, 0)
        guard let p, p != MAP_FAILED else {
            let e = errno
            close(fd)
            if backing == .hugetlb2M || backing == .hugetlb1G {
                throw unavailable(backing, "mmap of a hugetlb memfd failed: \(errnoDescription(e))", remedy)
            }
            throw .systemCall(name: "mmap", errno: e)
        }
        return (p, size, fd)
    }

    private static func touch(_ base: UnsafeMutableRawPointer, _ size: Int, stride: Int) {
        var offset = 0
        while offset < size {
            base.storeBytes(of: 0, toByteOffset: offset, as: UInt8.self)
            offset += stride
        }
    }

    private static func unmap(_ m: Mapping) {
        munmap(m.base, m.size)
        if let fd = m.fd { close(fd) }
    }

    /// Parses this mapping's entry in /proc/self/smaps.
    static func observe(_ base: UnsafeMutableRawPointer) -> ObservedBacking {
        let address = UInt(bitPattern: base)
        var result = ObservedBacking(kernelPageSize: 4096, transparentHugeBytes: 0, residentBytes: 0)
        guard let smaps = SysFS.read("/proc/self/smaps") else { return result }
        var inside = false
        for line in smaps.split(separator: "\n") {
            if let dash = line.firstIndex(of: "-"), let space = line.firstIndex(of: " "), dash < space,
               let start = UInt(line[..<dash], radix: 16),
               let end = UInt(line[line.index(after: dash)..<space], radix: 16) {
                if inside { break }
                inside = start <= address && address < end
                continue
            }
            guard inside, let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon]
            let fields = line[line.index(after: colon)...].split(separator: " ")
            guard let kb = fields.first.flatMap({ Int($0) }) else { continue }
            switch key {
            case "KernelPageSize": result.kernelPageSize = kb * 1024
            case "AnonHugePages", "ShmemPmdMapped", "FilePmdMapped": result.transparentHugeBytes += kb * 1024
            case "Rss", "Private_Hugetlb", "Shared_Hugetlb": result.residentBytes += kb * 1024
            default: break
            }
        }
        return result
    }
}
