// How long a destination takes to map the guest's memory as the memory grows — the part of
// a vDPA migration's downtime that grows with the VM (vDPA guests see 1–2 s on 39–128 GB,
// most of it pinning and mapping). A consumer hands a device one memory region of N GiB
// (a memfd whose pages the guest has already touched, as a running guest's are) and the time
// of VHOST_SET_MEM_TABLE is taken for three strategies:
//
// - platform IOMMU, pinned (vp_vdpa): every page is pinned (mlock faults in and locks each
//   page of this side's mapping, what pin_user_pages does for vhost-vdpa) and the device
//   gets the identity domain;
// - on-chip IOMMU, pinned (mlx5_vnet): pinned likewise, then set_map builds the memory key
//   (CREATE_MKEY: modelled firmware time, †);
// - software IOTLB on virtual addresses (vdpa_sim, use_va): mapped without pinning, one IOTLB
//   range per region.
//
// The pinning is real work on this machine's memory; only the firmware's part is modelled.

import CPlatform
import Glibc
import Mediation
import Virtqueue
import VirtioMemory

public enum MapTimeRun {
    public struct Strategy: Sendable {
        public var name: String
        public var parent: String
        public var pins: Bool
    }

    public static let strategies = [
        Strategy(name: "platform IOMMU, pinned", parent: "vp_vdpa", pins: true),
        Strategy(name: "on-chip IOMMU, pinned", parent: "mlx5_vnet", pins: true),
        Strategy(name: "software IOTLB, virtual addresses", parent: "vdpa_sim", pins: false),
    ]

    public struct Figure: Sendable {
        public var strategy: String
        public var parent: String
        public var gibibytes: Int
        /// VHOST_SET_MEM_TABLE as the consumer timed it (median of the repetitions).
        public var mapNanoseconds: UInt64
        /// The parent's modelled part of it (firmware), never inside `mapNanoseconds`.
        public var modelledNanoseconds: Double
        /// The guest touching its memory first (not part of the map; for scale).
        public var populateNanoseconds: UInt64
    }

    public enum MapTimeError: Error, CustomStringConvertible {
        case guestMemory(String)
        public var description: String {
            switch self { case let .guestMemory(s): "guest memory: \(s)" }
        }
    }

    /// MFD_HUGETLB | MFD_HUGE_2MB (linux/memfd.h).
    static let hugetlb2MiB: UInt32 = 0x0004 | (21 << 26)

    /// The guest's memory: a memfd of `bytes` (of 2 MiB huge pages with `hugetlb`), every
    /// page allocated (a running guest's pages are resident).
    static func guestMemory(bytes: Int, hugetlb: Bool) throws -> (fd: Int32, populateNs: UInt64) {
        let fd = cplatform_memfd_create("vqbench-guest-ram", hugetlb ? hugetlb2MiB : 0)
        guard fd >= 0 else { throw MapTimeError.guestMemory("memfd_create: errno \(errno)") }
        guard ftruncate(fd, off_t(bytes)) == 0 else {
            let e = errno
            close(fd)
            throw MapTimeError.guestMemory("ftruncate to \(bytes) bytes: errno \(e)")
        }
        let t0 = cplatform_monotonic_ns()
        // posix_fallocate answers with the error number itself; an interrupted one (hugetlbfs
        // checks for signals page by page) is asked again and skips what it already allocated.
        var rc = posix_fallocate(fd, 0, off_t(bytes))
        var retries = 0
        while rc == EINTR && retries < 100 {
            rc = posix_fallocate(fd, 0, off_t(bytes))
            retries += 1
        }
        let ns = cplatform_monotonic_ns() &- t0
        guard rc == 0 else {
            close(fd)
            throw MapTimeError.guestMemory("posix_fallocate of \(bytes) bytes (is there that much free memory\(hugetlb ? ", in reserved 2 MiB huge pages: /proc/sys/vm/nr_hugepages" : "")?): errno \(rc)")
        }
        return (fd, ns)
    }

    /// Each strategy at each size, `repetitions` maps each (a fresh device every time).
    public static func run(gibibytes: [Int], repetitions: Int = 3, hugetlb: Bool = false, log: (String) -> Void = { _ in }) throws -> [Figure] {
        var figures: [Figure] = []
        for size in gibibytes {
            let bytes = size << 30
            let (fd, populateNs) = try guestMemory(bytes: bytes, hugetlb: hugetlb)
            defer { close(fd) }
            log("map sweep: \(size) GiB of guest memory populated in \(fixed(Double(populateNs) / 1e6, 0)) ms")
            for s in strategies {
                var times: [UInt64] = []
                var modelled: [Double] = []
                for _ in 0..<max(repetitions, 1) {
                    let (ns, m) = try mapOnce(s, fd: fd, bytes: bytes)
                    times.append(ns)
                    modelled.append(m)
                }
                times.sort()
                modelled.sort()
                figures.append(Figure(strategy: s.name, parent: s.parent, gibibytes: size, mapNanoseconds: times[times.count / 2],
                                      modelledNanoseconds: modelled[modelled.count / 2], populateNanoseconds: populateNs))
            }
        }
        return figures
    }

    /// One device brought to FEATURES_OK, then handed the memory table; released after.
    static func mapOnce(_ s: Strategy, fd: Int32, bytes: Int) throws -> (UInt64, Double) {
        let device = try ParentRegistry.named(s.parent).make(ParentConfiguration(name: "vdpa-map"))
        let binding = try VhostBinding(device: device, bus: VDPABus(), pinsGuestMemory: s.pins)
        defer { binding.unbind() }
        try binding.handle(.setOwner)
        guard case let .features(offered) = try binding.handle(.getFeatures) else { throw MapTimeError.guestMemory("no features") }
        try binding.handle(.setStatus(.acknowledge))
        try binding.handle(.setStatus([.acknowledge, .driver]))
        try binding.handle(.setFeatures(offered.intersection([.version1, .accessPlatform])))
        try binding.handle(.setStatus([.acknowledge, .driver, .featuresOK]))
        let m0 = device.modelledControlNanoseconds
        let t0 = cplatform_monotonic_ns()
        try binding.handle(.setMemTable([VhostMemoryRegion(guestAddress: 0x1_0000_0000, size: UInt64(bytes), fd: fd)]))
        let ns = cplatform_monotonic_ns() &- t0
        return (ns, device.modelledControlNanoseconds - m0)
    }
}
