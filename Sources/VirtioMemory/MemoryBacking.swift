// What kind of pages back a region, and what the machine offers right now.
// Read from /sys and libhugetlbfs, never assumed; the benchmark reports carry it.

#if canImport(Glibc)
import Glibc
#endif
import CHugetlbfs

/// The page backing of a memory region, in the words a results file uses.
public enum MemoryBacking: String, Sendable, Codable, CaseIterable, Comparable {
    /// hugetlb pages of 1 GiB (`MAP_HUGETLB | MAP_HUGE_1GB`).
    case hugetlb1G = "hugepage-1G"
    /// hugetlb pages of 2 MiB (`MAP_HUGETLB | MAP_HUGE_2MB`).
    case hugetlb2M = "hugepage-2M"
    /// Transparent huge pages: a 2 MiB-aligned mapping with `madvise(MADV_HUGEPAGE)`.
    case transparentHuge = "thp"
    /// Ordinary 4 KiB pages.
    case smallPages = "4K"

    /// Preference order: the first is the best.
    public static let preferenceOrder: [MemoryBacking] = [.hugetlb1G, .hugetlb2M, .transparentHuge, .smallPages]

    public static func < (a: MemoryBacking, b: MemoryBacking) -> Bool {
        preferenceOrder.firstIndex(of: a)! < preferenceOrder.firstIndex(of: b)!
    }

    /// Page size the backing maps with.
    public var pageSize: Int {
        switch self {
        case .hugetlb1G: return 1 << 30
        case .hugetlb2M, .transparentHuge: return 2 << 20
        case .smallPages: return 4096
        }
    }

    /// Pages reserved from the hugetlb pool (as opposed to pages the kernel picks).
    public var isHugetlb: Bool { self == .hugetlb1G || self == .hugetlb2M }
}

/// The machine's huge page state: sizes, reserved and free pages, THP mode, mounts.
public struct HugepageInventory: Sendable, Equatable, Codable {
    public struct Pool: Sendable, Equatable, Codable {
        public var pageSize: Int
        public var total: Int
        public var free: Int
        /// A hugetlbfs mount for this size, if libhugetlbfs found one (not needed for MAP_HUGETLB).
        public var mount: String?
    }

    /// One pool per huge page size the kernel supports (from libhugetlbfs `gethugepagesizes`).
    public var pools: [Pool]
    /// `/sys/kernel/mm/transparent_hugepage/enabled`, the bracketed word (always, madvise, never).
    public var thpMode: String
    /// `/sys/kernel/mm/transparent_hugepage/shmem_enabled`, the bracketed word.
    public var thpShmemMode: String

    public func pool(pageSize: Int) -> Pool? { pools.first { $0.pageSize == pageSize } }

    /// Reads the current state.
    public static func current() -> HugepageInventory {
        var sizes = [Int](repeating: 0, count: 8)
        let n = sizes.withUnsafeMutableBufferPointer { buf in
            gethugepagesizes(buf.baseAddress, Int32(buf.count))
        }
        var pageSizes = n > 0 ? Array(sizes.prefix(Int(n))) : []
        if pageSizes.isEmpty {
            // libhugetlbfs found no sizes (no hugetlb support): fall back to sysfs listing.
            pageSizes = SysFS.hugepageSizesFromSysfs()
        }
        let pools = pageSizes.sorted().map { size -> Pool in
            let dir = "/sys/kernel/mm/hugepages/hugepages-\(size / 1024)kB"
            let mountPath: String? = {
                guard let p = hugetlbfs_find_path_for_size(size) else { return nil }
                return String(cString: p)
            }()
            return Pool(
                pageSize: size,
                total: SysFS.readInt(dir + "/nr_hugepages") ?? 0,
                free: SysFS.readInt(dir + "/free_hugepages") ?? 0,
                mount: mountPath)
        }
        return HugepageInventory(
            pools: pools,
            thpMode: SysFS.bracketed("/sys/kernel/mm/transparent_hugepage/enabled") ?? "unavailable",
            thpShmemMode: SysFS.bracketed("/sys/kernel/mm/transparent_hugepage/shmem_enabled") ?? "unavailable")
    }

    /// Asks the kernel for `count` persistent huge pages of `pageSize` (needs root).
    /// Returns the number now reserved; never throws, since a refusal is an ordinary outcome.
    @discardableResult
    public static func reserve(pageSize: Int = 2 << 20, atLeast count: Int) -> Int {
        let path = "/sys/kernel/mm/hugepages/hugepages-\(pageSize / 1024)kB/nr_hugepages"
        let have = SysFS.readInt(path) ?? 0
        if have >= count { return have }
        _ = SysFS.write(path, "\(count)\n")
        return SysFS.readInt(path) ?? have
    }
}

/// Small helpers for reading kernel text files.
public enum SysFS {
    /// The whole of a kernel text file, read to EOF (a /proc file's size says 0, and a
    /// one-shot read can return only part of a long one such as /proc/self/maps).
    public static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let got = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if got < 0 && errno == EINTR { continue }
            if got <= 0 { break }
            bytes.append(contentsOf: chunk.prefix(got))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func write(_ path: String, _ text: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count
    }

    static func readInt(_ path: String) -> Int? {
        read(path).flatMap { Int($0.trimmingWhitespace()) }
    }

    static func bracketed(_ path: String) -> String? {
        guard let text = read(path), let open = text.firstIndex(of: "["),
              let close = text[open...].firstIndex(of: "]") else { return nil }
        return String(text[text.index(after: open)..<close])
    }

    static func hugepageSizesFromSysfs() -> [Int] {
        guard let dir = opendir("/sys/kernel/mm/hugepages") else { return [] }
        defer { closedir(dir) }
        var sizes: [Int] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasPrefix("hugepages-"), name.hasSuffix("kB"),
               let kb = Int(name.dropFirst("hugepages-".count).dropLast(2)) {
                sizes.append(kb * 1024)
            }
        }
        return sizes
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars.drop { $0 == " " || $0 == "\n" || $0 == "\t" }
        var s = String(String.UnicodeScalarView(scalars))
        while let last = s.last, last == " " || last == "\n" || last == "\t" { s.removeLast() }
        return s
    }
}

func errnoDescription(_ code: Int32) -> String {
    String(cString: strerror(code))
}
