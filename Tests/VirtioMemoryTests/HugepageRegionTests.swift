// Backing selection: hugetlb when pages are reserved, an honest fallback when not, and a
// typed error when a caller requires what the machine lacks.

import Testing
@testable import VirtioMemory
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized)
struct HugepageRegionTests {
    static let twoMiB = 2 << 20

    /// Reserves at least `extra` more free 2 MiB pages, returning the old total to restore.
    static func reserveTwoMiBPages(extra: Int) throws -> Int {
        guard getuid() == 0 else { try Test.cancel("not root: cannot reserve 2 MiB hugepages, hugetlb backing not tested") }
        let before = HugepageInventory.current()
        guard let pool = before.pool(pageSize: twoMiB) else { try Test.cancel("kernel has no 2 MiB hugepage size") }
        let got = HugepageInventory.reserve(atLeast: pool.total + extra)
        guard got >= pool.total + extra else {
            HugepageInventory.reserve(atLeast: 0)
            try Test.cancel("kernel refused to reserve \(extra) more 2 MiB hugepages (memory fragmented?)")
        }
        return pool.total
    }

    static func restoreTwoMiBPages(_ total: Int) {
        _ = SysFS.write("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "\(total)\n")
    }

    @Test func reportsHugetlbTwoMiBWhenPagesAreReserved() throws {
        let old = try Self.reserveTwoMiBPages(extra: 8)
        defer { Self.restoreTwoMiBPages(old) }
        let region = try HugepageRegion(bytes: 3 << 20, policy: .atMost(.hugetlb2M))
        #expect(region.backing == .hugetlb2M)
        #expect(region.report.observed.kernelPageSize == Self.twoMiB)
        #expect(region.size == 4 << 20)
        #expect(UInt(bitPattern: region.base) % UInt(Self.twoMiB) == 0)
        // The memory is really there and zeroed.
        #expect(region.bytes.allSatisfy { $0 == 0 })
        region.base.storeBytes(of: 0xABCD, toByteOffset: region.size - 8, as: UInt64.self)
        #expect(region.base.load(fromByteOffset: region.size - 8, as: UInt64.self) == 0xABCD)
    }

    @Test func shareableRegionIsAHugetlbMemfd() throws {
        let old = try Self.reserveTwoMiBPages(extra: 4)
        defer { Self.restoreTwoMiBPages(old) }
        let region = try HugepageRegion(bytes: 2 << 20, policy: .require(.hugetlb2M), shareable: true)
        #expect(region.backing == .hugetlb2M)
        let fd = try #require(region.fd)
        // A second mapping of the same fd sees the first one's bytes: what a vhost-user peer does.
        let peer = mmap(nil, region.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        let view = try #require(peer == MAP_FAILED ? nil : peer)
        defer { munmap(view, region.size) }
        region.base.storeBytes(of: 0x1234_5678, toByteOffset: 4096, as: UInt32.self)
        #expect(view.load(fromByteOffset: 4096, as: UInt32.self) == 0x1234_5678)
    }

    @Test func fallsBackAndSaysWhyWhenTooFewHugepagesAreFree() throws {
        let free = HugepageInventory.current().pool(pageSize: Self.twoMiB)?.free ?? 0
        // One page more than is free: hugetlb 2 MiB cannot serve it, so the region falls back.
        let bytes = (free + 1) * Self.twoMiB
        let region = try HugepageRegion(bytes: bytes, policy: .atMost(.hugetlb2M))
        #expect(region.backing == .transparentHuge || region.backing == .smallPages)
        let hugetlbAttempt = try #require(region.report.attempts.first { $0.backing == .hugetlb2M })
        let why = try #require(hugetlbAttempt.failure)
        #expect(why.contains("free"))
        #expect(region.report.summary.contains("fell back"))
        // What the report says is what smaps says now.
        #expect(region.observeBacking().backing == region.backing)
    }

    @Test func requiringAnUnavailableBackingIsATypedErrorWithARemedy() throws {
        let inventory = HugepageInventory.current()
        let oneGiB = 1 << 30
        let free1G = inventory.pool(pageSize: oneGiB)?.free ?? 0
        let bytes = (free1G + 1) * oneGiB
        let error = #expect(throws: MemoryError.self) {
            _ = try HugepageRegion(bytes: bytes, policy: .require(.hugetlb1G))
        }
        guard case let .backingUnavailable(requested, reason, remedy)? = error else {
            Issue.record("expected backingUnavailable, got \(String(describing: error))")
            return
        }
        #expect(requested == .hugetlb1G)
        #expect(!reason.isEmpty)
        if inventory.pool(pageSize: oneGiB) != nil {
            #expect(remedy.contains("nr_hugepages"))
        }
    }

    @Test func smallPagesAreAlwaysAvailable() throws {
        let region = try HugepageRegion(bytes: 10_000, policy: .require(.smallPages))
        #expect(region.backing == .smallPages)
        #expect(region.size == 12_288)
        #expect(region.report.attempts == [.init(backing: .smallPages, failure: nil)])
    }

    @Test func zeroSizeIsRejected() {
        #expect(throws: MemoryError.invalidRegionSize(bytes: 0)) { try HugepageRegion(bytes: 0) }
    }

    @Test func inventoryListsTheTwoMiBPool() {
        let inventory = HugepageInventory.current()
        #expect(inventory.pool(pageSize: Self.twoMiB) != nil)
        #expect(["always", "madvise", "never", "unavailable"].contains(inventory.thpMode))
    }
}
