// `vqbench doctor`'s judgement on synthetic machines: each gap gets its status, says what it
// costs, and names the exact remedy; only what stops the default suite is a blocker.

import Doorbell
import Foundation
import Testing
@testable import VQBenchKit

struct DoctorChecksTests {
    static let allOps = ["NOP", "READ", "WRITE", "ASYNC_CANCEL", "MSG_RING", "FUTEX_WAIT", "FUTEX_WAKE"]

    /// A machine with everything the suite wants.
    static func healthy() -> DoctorFacts {
        DoctorFacts(
            logicalCPUs: 2, cpuModel: "Intel(R) Xeon(R) Processor", cpuVendor: "GenuineIntel", virtualization: "kvm",
            hugepages2M: .init(reserved: 512, free: 512), hugepages1G: .init(reserved: 2, free: 2),
            thpEnabled: "madvise", thpShmemEnabled: "advise",
            doorbells: DoorbellProbe(kernel: "6.18.0", ioUring: .init(available: true, ops: allOps), seccomp: "disabled"),
            ioUringDisabledSysctl: 0, valgrindVersion: "3.19.0",
            liburing: .init(path: "/usr/lib/x86_64-linux-gnu/liburing.so.2.3", version: "2.3"),
            libhugetlbfs: .init(path: "/usr/lib/x86_64-linux-gnu/libhugetlbfs-2.23.so", version: "2.23"),
            placements: .init(mediansNs: [335.2, 52.4, 53.0], roundTripsPerMeasurement: 10_000, seconds: 2.1))
    }

    static func check(_ name: String, _ facts: DoctorFacts) throws -> DoctorCheck {
        try #require(Doctor.checks(facts).first { $0.name == name }, "no check named \(name)")
    }

    /// Scenarios of the quick suite whose doorbell is one of `ids`.
    static func quickScenarios(using ids: Set<String>) -> Int {
        Suite.quick.scenarios(memory: "thp").filter { ids.contains($0.doorbell) }.count
    }

    @Test func aHealthyMachineHasEveryCheckOKAndNoBlocker() {
        let checks = Doctor.checks(Self.healthy())
        #expect(checks.count == 14)
        for c in checks {
            #expect(c.status == .ok, "\(c.name): \(c.found)")
            #expect(c.remedy == nil, "\(c.name) has a remedy although ok")
        }
        #expect(Doctor.blockers(checks).isEmpty)
    }

    @Test func noReservedHugePagesNamesTheEchoCommand() throws {
        var f = Self.healthy()
        f.hugepages2M = .init(reserved: 0, free: 0)
        let c = try Self.check("2 MiB huge pages", f)
        #expect(c.status == .warn)
        #expect(c.found == "0 reserved, 0 free")
        #expect(c.remedy?.contains("echo 512 > /proc/sys/vm/nr_hugepages") == true)
        #expect(c.effect?.contains("transparent huge pages") == true)
        #expect(!c.blocksDefaultSuite)
    }

    @Test func tooFewFreeHugePagesAsksForMoreThanAreReserved() throws {
        var f = Self.healthy()
        f.hugepages2M = .init(reserved: 512, free: 3)
        let c = try Self.check("2 MiB huge pages", f)
        #expect(c.status == .warn)
        #expect(c.found.contains("needs 16 free"))
        #expect(c.remedy?.hasPrefix("echo 1024 > /proc/sys/vm/nr_hugepages") == true)
    }

    @Test func noGigabytePagesNamesTheSysfsPathAndOnlyWarns() throws {
        var f = Self.healthy()
        f.hugepages1G = .init(reserved: 0, free: 0)
        let c = try Self.check("1 GiB huge pages", f)
        #expect(c.status == .warn)
        #expect(c.remedy?.contains("echo 2 > /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages") == true)
        #expect(Doctor.blockers(Doctor.checks(f)).isEmpty)

        f.hugepages1G = nil
        #expect(try Self.check("1 GiB huge pages", f).status == .ok, "a CPU without 1 GiB pages has nothing to fix")
    }

    @Test func transparentHugePagesSwitchedOffNameTheirSysfsFiles() throws {
        var f = Self.healthy()
        f.thpEnabled = "never"
        f.thpShmemEnabled = "deny"
        let enabled = try Self.check("THP enabled", f)
        #expect(enabled.status == .warn)
        #expect(enabled.remedy?.hasPrefix("echo madvise > /sys/kernel/mm/transparent_hugepage/enabled") == true)
        let shmem = try Self.check("THP shmem_enabled", f)
        #expect(shmem.status == .warn)
        #expect(shmem.remedy?.hasPrefix("echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled") == true)
    }

    @Test func ioUringDisabledBySysctlSaysSoAndWhichScenariosAreLost() throws {
        var f = Self.healthy()
        f.doorbells = DoorbellProbe(kernel: "6.18.0",
                                    ioUring: .init(available: false, ops: [], reason: "io_uring_setup failed with errno 1: Operation not permitted"),
                                    seccomp: "disabled")
        f.ioUringDisabledSysctl = 2
        let c = try Self.check("io_uring", f)
        #expect(c.status == .warn)
        #expect(c.found.contains("kernel.io_uring_disabled=2"))
        #expect(c.remedy == "sysctl -w kernel.io_uring_disabled=0 (as root)")
        let effect = try #require(c.effect)
        // Exactly the io_uring doorbells: eventfd, futex, busy-poll and their hybrids are not lost.
        #expect(effect.hasPrefix("doorbells io_uring-eventfd, io_uring-msgring, io_uring-msgring-busy, io_uring-futex, "
                                 + "hybrid-io_uring-msgring unavailable; "), "\(effect)")
        let lost = Self.quickScenarios(using: ["io_uring-msgring", "io_uring-msgring-busy"])
        #expect(lost > 0)
        #expect(effect.contains("\(lost) of the quick suite's"))
        #expect(!c.blocksDefaultSuite)
        #expect(!Doctor.checks(f).contains { $0.name == "io_uring ops" }, "no ops are probed without a ring")
    }

    @Test func ioUringRefusedUnderASeccompFilterSaysSo() throws {
        var f = Self.healthy()
        f.doorbells = DoorbellProbe(kernel: "6.18.0",
                                    ioUring: .init(available: false, ops: [], reason: "io_uring_setup failed with errno 1: Operation not permitted"),
                                    seccomp: "filter")
        let c = try Self.check("io_uring", f)
        #expect(c.status == .warn)
        #expect(c.found.contains("seccomp filter"))
        #expect(c.remedy?.contains("--security-opt seccomp=unconfined") == true)
        let s = try Self.check("seccomp", f)
        #expect(s.status == .warn)
        #expect(s.found == "filter")
        #expect(Doctor.blockers(Doctor.checks(f)).isEmpty, "the quick suite still runs without io_uring")
    }

    @Test func aSeccompFilterThatLetsIoUringThroughIsOK() throws {
        var f = Self.healthy()
        f.doorbells.seccomp = "filter"
        let s = try Self.check("seccomp", f)
        #expect(s.status == .ok)
        #expect(s.remedy == nil)
    }

    @Test func anOldKernelWithoutMessageRingOrFutexOpsNamesTheOpsAndTheirKernels() throws {
        var f = Self.healthy()
        f.doorbells = DoorbellProbe(kernel: "5.15.0", ioUring: .init(available: true, ops: ["NOP", "READ", "WRITE", "ASYNC_CANCEL"]),
                                    seccomp: "disabled")
        #expect(try Self.check("io_uring", f).status == .ok)
        let c = try Self.check("io_uring ops", f)
        #expect(c.status == .warn)
        #expect(c.found == "NOP, READ, WRITE, ASYNC_CANCEL")
        let remedy = try #require(c.remedy)
        #expect(remedy.contains("IORING_OP_MSG_RING (added in Linux 5.18)"))
        #expect(remedy.contains("IORING_OP_FUTEX_WAIT (added in Linux 6.7)"))
        let effect = try #require(c.effect)
        #expect(effect.hasPrefix("doorbells io_uring-msgring, io_uring-msgring-busy, io_uring-futex, hybrid-io_uring-msgring unavailable"))
        #expect(effect.contains("\(Self.quickScenarios(using: ["io_uring-msgring", "io_uring-msgring-busy"])) of the quick suite's"))
    }

    @Test func onlyTheFutexOpsMissingCostsTheQuickSuiteNothing() throws {
        var f = Self.healthy()
        f.doorbells.ioUring.ops = ["NOP", "READ", "WRITE", "ASYNC_CANCEL", "MSG_RING"]
        let c = try Self.check("io_uring ops", f)
        #expect(c.status == .warn)
        #expect(c.effect?.hasPrefix("doorbells io_uring-futex unavailable") == true)
        #expect(c.effect?.contains("the quick suite uses none of them") == true)
        #expect(c.remedy?.contains("MSG_RING") == false)
    }

    @Test func missingValgrindNamesAptGetAndDoesNotBlockTheSuite() throws {
        var f = Self.healthy()
        f.valgrindVersion = nil
        let c = try Self.check("valgrind", f)
        #expect(c.status == .missing)
        #expect(c.remedy == "apt-get install valgrind")
        #expect(c.effect?.contains("vqbench gate") == true)
        #expect(!c.blocksDefaultSuite)
        #expect(Doctor.blockers(Doctor.checks(f)).isEmpty)
    }

    @Test func oneCPUBlocksTheSuiteAndSaysWhatHappens() throws {
        var f = Self.healthy()
        f.logicalCPUs = 1
        f.placements = .init(mediansNs: [], roundTripsPerMeasurement: 10_000, seconds: 0, skipped: true)
        let c = try Self.check("logical CPUs", f)
        #expect(c.status == .missing)
        #expect(c.blocksDefaultSuite)
        #expect(c.effect?.contains("share one CPU") == true)
        #expect(c.remedy?.contains("2 or more vCPUs") == true)
        #expect(Doctor.blockers(Doctor.checks(f)).map(\.name) == ["logical CPUs"])
        #expect(try Self.check("vCPU placements", f).status == .warn)
    }

    @Test func missingRuntimeLibrariesAreBlockersNamingTheirPackages() throws {
        var f = Self.healthy()
        f.liburing = nil
        f.libhugetlbfs = nil
        let blockers = Doctor.blockers(Doctor.checks(f))
        #expect(blockers.map(\.name) == ["liburing", "libhugetlbfs"])
        #expect(blockers[0].remedy?.hasPrefix("apt-get install liburing2") == true)
        #expect(blockers[1].remedy?.hasPrefix("apt-get install libhugetlbfs0") == true)
    }

    @Test func placementsPrintTheClassesSeenAndHowManyMeasurementsWereTaken() throws {
        let c = try Self.check("vCPU placements", Self.healthy())
        #expect(c.found.hasPrefix("2 placement class(es): rtt-53ns (52–53 ns, 2 of 3), rtt-340ns (335–335 ns, 1 of 3)"))
        #expect(c.found.contains("over 2.1 s"))
    }

    @Test func aFailedPlacementMeasurementWarnsWithTheError() throws {
        var f = Self.healthy()
        f.placements = .init(mediansNs: [], roundTripsPerMeasurement: 10_000, seconds: 0, failure: "sched_setaffinity failed")
        let c = try Self.check("vCPU placements", f)
        #expect(c.status == .warn)
        #expect(c.found == "measurement failed: sched_setaffinity failed")
        #expect(c.remedy != nil)
    }

    @Test func checksEncodeWithSnakeCaseKeys() throws {
        var f = Self.healthy()
        f.valgrindVersion = nil
        let data = try JSONEncoder().encode(try Self.check("valgrind", f))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["status"] as? String == "missing")
        #expect(object["blocks_default_suite"] as? Bool == false)
        #expect(object["remedy"] as? String == "apt-get install valgrind")
    }

    @Test func runtimeLibraryVersionsComeFromTheMappedFileNames() {
        let maps = """
            7f0000000000-7f0000001000 r--p 00000000 fd:00 12 /usr/lib/x86_64-linux-gnu/libc.so.6
            7f0000002000-7f0000003000 r--p 00000000 fd:00 13 /usr/lib/x86_64-linux-gnu/liburing.so.2.3
            7f0000004000-7f0000005000 r--p 00000000 fd:00 14 /usr/lib/x86_64-linux-gnu/libhugetlbfs-2.23.so
            """
        #expect(DoctorFacts.mappedLibrary("liburing", maps: maps)
                == .init(path: "/usr/lib/x86_64-linux-gnu/liburing.so.2.3", version: "2.3"))
        #expect(DoctorFacts.mappedLibrary("libhugetlbfs", maps: maps)
                == .init(path: "/usr/lib/x86_64-linux-gnu/libhugetlbfs-2.23.so", version: "2.23"))
        #expect(DoctorFacts.mappedLibrary("libnuma", maps: maps) == nil)
    }
}
