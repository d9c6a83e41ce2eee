// What `vqbench doctor` reads from this machine before judging it: CPUs, huge pages, THP,
// io_uring (the Doorbell probe), seccomp, valgrind, the runtime libraries, and the vCPU
// placements the cache-line round trip shows. Gathering is the only side effect; the
// checks (DoctorChecks.swift) are a pure function of these facts.

import CPlatform
import Doorbell
import Foundation
import VirtioMemory

public struct DoctorFacts: Sendable, Equatable, Codable {
    public struct HugepagePool: Sendable, Equatable, Codable {
        public var reserved: Int
        public var free: Int
        public init(reserved: Int, free: Int) {
            self.reserved = reserved
            self.free = free
        }
    }

    /// A shared library mapped into this process.
    public struct RuntimeLibrary: Sendable, Equatable, Codable {
        public var path: String
        /// From the file name (`liburing.so.2.3` → "2.3").
        public var version: String?
        public init(path: String, version: String?) {
            self.path = path
            self.version = version
        }
    }

    /// The cache-line round trip measured a few times over a couple of seconds.
    public struct Placements: Sendable, Equatable, Codable {
        /// Each measurement's median round trip, ns, in the order taken.
        public var mediansNs: [Double]
        public var roundTripsPerMeasurement: Int
        public var seconds: Double
        /// Not measured: asked not to (`--placement-seconds 0`), or one CPU.
        public var skipped: Bool
        /// Why a measurement failed (pinning refused), when one did.
        public var failure: String?
        public init(mediansNs: [Double], roundTripsPerMeasurement: Int, seconds: Double, skipped: Bool = false,
                    failure: String? = nil) {
            self.mediansNs = mediansNs
            self.roundTripsPerMeasurement = roundTripsPerMeasurement
            self.seconds = seconds
            self.skipped = skipped
            self.failure = failure
        }

        enum CodingKeys: String, CodingKey {
            case mediansNs = "medians_ns", roundTripsPerMeasurement = "round_trips_per_measurement", seconds, skipped, failure
        }
    }

    /// CPUs this process may run on (its affinity mask).
    public var logicalCPUs: Int
    public var cpuModel: String
    /// `vendor_id` (x86) or `CPU implementer` (Arm) from /proc/cpuinfo.
    public var cpuVendor: String
    /// MachineInfo's hypervisor name ("none" on bare metal).
    public var virtualization: String
    /// nil: the kernel offers no pool of this size.
    public var hugepages2M: HugepagePool?
    public var hugepages1G: HugepagePool?
    /// The bracketed words of /sys/kernel/mm/transparent_hugepage/{enabled,shmem_enabled}, or "unavailable".
    public var thpEnabled: String
    public var thpShmemEnabled: String
    /// io_uring set-up, the opcodes found, seccomp mode.
    public var doorbells: DoorbellProbe
    /// /proc/sys/kernel/io_uring_disabled (Linux 6.6+), nil when absent.
    public var ioUringDisabledSysctl: Int?
    /// `valgrind --version` without the "valgrind-" prefix, nil when not installed.
    public var valgrindVersion: String?
    public var liburing: RuntimeLibrary?
    public var libhugetlbfs: RuntimeLibrary?
    public var placements: Placements

    public init(logicalCPUs: Int, cpuModel: String, cpuVendor: String, virtualization: String,
                hugepages2M: HugepagePool?, hugepages1G: HugepagePool?, thpEnabled: String, thpShmemEnabled: String,
                doorbells: DoorbellProbe, ioUringDisabledSysctl: Int?, valgrindVersion: String?,
                liburing: RuntimeLibrary?, libhugetlbfs: RuntimeLibrary?, placements: Placements) {
        self.logicalCPUs = logicalCPUs
        self.cpuModel = cpuModel
        self.cpuVendor = cpuVendor
        self.virtualization = virtualization
        self.hugepages2M = hugepages2M
        self.hugepages1G = hugepages1G
        self.thpEnabled = thpEnabled
        self.thpShmemEnabled = thpShmemEnabled
        self.doorbells = doorbells
        self.ioUringDisabledSysctl = ioUringDisabledSysctl
        self.valgrindVersion = valgrindVersion
        self.liburing = liburing
        self.libhugetlbfs = libhugetlbfs
        self.placements = placements
    }

    enum CodingKeys: String, CodingKey {
        case logicalCPUs = "logical_cpus", cpuModel = "cpu_model", cpuVendor = "cpu_vendor", virtualization
        case hugepages2M = "hugepages_2m", hugepages1G = "hugepages_1g"
        case thpEnabled = "thp_enabled", thpShmemEnabled = "thp_shmem_enabled"
        case doorbells, ioUringDisabledSysctl = "kernel_io_uring_disabled", valgrindVersion = "valgrind"
        case liburing, libhugetlbfs, placements
    }

    // MARK: - Gathering

    /// Reads this machine; measures placements for about `placementSeconds` (0 skips).
    public static func gather(placementSeconds: Double = 2) -> DoctorFacts {
        let inventory = HugepageInventory.current()
        func pool(_ size: Int) -> HugepagePool? {
            inventory.pool(pageSize: size).map { HugepagePool(reserved: $0.total, free: $0.free) }
        }
        let cpus = Int(cplatform_allowed_cpu_count())
        let maps = SysFS.read("/proc/self/maps") ?? ""
        return DoctorFacts(
            logicalCPUs: cpus, cpuModel: MachineInfo.cpuModel(), cpuVendor: cpuVendor(),
            virtualization: MachineInfo.virtualization(),
            hugepages2M: pool(2 << 20), hugepages1G: pool(1 << 30),
            thpEnabled: inventory.thpMode, thpShmemEnabled: inventory.thpShmemMode,
            doorbells: .current, ioUringDisabledSysctl: readInt("/proc/sys/kernel/io_uring_disabled"),
            valgrindVersion: MachineInfo.valgrindVersion(),
            liburing: mappedLibrary("liburing", maps: maps), libhugetlbfs: mappedLibrary("libhugetlbfs", maps: maps),
            placements: measurePlacements(seconds: placementSeconds, cpus: cpus))
    }

    static let roundTripsPerSample = 2_000
    static let samplesPerMeasurement = 5

    /// Round trips measured every 200 ms for `seconds`: the placement may change between them.
    static func measurePlacements(seconds: Double, cpus: Int) -> Placements {
        let perMeasurement = roundTripsPerSample * samplesPerMeasurement
        guard seconds > 0, cpus >= 2 else {
            return Placements(mediansNs: [], roundTripsPerMeasurement: perMeasurement, seconds: 0, skipped: true)
        }
        let placement = ThreadPlacement.current()
        let start = cplatform_monotonic_ns()
        var medians: [Double] = []
        repeat {
            do {
                let rt = try CachelineRoundTrip.measure(samples: samplesPerMeasurement, perSample: roundTripsPerSample, placement: placement)
                medians.append(rt.medianNanoseconds)
            } catch {
                return Placements(mediansNs: medians, roundTripsPerMeasurement: perMeasurement,
                                  seconds: Double(cplatform_monotonic_ns() &- start) / 1e9, failure: "\(error)")
            }
            usleep(200_000)
        } while Double(cplatform_monotonic_ns() &- start) / 1e9 < seconds
        return Placements(mediansNs: medians, roundTripsPerMeasurement: perMeasurement,
                          seconds: Double(cplatform_monotonic_ns() &- start) / 1e9)
    }

    static func cpuVendor() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        for line in text.split(separator: "\n") where line.hasPrefix("vendor_id") || line.hasPrefix("CPU implementer") {
            if let colon = line.firstIndex(of: ":") {
                let value = line[line.index(after: colon)...].trimmingWhitespace()
                if !value.isEmpty { return value }
            }
        }
        return "unknown"
    }

    static func readInt(_ path: String) -> Int? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int($0.trimmingWhitespace()) }
    }

    /// The first mapping of library `name`: `liburing.so.2.3` (version after ".so.") or
    /// `libhugetlbfs-2.23.so` (version between "-" and ".so"), as /proc/self/maps names the real files.
    static func mappedLibrary(_ name: String, maps: String) -> RuntimeLibrary? {
        for line in maps.split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = String(line[slash...])
            let file = path.split(separator: "/").last.map(String.init) ?? ""
            guard file.hasPrefix(name + ".so") || file.hasPrefix(name + "-") else { continue }
            var version: String?
            if let so = file.range(of: ".so.") {
                version = String(file[so.upperBound...])
            } else if file.hasPrefix(name + "-"), file.hasSuffix(".so") {
                version = String(file.dropFirst(name.count + 1).dropLast(3))
            }
            return RuntimeLibrary(path: path, version: version.flatMap { $0.isEmpty ? nil : $0 })
        }
        return nil
    }
}
