// A hostile peer breaks one ring rule at a time; the half that reads the ring answers with
// the exact typed error, marks the queue broken, and neither crashes nor spins.

import Testing
import VirtioMemory
@testable import Virtqueue

struct HostileSplitDriverTests {
    static let features: VirtioFeatures = [.version1, .indirectDescriptors]
    let a: QueueArena
    var spec: SpecSplitDriver
    var device: SplitDevice<GuestMemory>

    init() throws {
        a = try QueueArena(kind: .split, queueSize: 8, bufferSize: 256, bufferCount: 16, policy: .require(.smallPages))
        spec = SpecSplitDriver(arena: a)
        device = try a.splitDevice(features: Self.features)
    }

    var buf: UInt64 { a.bufferAddress(0) }

    /// Pops, expects `error`, then expects the queue to stay broken.
    mutating func expectBroken(_ error: VirtqueueError, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: error, sourceLocation: sourceLocation) { try device.pop() }
        #expect(device.brokenBy == error, sourceLocation: sourceLocation)
        #expect(throws: VirtqueueError.queueBroken(queue: 0, cause: error), sourceLocation: sourceLocation) { try device.pop() }
    }

    @Test mutating func rejectsAHeadIndexOutsideTheTable() {
        spec.makeAvailable([8])
        expectBroken(.descriptorIndexOutOfRange(queue: 0, index: 8, queueSize: 8))
    }

    @Test mutating func rejectsANextLinkOutsideTheTable() {
        spec.writeDescriptor(0, addr: buf, len: 8, flags: DescriptorFlags.next, next: 300)
        spec.makeAvailable([0])
        expectBroken(.descriptorIndexOutOfRange(queue: 0, index: 300, queueSize: 8))
    }

    @Test mutating func rejectsAChainLoop() {
        spec.writeDescriptor(0, addr: buf, len: 8, flags: DescriptorFlags.next, next: 1)
        spec.writeDescriptor(1, addr: buf, len: 8, flags: DescriptorFlags.next, next: 0)
        spec.makeAvailable([0])
        expectBroken(.chainLoop(queue: 0, head: 0, length: 8))
    }

    @Test mutating func rejectsAnIndirectTableInsideAnIndirectTable() {
        let table = a.indirectGPA
        spec.writeIndirectEntry(table: table, 0, addr: buf, len: 8, flags: DescriptorFlags.next, next: 1)
        spec.writeIndirectEntry(table: table, 1, addr: table, len: 32, flags: DescriptorFlags.indirect)
        spec.writeDescriptor(0, addr: table, len: 32, flags: DescriptorFlags.indirect)
        spec.makeAvailable([0])
        expectBroken(.nestedIndirect(queue: 0, head: 0))
    }

    @Test mutating func rejectsIndirectWithNext() {
        spec.writeIndirectEntry(table: a.indirectGPA, 0, addr: buf, len: 8, flags: 0)
        spec.writeDescriptor(0, addr: a.indirectGPA, len: 16, flags: DescriptorFlags.indirect | DescriptorFlags.next, next: 1)
        spec.makeAvailable([0])
        expectBroken(.indirectWithNext(queue: 0, head: 0))
    }

    @Test(arguments: [UInt32(0), 24, 17])
    mutating func rejectsAnIndirectTableLengthThatIsNotAMultipleOf16(length: UInt32) {
        spec.writeDescriptor(0, addr: a.indirectGPA, len: length, flags: DescriptorFlags.indirect)
        spec.makeAvailable([0])
        expectBroken(.indirectTableLength(queue: 0, head: 0, length: length))
    }

    @Test mutating func rejectsALoopInsideAnIndirectTable() {
        spec.writeIndirectEntry(table: a.indirectGPA, 0, addr: buf, len: 8, flags: DescriptorFlags.next, next: 1)
        spec.writeIndirectEntry(table: a.indirectGPA, 1, addr: buf, len: 8, flags: DescriptorFlags.next, next: 0)
        spec.writeDescriptor(0, addr: a.indirectGPA, len: 32, flags: DescriptorFlags.indirect)
        spec.makeAvailable([0])
        expectBroken(.chainLoop(queue: 0, head: 0, length: 2))
    }

    @Test func rejectsIndirectWhenNotNegotiated() throws {
        var device = try a.splitDevice(features: [.version1])
        spec.writeDescriptor(0, addr: a.indirectGPA, len: 16, flags: DescriptorFlags.indirect)
        var s = spec
        s.makeAvailable([0])
        #expect(throws: VirtqueueError.indirectNotNegotiated(queue: 0, head: 0)) { try device.pop() }
    }

    @Test mutating func rejectsABufferOutsideGuestMemory() {
        spec.writeDescriptor(0, addr: 0x10, len: 8, flags: 0)
        spec.makeAvailable([0])
        expectBroken(.bufferOutsideMemory(queue: 0, head: 0, gpa: 0x10, length: 8,
                                          cause: .addressOutsideMemory(gpa: 0x10, length: 8)))
    }

    @Test mutating func rejectsABufferWhoseEndOverflows() {
        spec.writeDescriptor(0, addr: .max - 3, len: 8, flags: 0)
        spec.makeAvailable([0])
        expectBroken(.bufferOutsideMemory(queue: 0, head: 0, gpa: .max - 3, length: 8,
                                          cause: .addressOverflow(gpa: .max - 3, length: 8)))
    }

    @Test mutating func rejectsABufferRunningPastTheEndOfMemory() {
        let end = a.memory.allRegions[0].end
        spec.writeDescriptor(0, addr: end - 4, len: 8, flags: 0)
        spec.makeAvailable([0])
        expectBroken(.bufferOutsideMemory(queue: 0, head: 0, gpa: end - 4, length: 8,
                                          cause: .rangeCrossesRegions(gpa: end - 4, length: 8, regionEnd: end)))
    }

    @Test mutating func rejectsAReadableDescriptorAfterAWritableOne() {
        spec.writeDescriptor(0, addr: buf, len: 8, flags: DescriptorFlags.write | DescriptorFlags.next, next: 1)
        spec.writeDescriptor(1, addr: buf, len: 8, flags: 0)
        spec.makeAvailable([0])
        expectBroken(.readableAfterWritable(queue: 0, head: 0, position: 1))
    }

    @Test mutating func rejectsAChainOfMoreThan4GiB() {
        // 8 valid bytes, then a length that takes the total past 2^32: refused before the
        // second buffer is even translated.
        spec.writeDescriptor(0, addr: buf, len: 8, flags: DescriptorFlags.next, next: 1)
        spec.writeDescriptor(1, addr: buf, len: .max, flags: 0)
        spec.makeAvailable([0])
        expectBroken(.chainTooLong(queue: 0, head: 0))
    }

    @Test mutating func rejectsAnIndirectTableLongerThanTheQueue() {
        for i in 0..<9 {
            spec.writeIndirectEntry(table: a.indirectGPA, i, addr: buf, len: 4, flags: i < 8 ? DescriptorFlags.next : 0, next: UInt16(i + 1))
        }
        spec.writeDescriptor(0, addr: a.indirectGPA, len: 9 * 16, flags: DescriptorFlags.indirect)
        spec.makeAvailable([0])
        expectBroken(.chainLongerThanQueue(queue: 0, head: 0, queueSize: 8))
    }

    @Test mutating func rejectsAnAvailableIndexThatJumpsMoreThanTheQueueSize() {
        spec.setAvailableIndex(9)
        expectBroken(.availableIndexJump(queue: 0, lastSeen: 0, published: 9))
    }

    @Test mutating func rejectsAnAvailableIndexThatMovesBackwards() {
        spec.setAvailableIndex(0xFFFF)
        expectBroken(.availableIndexJump(queue: 0, lastSeen: 0, published: 0xFFFF))
    }

    @Test mutating func keepsWorkAlreadyCompletedAndRecoversAfterReset() throws {
        spec.writeDescriptor(0, addr: buf, len: 8, flags: DescriptorFlags.write)
        spec.writeDescriptor(1, addr: buf, len: 8, flags: 0, next: 0)
        spec.makeAvailable([0, 9])
        let good = try #require(try device.pop())
        expectBroken(.descriptorIndexOutOfRange(queue: 0, index: 9, queueSize: 8))
        // The chain popped before the break is still completed and published.
        device.pushUsed(good, length: 4)
        device.publishUsed()
        #expect(spec.usedIdx == 1)
        #expect(spec.usedEntry(0) == (0, 4))
        try device.reset()
        #expect(device.brokenBy == nil)
    }
}

struct HostilePackedDriverTests {
    static let features: VirtioFeatures = [.version1, .ringPacked, .indirectDescriptors]
    let a: QueueArena
    var spec: SpecPackedDriver
    var device: PackedDevice<GuestMemory>

    init() throws {
        a = try QueueArena(kind: .packed, queueSize: 6, bufferSize: 256, bufferCount: 16, policy: .require(.smallPages))
        spec = SpecPackedDriver(arena: a)
        device = try a.packedDevice(features: Self.features)
    }

    var buf: UInt64 { a.bufferAddress(0) }

    mutating func expectBroken(_ error: VirtqueueError, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: error, sourceLocation: sourceLocation) { try device.pop() }
        #expect(throws: VirtqueueError.queueBroken(queue: 0, cause: error), sourceLocation: sourceLocation) { try device.pop() }
    }

    @Test mutating func rejectsAvailAndUsedBothEqualToTheWrapCounter() {
        // AVAIL = USED = 1 at the device's position in lap 1: no driver writes that.
        spec.writeDescriptor(0, addr: buf, len: 8, id: 0, flags: DescriptorFlags.available | DescriptorFlags.used)
        expectBroken(.impossiblePackedFlags(queue: 0, index: 0, flags: 0x8080, wrapCounter: true))
    }

    @Test mutating func treatsLastLapsDescriptorsAsNotYetAvailable() throws {
        // AVAIL = 0, USED = 1 in lap 1 is a leftover (available in a previous lap): not available, not an error.
        spec.writeDescriptor(0, addr: buf, len: 8, id: 0, flags: DescriptorFlags.used)
        #expect(try device.pop() == nil)
        #expect(device.brokenBy == nil)
    }

    @Test mutating func rejectsAChainWhoseNextMemberIsNotAvailable() {
        spec.writeDescriptor(1, addr: buf, len: 8, id: 0, flags: 0)
        spec.writeDescriptor(0, addr: buf, len: 8, id: 0, flags: DescriptorFlags.available | DescriptorFlags.next)
        expectBroken(.impossiblePackedFlags(queue: 0, index: 1, flags: 0, wrapCounter: true))
    }

    @Test mutating func rejectsAChainLongerThanTheRing() {
        // Every descriptor available with NEXT: following them goes round the ring.
        for i in 0..<6 {
            spec.writeDescriptor(i, addr: buf, len: 8, id: 0, flags: DescriptorFlags.available | DescriptorFlags.next)
        }
        expectBroken(.chainLoop(queue: 0, head: 0, length: 6))
    }

    @Test mutating func rejectsNestedIndirectAndBadTableLengths() throws {
        let table = a.indirectGPA
        RawMemory(memory: a.memory).set16(table + 14, DescriptorFlags.indirect)
        spec.makeAvailable(id: 1, [(table, 16, false)], extraFlags: DescriptorFlags.indirect)
        expectBroken(.nestedIndirect(queue: 0, head: 0))

        var fresh = try a.packedDevice(features: Self.features)
        var s2 = SpecPackedDriver(arena: a)
        s2.makeAvailable(id: 1, [(table, 20, false)], extraFlags: DescriptorFlags.indirect)
        #expect(throws: VirtqueueError.indirectTableLength(queue: 0, head: 0, length: 20)) { try fresh.pop() }
    }

    @Test mutating func rejectsABufferOutsideMemory() {
        spec.makeAvailable(id: 2, [(0x20, 64, true)])
        expectBroken(.bufferOutsideMemory(queue: 0, head: 0, gpa: 0x20, length: 64, cause: .addressOutsideMemory(gpa: 0x20, length: 64)))
    }

    @Test mutating func rejectsReadableAfterWritable() {
        spec.makeAvailable(id: 2, [(buf, 8, true), (buf, 8, false)])
        expectBroken(.readableAfterWritable(queue: 0, head: 0, position: 1))
    }
}

/// A hostile device, seen by the driver half.
struct HostileDeviceTests {
    @Test func splitDriverRejectsEveryBrokenUsedEntry() throws {
        let a = try QueueArena(kind: .split, queueSize: 8, bufferSize: 64, bufferCount: 8, policy: .require(.smallPages))
        func fresh() throws -> (SplitDriver, SpecSplitDevice, UInt16) {
            var d = try a.splitDriver(features: [.version1])
            let id = try d.post(Buffer(address: a.bufferAddress(0), length: 16, isWritable: true))
            d.publish()
            return (d, SpecSplitDevice(arena: a), id)
        }
        var (driver, spec, id) = try fresh()
        spec.markUsed(99, len: 0)
        #expect(throws: VirtqueueError.usedIdOutOfRange(queue: 0, id: 99, queueSize: 8)) { try driver.reclaim() }

        (driver, spec, id) = try fresh()
        spec.markUsed(UInt32(id) + 1, len: 0)
        #expect(throws: VirtqueueError.usedIdNotInFlight(queue: 0, id: UInt32(id) + 1)) { try driver.reclaim() }

        (driver, spec, id) = try fresh()
        spec.markUsed(UInt32(id), len: 17)
        #expect(throws: VirtqueueError.usedLengthTooLarge(queue: 0, id: UInt32(id), length: 17, writable: 16)) { try driver.reclaim() }

        (driver, spec, id) = try fresh()
        spec.setUsedIndex(5)
        #expect(throws: VirtqueueError.usedIndexJump(queue: 0, lastSeen: 0, published: 5, inFlight: 1)) { try driver.reclaim() }

        // The same buffer returned twice: the second time it is not in flight.
        (driver, spec, id) = try fresh()
        spec.markUsed(UInt32(id), len: 0)
        #expect(try driver.reclaim()?.id == id)
        _ = try driver.post(Buffer(address: a.bufferAddress(1), length: 8))
        driver.publish()
        spec.markUsed(UInt32(id) == 0 ? 5 : 0, len: 0)
        #expect(throws: VirtqueueError.self) { try driver.reclaim() }
    }

    @Test func inOrderSplitDriverRejectsAnOutOfOrderId() throws {
        let a = try QueueArena(kind: .split, queueSize: 8, bufferSize: 64, bufferCount: 8, policy: .require(.smallPages))
        var driver = try a.splitDriver(features: [.version1, .inOrder])
        for i in 0..<3 { _ = try driver.post(Buffer(address: a.bufferAddress(i), length: 8)) }
        driver.publish()
        var spec = SpecSplitDevice(arena: a)
        spec.markUsed(2, len: 0)    // slot 0 names buffer 2, but buffer 0 is the oldest
        #expect(throws: VirtqueueError.usedOutOfOrder(queue: 0, id: 2, expected: 0)) { try driver.reclaim() }
    }

    @Test func packedDriverRejectsBrokenUsedDescriptors() throws {
        let a = try QueueArena(kind: .packed, queueSize: 4, bufferSize: 64, bufferCount: 8, policy: .require(.smallPages))
        var driver = try a.packedDriver(features: [.version1, .ringPacked])
        let id = try driver.post(Buffer(address: a.bufferAddress(0), length: 16, isWritable: true))
        driver.publish()
        var spec = SpecPackedDevice(arena: a)
        spec.markUsed(id: 7, len: 0, count: 1)
        #expect(throws: VirtqueueError.usedIdOutOfRange(queue: 0, id: 7, queueSize: 4)) { try driver.reclaim() }
        spec = SpecPackedDevice(arena: a)
        spec.markUsed(id: id &+ 1, len: 0, count: 1)
        #expect(throws: VirtqueueError.usedIdNotInFlight(queue: 0, id: UInt32(id &+ 1))) { try driver.reclaim() }
        spec = SpecPackedDevice(arena: a)
        spec.markUsed(id: id, len: 99, count: 1)
        #expect(throws: VirtqueueError.usedLengthTooLarge(queue: 0, id: UInt32(id), length: 99, writable: 16)) { try driver.reclaim() }
        spec = SpecPackedDevice(arena: a)
        spec.markUsed(id: id, len: 16, count: 1)
        #expect(try driver.reclaim() == UsedBuffer(id: id, length: 16))
    }
}
