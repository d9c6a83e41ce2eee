// The bounce buffer: bytes round-trip, exhaustion and misuse are typed errors.

import Testing
@testable import VirtioMemory

struct BounceBufferTests {
    @Test func copiesRoundTripEveryByte() throws {
        var bounce = try BounceBuffer(bytes: 1 << 20, slotSize: 4096, policy: .require(.smallPages))
        let source = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let slot = try bounce.allocate()
        try source.withUnsafeBytes { try bounce.copyIn($0, to: slot) }
        var back = [UInt8](repeating: 0, count: source.count)
        try back.withUnsafeMutableBytes { try bounce.copyOut(from: slot, to: $0) }
        #expect(back == source)
        try bounce.release(slot)
        #expect(bounce.slotsInUse == 0)
    }

    @Test func exhaustionIsAnErrorAndReleaseMakesRoomAgain() throws {
        var bounce = try BounceBuffer(bytes: 8 * 4096, slotSize: 4096, policy: .require(.smallPages))
        var slots = Set<Int>()
        for _ in 0..<8 { slots.insert(try bounce.allocate()) }
        #expect(slots == Set(0..<8))
        #expect(throws: MemoryError.bounceBufferExhausted(slots: 8, slotSize: 4096)) { _ = try bounce.allocate() }
        try bounce.release(5)
        #expect(try bounce.allocate() == 5)
    }

    @Test func rejectsOversizedCopiesAndUnallocatedSlots() throws {
        var bounce = try BounceBuffer(bytes: 4 * 4096, slotSize: 4096, policy: .require(.smallPages))
        let big = [UInt8](repeating: 1, count: 4097)
        let slot = try bounce.allocate()
        #expect(throws: MemoryError.bounceCopyTooLarge(bytes: 4097, slotSize: 4096)) {
            try big.withUnsafeBytes { try bounce.copyIn($0, to: slot) }
        }
        #expect(throws: MemoryError.bounceSlotNotAllocated(slot: 3)) { try bounce.release(3) }
        try bounce.release(slot)
        #expect(throws: MemoryError.bounceSlotNotAllocated(slot: slot)) { try bounce.release(slot) }
        #expect(throws: MemoryError.bounceSlotNotAllocated(slot: 99)) {
            try big.prefix(8).withUnsafeBytes { try bounce.copyIn($0, to: 99) }
        }
    }
}
