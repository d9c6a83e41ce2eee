// The software IOTLB against a plain reference model (a linear list of mappings), over
// thousands of random map / unmap / lookup operations.

import PropertyBased
import Testing
@testable import VirtioMemory

/// The obvious, slow IOTLB: a list scanned from front to back.
private struct ReferenceIOTLB {
    var mappings: [IOTLB.Mapping] = []

    func find(_ iova: UInt64) -> IOTLB.Mapping? {
        mappings.first { $0.iova <= iova && iova - $0.iova < $0.size }
    }

    mutating func map(_ m: IOTLB.Mapping) -> Bool {
        let overlaps = mappings.contains { a in a.iova < m.iova + m.size && m.iova < a.iova + a.size }
        if overlaps { return false }
        mappings.append(m)
        return true
    }

    mutating func unmap(iova: UInt64, size: UInt64) -> Int? {
        let end = iova + size
        let touched = mappings.filter { $0.iova < end && iova < $0.iova + $0.size }
        let inside = touched.allSatisfy { $0.iova >= iova && $0.iova + $0.size <= end }
        let covered = touched.reduce(UInt64(0)) { $0 + $1.size }
        // Exactly whole mappings with nothing unmapped in between, like the IOTLB requires.
        guard !touched.isEmpty, inside, touched.contains(where: { $0.iova == iova }),
              touched.contains(where: { $0.iova + $0.size == end }), covered <= size else { return nil }
        mappings.removeAll { $0.iova < end && iova < $0.iova + $0.size }
        return touched.count
    }
}

/// SplitMix64: a small seeded generator so a failing seed replays exactly.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

struct IOTLBTests {
    @Test func agreesWithAReferenceModelOnRandomOperations() async {
        await propertyCheck(count: 40, input: Gen.uint64()) { seed in
            var rng = SplitMix64(state: seed)
            var iotlb = IOTLB()
            var model = ReferenceIOTLB()
            for _ in 0..<1000 {
                // A small IOVA space (64 pages) so maps collide and unmaps hit often.
                let iova = UInt64.random(in: 0..<64, using: &rng) * 0x1000
                let size = UInt64.random(in: 1...4, using: &rng) * 0x1000
                switch UInt8.random(in: 0..<10, using: &rng) {
                case 0..<4:
                    let m = IOTLB.Mapping(iova: iova, size: size, gpa: 0x8000_0000 + iova * 3,
                                          access: Bool.random(using: &rng) ? .readWrite : .read)
                    let expected = model.map(m)
                    let got = (try? iotlb.map(m)) != nil
                    #expect(got == expected, "map \(m) seed \(seed)")
                case 4..<6:
                    let expected = model.unmap(iova: iova, size: size)
                    let got = try? iotlb.unmap(iova: iova, size: size)
                    #expect(got == expected, "unmap 0x\(String(iova, radix: 16))+\(size) seed \(seed)")
                default:
                    let probe = iova + UInt64.random(in: 0..<0x1000, using: &rng)
                    let expected = model.find(probe)
                    let got = try? iotlb.lookup(iova: probe, length: 8, access: .read)
                    #expect(got?.gpa == expected.map { $0.gpa + (probe - $0.iova) }, "lookup seed \(seed)")
                }
            }
            #expect(iotlb.count == model.mappings.count)
        }
    }

    @Test func rejectsOverlappingMapsAndCountsHitsAndMisses() throws {
        var iotlb = IOTLB()
        try iotlb.map(.init(iova: 0x1000, size: 0x2000, gpa: 0x10_0000))
        #expect(throws: MemoryError.overlappingMapping(iova: 0x2000, size: 0x1000, existingIOVA: 0x1000, existingSize: 0x2000)) {
            try iotlb.map(.init(iova: 0x2000, size: 0x1000, gpa: 0))
        }
        #expect(try iotlb.translate(iova: 0x1800, length: 0x100, access: .write) == 0x10_0800)
        #expect(throws: MemoryError.iotlbMiss(iova: 0x3000, length: 1)) { try iotlb.translate(iova: 0x3000, length: 1, access: .read) }
        #expect(iotlb.hits == 1)
        #expect(iotlb.misses == 1)
    }

    @Test func splitsARangeThatSpansTwoMappings() throws {
        var iotlb = IOTLB()
        try iotlb.setMap([
            .init(iova: 0x2000, size: 0x1000, gpa: 0x90_0000),
            .init(iova: 0x1000, size: 0x1000, gpa: 0x50_0000),
        ])
        let first = try iotlb.lookup(iova: 0x1F00, length: 0x200, access: .read)
        #expect(first == .init(gpa: 0x50_0F00, length: 0x100))
        let second = try iotlb.lookup(iova: 0x2000, length: 0x100, access: .read)
        #expect(second == .init(gpa: 0x90_0000, length: 0x100))
        #expect(throws: MemoryError.iotlbRangeCrossesMappings(iova: 0x1F00, length: 0x200, mappingEnd: 0x2000)) {
            try iotlb.translate(iova: 0x1F00, length: 0x200, access: .read)
        }
    }

    @Test func enforcesAccessRights() throws {
        var iotlb = IOTLB()
        try iotlb.map(.init(iova: 0, size: 0x1000, gpa: 0x1000, access: .read))
        #expect(throws: MemoryError.iotlbPermissionDenied(iova: 0x10, needed: .write, granted: .read)) {
            try iotlb.translate(iova: 0x10, length: 4, access: .write)
        }
    }

    @Test func setMapRejectsOverlapsAndWraparound() {
        var iotlb = IOTLB()
        #expect(throws: MemoryError.overlappingMapping(iova: 0x1800, size: 0x1000, existingIOVA: 0x1000, existingSize: 0x1000)) {
            try iotlb.setMap([.init(iova: 0x1000, size: 0x1000, gpa: 0), .init(iova: 0x1800, size: 0x1000, gpa: 0)])
        }
        #expect(throws: MemoryError.invalidMapping(iova: .max, size: 2)) {
            try iotlb.setMap([.init(iova: .max, size: 2, gpa: 0)])
        }
        #expect(throws: MemoryError.unmapOfUnmappedRange(iova: 0, size: 0x1000)) { try iotlb.unmap(iova: 0, size: 0x1000) }
    }
}
