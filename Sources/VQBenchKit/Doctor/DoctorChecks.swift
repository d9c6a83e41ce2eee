// `vqbench doctor`'s judgement: what the suite needs, checked against gathered facts
// (DoctorFacts), one check per need with its status, what was found, what happens without it
// and the exact remedy. A pure function of the facts, so tests feed synthetic machines.

import Doorbell

/// One need of the suite and how this machine meets it.
public struct DoctorCheck: Sendable, Equatable, Encodable {
    public enum Status: String, Sendable, Equatable, Encodable {
        case ok, warn, missing
    }

    public var name: String
    public var status: Status
    /// What was found.
    public var found: String
    /// What happens on this machine because of it, when not ok.
    public var effect: String?
    /// The exact command or step that fixes it, when not ok.
    public var remedy: String?
    /// Whether the default (quick) suite cannot run without it.
    public var blocksDefaultSuite: Bool

    public init(name: String, status: Status, found: String, effect: String? = nil, remedy: String? = nil,
                blocksDefaultSuite: Bool = false) {
        self.name = name
        self.status = status
        self.found = found
        self.effect = effect
        self.remedy = remedy
        self.blocksDefaultSuite = blocksDefaultSuite
    }

    enum CodingKeys: String, CodingKey {
        case name, status, found, effect, remedy
        case blocksDefaultSuite = "blocks_default_suite"
    }
}

public enum Doctor {
    /// Free 2 MiB pages the suite needs before it puts rings on them (Suite.bestMemory's threshold).
    static let hugepagesNeededFree = 16

    public static let reserve2MCommand = "echo 512 > /proc/sys/vm/nr_hugepages"
    public static let reserve1GCommand = "echo 2 > /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"

    /// Every check, in the order `vqbench doctor` prints them.
    public static func checks(_ f: DoctorFacts) -> [DoctorCheck] {
        var checks = [cpus(f), cpu(f), virtualization(f), hugepages2M(f), hugepages1G(f), thp(f), thpShmem(f), ioUring(f)]
        if f.doorbells.ioUring.available { checks.append(ioUringOps(f)) }
        checks += [seccomp(f), valgrind(f),
                   library("liburing", f.liburing, package: "liburing2", needs: "every io_uring doorbell and the probe"),
                   library("libhugetlbfs", f.libhugetlbfs, package: "libhugetlbfs0", needs: "the huge page inventory"),
                   placements(f)]
        return checks
    }

    /// The checks that keep the default suite from running.
    public static func blockers(_ checks: [DoctorCheck]) -> [DoctorCheck] { checks.filter(\.blocksDefaultSuite) }

    // MARK: - CPUs

    static func cpus(_ f: DoctorFacts) -> DoctorCheck {
        if f.logicalCPUs >= 2 {
            return DoctorCheck(name: "logical CPUs", status: .ok,
                               found: "\(f.logicalCPUs) allowed (driver thread on CPU 0, device thread on CPU 1)")
        }
        return DoctorCheck(
            name: "logical CPUs", status: .missing, found: "\(f.logicalCPUs) allowed; cross-core scenarios need 2",
            effect: "driver and device threads share one CPU: every hand-off between the two spinning threads waits for a "
                + "scheduler time slice (milliseconds instead of ~100 ns), so calibration and the polled scenarios take "
                + "minutes and measure the scheduler, not the ring",
            remedy: "give the machine 2 or more vCPUs, or widen this process's CPU affinity (taskset -c 0,1 vqbench …)",
            blocksDefaultSuite: true)
    }

    static func cpu(_ f: DoctorFacts) -> DoctorCheck {
        guard f.cpuModel != "unknown" else {
            return DoctorCheck(name: "CPU", status: .warn, found: "model unknown (vendor \(f.cpuVendor))",
                               effect: "results documents cannot name the CPU their figures come from",
                               remedy: "mount /proc (results read the model from the 'model name' line of /proc/cpuinfo)")
        }
        return DoctorCheck(name: "CPU", status: .ok, found: "\(f.cpuModel) (vendor \(f.cpuVendor))")
    }

    static func virtualization(_ f: DoctorFacts) -> DoctorCheck {
        let found = f.virtualization == "none"
            ? "none (bare metal)"
            : "\(f.virtualization) (a VM: its vCPUs may move between placements; see vCPU placements)"
        return DoctorCheck(name: "virtualization", status: .ok, found: found)
    }

    // MARK: - Memory

    static func hugepages2M(_ f: DoctorFacts) -> DoctorCheck {
        let name = "2 MiB huge pages"
        let fallback = "rings fall back to transparent huge pages or 4 KiB pages (scenario ids say thp or 4K), "
            + "not comparable with hugepage-2M results"
        guard let pool = f.hugepages2M else {
            return DoctorCheck(name: name, status: .warn, found: "the kernel offers no 2 MiB hugetlb pool",
                               effect: fallback, remedy: "a kernel with CONFIG_HUGETLBFS, then \(reserve2MCommand)")
        }
        let found = "\(pool.reserved) reserved, \(pool.free) free"
        if pool.reserved == 0 {
            return DoctorCheck(name: name, status: .warn, found: found, effect: fallback, remedy: "\(reserve2MCommand) (as root)")
        }
        if pool.free < hugepagesNeededFree {
            return DoctorCheck(name: name, status: .warn,
                               found: found + "; the suite needs \(hugepagesNeededFree) free",
                               effect: "other processes hold the pool; " + fallback,
                               remedy: "echo \(pool.reserved + 512) > /proc/sys/vm/nr_hugepages (as root), or stop what holds them")
        }
        return DoctorCheck(name: name, status: .ok, found: found)
    }

    static func hugepages1G(_ f: DoctorFacts) -> DoctorCheck {
        let name = "1 GiB huge pages"
        guard let pool = f.hugepages1G else {
            return DoctorCheck(name: name, status: .ok,
                               found: "not offered by this CPU or kernel (optional: regions use 2 MiB pages instead)")
        }
        let found = "\(pool.reserved) reserved, \(pool.free) free"
        if pool.free == 0 {
            return DoctorCheck(name: name, status: .warn, found: found,
                               effect: "regions that would take 1 GiB pages use 2 MiB pages (optional; the quick suite's rings do not need them)",
                               remedy: "\(reserve1GCommand) (as root; if memory is too fragmented, boot with hugepagesz=1G hugepages=2)")
        }
        return DoctorCheck(name: name, status: .ok, found: found)
    }

    static func thp(_ f: DoctorFacts) -> DoctorCheck {
        let name = "THP enabled"
        switch f.thpEnabled {
        case "always", "madvise":
            return DoctorCheck(name: name, status: .ok, found: f.thpEnabled)
        case "unavailable":
            return DoctorCheck(name: name, status: .warn, found: "no /sys/kernel/mm/transparent_hugepage/enabled",
                               effect: "without free hugetlb pages, private rings get 4 KiB pages",
                               remedy: "a kernel with CONFIG_TRANSPARENT_HUGEPAGE, or reserve hugetlb pages: \(reserve2MCommand)")
        default:
            return DoctorCheck(name: name, status: .warn, found: f.thpEnabled,
                               effect: "without free hugetlb pages, private rings get 4 KiB pages",
                               remedy: "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled (as root)")
        }
    }

    static func thpShmem(_ f: DoctorFacts) -> DoctorCheck {
        let name = "THP shmem_enabled"
        switch f.thpShmemEnabled {
        case "always", "within_size", "advise", "force":
            return DoctorCheck(name: name, status: .ok, found: f.thpShmemEnabled)
        default:
            return DoctorCheck(name: name, status: .warn, found: f.thpShmemEnabled,
                               effect: "without free hugetlb pages, shareable regions (the memfd a vhost-user peer maps) get 4 KiB pages",
                               remedy: "echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled (as root)")
        }
    }

    // MARK: - io_uring

    /// The doorbells the probe refuses, each with the reason it gives.
    static func unavailableDoorbells(_ probe: DoorbellProbe) -> [(id: String, missing: String, reason: String)] {
        DoorbellTransport.all.compactMap { t in
            do throws(DoorbellError) {
                try probe.check(t)
                return nil
            } catch {
                if case let .transportUnavailable(_, missing, reason) = error { return (t.id, missing, reason) }
                return (t.id, "?", error.description)
            }
        }
    }

    /// "doorbells io_uring-msgring, … unavailable; 4 of the quick suite's 22 scenarios report unavailable (…)".
    static func doorbellEffect(_ ids: [String]) -> String {
        let quick = Suite.quick.scenarios(memory: "thp")
        let affected = quick.filter { ids.contains($0.doorbell) }
        let quickDoorbells = ids.filter { id in affected.contains { $0.doorbell == id } }
        var text = "doorbells \(ids.joined(separator: ", ")) unavailable; "
        if affected.isEmpty {
            text += "the quick suite uses none of them (standard and full report theirs unavailable)"
        } else {
            text += "\(affected.count) of the quick suite's \(quick.count) scenarios (split and packed × "
                + "\(quickDoorbells.joined(separator: ", "))) and the gate's syscall counts for them report unavailable"
        }
        return text
    }

    static func ioUring(_ f: DoctorFacts) -> DoctorCheck {
        let name = "io_uring"
        let io = f.doorbells.ioUring
        guard !io.available else { return DoctorCheck(name: name, status: .ok, found: "available") }
        let effect = doorbellEffect(unavailableDoorbells(f.doorbells).map(\.id))
        let reason = io.reason ?? "io_uring_setup failed"
        if let sysctl = f.ioUringDisabledSysctl, sysctl != 0 {
            let scope = sysctl == 1 ? "only members of kernel.io_uring_group and CAP_SYS_ADMIN may use it"
                                    : "disabled for every process"
            return DoctorCheck(name: name, status: .warn,
                               found: "disabled by sysctl kernel.io_uring_disabled=\(sysctl) (\(scope)): \(reason)",
                               effect: effect, remedy: "sysctl -w kernel.io_uring_disabled=0 (as root)")
        }
        if f.doorbells.seccomp == "filter" {
            return DoctorCheck(name: name, status: .warn,
                               found: "refused, most likely by this process's seccomp filter: \(reason)",
                               effect: effect,
                               remedy: "run outside the filter (e.g. docker run --security-opt seccomp=unconfined …), or allow "
                                   + "io_uring_setup, io_uring_enter and io_uring_register in its profile")
        }
        return DoctorCheck(name: name, status: .warn, found: "unavailable: \(reason)", effect: effect,
                           remedy: "a kernel with CONFIG_IO_URING (Linux 5.1+; MSG_RING needs 5.18, FUTEX_WAIT/WAKE 6.7) "
                               + "and no security module refusing io_uring_setup")
    }

    static func ioUringOps(_ f: DoctorFacts) -> DoctorCheck {
        let name = "io_uring ops"
        let ops = f.doorbells.ioUring.ops
        let found = ops.isEmpty ? "none confirmed" : ops.joined(separator: ", ")
        let refused = unavailableDoorbells(f.doorbells)
        guard !refused.isEmpty else { return DoctorCheck(name: name, status: .ok, found: found + " (every doorbell available)") }
        var reasons: [String] = []
        for r in refused where !reasons.contains(r.reason) { reasons.append(r.reason) }
        return DoctorCheck(name: name, status: .warn, found: found,
                           effect: doorbellEffect(refused.map(\.id)),
                           remedy: "boot a newer kernel: " + reasons.joined(separator: "; "))
    }

    static func seccomp(_ f: DoctorFacts) -> DoctorCheck {
        let name = "seccomp"
        switch f.doorbells.seccomp {
        case "disabled":
            return DoctorCheck(name: name, status: .ok, found: "disabled")
        case nil:
            return DoctorCheck(name: name, status: .ok, found: "not in /proc/self/status (a kernel without seccomp)")
        case "filter" where f.doorbells.ioUring.available:
            return DoctorCheck(name: name, status: .ok, found: "filter (it lets io_uring through)")
        case let mode?:
            return DoctorCheck(name: name, status: .warn, found: mode,
                               effect: "the filter refuses system calls the doorbells need (io_uring_setup: see io_uring)",
                               remedy: "run outside the filter (e.g. docker run --security-opt seccomp=unconfined …), or allow "
                                   + "io_uring_setup, io_uring_enter and io_uring_register in its profile")
        }
    }

    // MARK: - Tools and libraries

    static func valgrind(_ f: DoctorFacts) -> DoctorCheck {
        guard let version = f.valgrindVersion else {
            return DoctorCheck(name: "valgrind", status: .missing, found: "not installed",
                               effect: "vqbench gate cannot count instructions (callgrind); the default suite runs without it",
                               remedy: "apt-get install valgrind")
        }
        return DoctorCheck(name: "valgrind", status: .ok, found: version + " (vqbench gate counts instructions with it)")
    }

    static func library(_ name: String, _ library: DoctorFacts.RuntimeLibrary?, package: String, needs: String) -> DoctorCheck {
        guard let library else {
            return DoctorCheck(name: name, status: .missing, found: "not loaded",
                               effect: "vqbench needs it at run time for \(needs)",
                               remedy: "apt-get install \(package) (building needs \(name)-dev)", blocksDefaultSuite: true)
        }
        return DoctorCheck(name: name, status: .ok, found: (library.version.map { $0 + " " } ?? "") + "(\(library.path))")
    }

    // MARK: - Placements

    static func placements(_ f: DoctorFacts) -> DoctorCheck {
        let name = "vCPU placements"
        let p = f.placements
        if f.logicalCPUs < 2 {
            return DoctorCheck(name: name, status: .warn, found: "not measured: one CPU has no cross-core round trip",
                               effect: "calibration's cache-line round trip measures the scheduler",
                               remedy: "give the machine 2 or more vCPUs (see logical CPUs)")
        }
        if let failure = p.failure {
            return DoctorCheck(name: name, status: .warn, found: "measurement failed: \(failure)",
                               effect: "every measured scenario pins its threads the same way and fails alike",
                               remedy: "let this process pin threads to CPUs 0 and 1 (sched_setaffinity; check its cpuset)")
        }
        if p.skipped { return DoctorCheck(name: name, status: .ok, found: "not measured (--placement-seconds 0)") }
        return DoctorCheck(name: name, status: .ok, found: placementSummary(p))
    }

    /// What the cache-line round trips showed. One function, so a clustering of the medians
    /// into placements can replace it.
    public static func placementSummary(_ p: DoctorFacts.Placements) -> String {
        let classes = PlacementClasses.cluster(p.mediansNs)
        let seen = classes.map { c in
            "\(c.name) (\(Int(c.minNs.rounded()))–\(Int(c.maxNs.rounded())) ns, \(c.samples) of \(p.mediansNs.count))"
        }
        return "\(classes.count) placement class(es): \(seen.joined(separator: ", ")) — cache-line round trip, "
            + "\(p.mediansNs.count) measurements of \(p.roundTripsPerMeasurement) round trips over \(fixed(p.seconds, 1)) s"
    }
}
