// GuestMemory.translate: the only door from a guest address to memory. Every edge case
// gives the right answer or the right error.

import Testing
@testable import VirtioMemory

struct GuestMemoryTests {
    /// Two adjacent regions at 0x10000 and 0x20000, a hole, then a third at 0x40000.
    let backing = try! HugepageRegion(bytes: 3 * 0x10000, policy: .require(.smallPages))
    var memory: GuestMemory {
        try! GuestMemory(regions: [
            GuestRegion(gpa: 0x40000, size: 0x10000, host: backing.base + 0x20000),
            GuestRegion(gpa: 0x10000, size: 0x10000, host: backing.base),
            GuestRegion(gpa: 0x20000, size: 0x10000, host: backing.base + 0x10000),
        ])
    }

    @Test func translatesInsideARegionIncludingBothEdges() throws {
        #expect(try memory.translate(0x10000, length: 1) == backing.base)
        #expect(try memory.translate(0x1FFFF, length: 1) == backing.base + 0xFFFF)
        #expect(try memory.translate(0x10000, length: 0x10000) == backing.base)
        #expect(try memory.translate(0x40010, length: 16) == backing.base + 0x20010)
    }

    @Test func rejectsARangeThatRunsOneBytePastItsRegion() {
        #expect(throws: MemoryError.rangeCrossesRegions(gpa: 0x1FFFF, length: 2, regionEnd: 0x20000)) {
            try memory.translate(0x1FFFF, length: 2)
        }
    }

    @Test func rejectsARangeAcrossTwoAdjacentRegions() {
        // Adjacent in guest space, but not in host space: it must not be handed out as one pointer.
        #expect(throws: MemoryError.rangeCrossesRegions(gpa: 0x1F000, length: 0x2000, regionEnd: 0x20000)) {
            try memory.translate(0x1F000, length: 0x2000)
        }
    }

    @Test func rejectsAddressesInAHoleAndBeforeTheFirstRegion() {
        #expect(throws: MemoryError.addressOutsideMemory(gpa: 0x30000, length: 4)) { try memory.translate(0x30000, length: 4) }
        #expect(throws: MemoryError.addressOutsideMemory(gpa: 0xFFFF, length: 1)) { try memory.translate(0xFFFF, length: 1) }
        #expect(throws: MemoryError.addressOutsideMemory(gpa: 0x50000, length: 1)) { try memory.translate(0x50000, length: 1) }
        #expect(throws: MemoryError.rangeCrossesRegions(gpa: 0x2FFF0, length: 0x20, regionEnd: 0x30000)) {
            try memory.translate(0x2FFF0, length: 0x20)
        }
    }

    @Test func rejectsOverflowOfAddressPlusLength() {
        #expect(throws: MemoryError.addressOverflow(gpa: .max - 3, length: 8)) { try memory.translate(.max - 3, length: 8) }
        #expect(throws: MemoryError.addressOverflow(gpa: 0x10000, length: .max)) { try memory.translate(0x10000, length: .max) }
    }

    @Test func rejectsZeroLength() {
        #expect(throws: MemoryError.zeroLength(gpa: 0x10000)) { try memory.translate(0x10000, length: 0) }
    }

    @Test func rejectsOverlappingRegions() {
        #expect(throws: MemoryError.overlappingRegions(firstGPA: 0x1000, secondGPA: 0x1800)) {
            try GuestMemory(regions: [
                GuestRegion(gpa: 0x1800, size: 0x1000, host: backing.base),
                GuestRegion(gpa: 0x1000, size: 0x1000, host: backing.base),
            ])
        }
    }

    @Test func mapsHostPointersBackToGuestAddresses() {
        #expect(memory.guestAddress(of: backing.base + 0x10010) == 0x20010)
        #expect(memory.guestAddress(of: backing.base + 0x30000) == nil)
    }

    @Test func backedMemoryLaysRegionsOutAligned() throws {
        let a = try HugepageRegion(bytes: 8192, policy: .require(.smallPages))
        let b = try HugepageRegion(bytes: 4096, policy: .require(.smallPages))
        let backed = try GuestMemory.Backed(regions: [a, b], firstGPA: 0x1000)
        #expect(backed.memory.allRegions.map(\.gpa) == [0x1000, 0x3000])
        #expect(try backed.memory.translate(0x3000, length: 4096) == b.base)
    }
}
