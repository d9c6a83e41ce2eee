// serveBurst's in-place path (runs of single descriptors served where they lie, their used
// entries written at once) against the pop → serve → push reference on a twin: the same
// chains served with the same segments, the same ring bytes, the same buffers reclaimed,
// over schedules that mix single buffers, chains and indirect tables across many laps. And
// what the in-place path must keep: a packed batch stays invisible until publishUsed(), a
// used position behind the available one is served the general way, a hostile head in a
// burst ends it there and the next call names it.

import Testing
import VirtioMemory
@testable import Virtqueue

/// What a serve saw of one chain: id, readable/writable bytes and every segment.
private struct Served: Equatable {
    var id: UInt16
    var readable: UInt32
    var writable: UInt32
    var segments: [[UInt64]]
    var firstByte: UInt8
}

struct ServeBurstTests {
    static let queueSize = 16

    /// A deterministic length for the device to "write": within the chain's writable bytes;
    /// `whole` writes every writable byte except for every seventh id (IN_ORDER's one used
    /// entry per run needs whole lengths: both cases are met).
    static func written(_ chain: Chain, whole: Bool) -> UInt32 {
        if chain.writableBytes == 0 { return 0 }
        if whole && chain.id % 7 != 0 { return chain.writableBytes }
        return UInt32(chain.id) % chain.writableBytes + 1
    }

    private static func record(_ chain: Chain, _ segments: UnsafeBufferPointer<Segment>) -> Served {
        Served(id: chain.id, readable: chain.readableBytes, writable: chain.writableBytes,
               segments: segments.map { [$0.address, UInt64($0.length), $0.isWritable ? 1 : 0] },
               firstByte: segments.first?.host?.load(as: UInt8.self) ?? 0)
    }

    /// One schedule on both twins: `fast` serves with serveBurst, `reference` with
    /// popServePush (the pop → serve → push composition every half had before).
    func run<D: VirtqueueDriverHalf, V: VirtqueueDeviceHalf>(_ fast: inout Twin<D, V>, _ reference: inout Twin<D, V>,
                                                              seed: UInt64, mixed: Bool, whole: Bool = false, sameBytes: Bool = true) throws {
        var rng = SplitMix(state: seed)
        let fastBuffers = DeviceBurstBuffers(capacity: Self.queueSize)
        let referenceBuffers = DeviceBurstBuffers(capacity: Self.queueSize)
        defer { fastBuffers.deallocate(); referenceBuffers.deallocate() }
        var nextBuffer = 0
        var servedTotal = 0
        for step in 0..<600 {
            // Post: mostly runs of single buffers, sometimes a chain or an indirect table.
            let k = rng.below(Self.queueSize + 1)
            var i = 0
            while i < k {
                let shape = mixed ? rng.below(10) : 0
                let count = shape == 8 ? 2 + rng.below(3) : shape == 9 ? 1 + rng.below(4) : 1
                let buffers = (0..<count).map { j in
                    Buffer(address: fast.arena.bufferAddress((nextBuffer + j) % fast.arena.bufferCount),
                           length: UInt32(1 + rng.below(200)), isWritable: j == count - 1 && rng.below(2) == 1)
                }
                let ok: Bool
                if shape == 9 {
                    ok = fast.driver.freeDescriptors >= 1
                    if ok {
                        let a = try buffers.withUnsafeBufferPointer { try fast.driver.postIndirect($0) }
                        let b = try buffers.withUnsafeBufferPointer { try reference.driver.postIndirect($0) }
                        #expect(a == b)
                    }
                } else if count > 1 {
                    ok = fast.driver.freeDescriptors >= count
                    if ok {
                        let a = try buffers.withUnsafeBufferPointer { try fast.driver.post($0) }
                        let b = try buffers.withUnsafeBufferPointer { try reference.driver.post($0) }
                        #expect(a == b)
                    }
                } else {
                    let a = fast.driver.postBurst(count: 1) { _ in buffers[0] }
                    let b = reference.driver.postBurst(count: 1) { _ in buffers[0] }
                    #expect(a == b)
                    ok = a == 1
                }
                guard ok else { break }
                nextBuffer += count
                i += 1
            }
            fast.driver.publish()
            reference.driver.publish()
            // Serve up to p, in as many calls as the half takes.
            let p = 1 + rng.below(Self.queueSize)
            var seenFast: [Served] = []
            var seenReference: [Served] = []
            var left = p
            while left > 0 {
                let n = try fast.device.serveBurst(fastBuffers, maximum: left) { chain, segments in
                    seenFast.append(Self.record(chain, segments))
                    return Self.written(chain, whole: whole)
                }
                if n == 0 { break }
                left -= n
            }
            left = p
            while left > 0 {
                let n = try reference.device.popServePush(referenceBuffers, maximum: left) { chain, segments in
                    seenReference.append(Self.record(chain, segments))
                    return Self.written(chain, whole: whole)
                }
                if n == 0 { break }
                left -= n
            }
            #expect(seenFast == seenReference, "step \(step)")
            servedTotal += seenFast.count
            fast.device.publishUsed()
            reference.device.publishUsed()
            if sameBytes { #expect(fast.ringBytes == reference.ringBytes, "step \(step): ring memory differs") }
            let r = 1 + rng.below(Self.queueSize)
            var fromFast: [UsedBuffer] = []
            var fromReference: [UsedBuffer] = []
            _ = try fast.driver.reclaimBurst(maximum: r) { fromFast.append($0) }
            _ = try reference.driver.reclaimBurst(maximum: r) { fromReference.append($0) }
            #expect(fromFast == fromReference, "step \(step)")
        }
        #expect(servedTotal > 1000)
    }

    static func split(_ features: VirtioFeatures) throws -> Twin<SplitDriver, SplitDevice<GuestMemory>> {
        let a = try QueueArena(kind: .split, queueSize: queueSize, bufferSize: 256, bufferCount: 64, policy: .require(.smallPages))
        // Distinct payload bytes, so a wrong buffer shows in firstByte.
        for b in 0..<64 { a.bufferHost(b).storeBytes(of: UInt8(truncatingIfNeeded: b &* 7 &+ 1), as: UInt8.self) }
        return Twin(driver: try a.splitDriver(features: features), device: try a.splitDevice(features: features), arena: a)
    }

    static func packed(_ features: VirtioFeatures) throws -> Twin<PackedDriver, PackedDevice<GuestMemory>> {
        let a = try QueueArena(kind: .packed, queueSize: queueSize, bufferSize: 256, bufferCount: 64, policy: .require(.smallPages))
        for b in 0..<64 { a.bufferHost(b).storeBytes(of: UInt8(truncatingIfNeeded: b &* 7 &+ 1), as: UInt8.self) }
        return Twin(driver: try a.packedDriver(features: features), device: try a.packedDevice(features: features), arena: a)
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func splitServedInPlaceMatchesPopServePush(seed: UInt64) throws {
        let features: VirtioFeatures = [.version1, .eventIndex, .indirectDescriptors]
        var f = try Self.split(features)
        var r = try Self.split(features)
        try run(&f, &r, seed: seed, mixed: false)
        var f2 = try Self.split(features)
        var r2 = try Self.split(features)
        try run(&f2, &r2, seed: seed &+ 100, mixed: true)
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func packedServedInPlaceMatchesPopServePush(seed: UInt64) throws {
        let features: VirtioFeatures = [.version1, .eventIndex, .indirectDescriptors, .ringPacked]
        var f = try Self.packed(features)
        var r = try Self.packed(features)
        try run(&f, &r, seed: seed, mixed: false)
        var f2 = try Self.packed(features)
        var r2 = try Self.packed(features)
        try run(&f2, &r2, seed: seed &+ 100, mixed: true)
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func splitInOrderServedInPlaceMatchesPopServePush(seed: UInt64) throws {
        let features: VirtioFeatures = [.version1, .eventIndex, .indirectDescriptors, .inOrder]
        // Single buffers only: mixed, a run ends at the first chain and is reported by its own
        // used entry where popServePush reports the whole burst by one, and the driver frees
        // (and so numbers) differently from there (aMixedInOrderScheduleComesBackInOrder).
        for whole in [true, false] {
            var f = try Self.split(features)
            var r = try Self.split(features)
            try run(&f, &r, seed: seed &+ (whole ? 0 : 20), mixed: false, whole: whole)
        }
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func packedInOrderServedInPlaceMatchesPopServePush(seed: UInt64) throws {
        let features: VirtioFeatures = [.version1, .eventIndex, .indirectDescriptors, .ringPacked, .inOrder]
        // Single buffers only: mixed, a run ends at the first chain and is reported by its own
        // used entry where popServePush reports the whole burst by one, and the driver frees
        // (and so numbers) differently from there (aMixedInOrderScheduleComesBackInOrder).
        for whole in [true, false] {
            var f = try Self.packed(features)
            var r = try Self.packed(features)
            try run(&f, &r, seed: seed &+ (whole ? 0 : 20), mixed: false, whole: whole)
        }
    }

    /// Singles, chains and an indirect table under IN_ORDER, served until none is left:
    /// every buffer comes back once, in the order posted.
    func mixedInOrder<D: VirtqueueDriverHalf, V: VirtqueueDeviceHalf>(_ t: inout Twin<D, V>) throws {
        let buffers = DeviceBurstBuffers(capacity: 16)
        defer { buffers.deallocate() }
        let a = t.arena
        var posted: [UInt16] = []
        for lap in 0..<20 {
            for shape in [1, 1, 2, 1, 0, 1, 3, 1] {
                let list = (0..<max(shape, 2)).map { Buffer(address: a.bufferAddress(($0 + lap) % a.bufferCount), length: 32) }
                switch shape {
                case 1: posted.append(try t.driver.post(list[0]))
                case 0: posted.append(try list.withUnsafeBufferPointer { try t.driver.postIndirect($0) })
                default: posted.append(try Array(list.prefix(shape)).withUnsafeBufferPointer { try t.driver.post($0) })
                }
            }
            t.driver.publish()
            var served: [UInt16] = []
            while true {
                let n = try t.device.serveBurst(buffers, maximum: 16) { chain, _ in served.append(chain.id); return 0 }
                if n == 0 { break }
            }
            t.device.publishUsed()
            #expect(served == posted, "lap \(lap)")
            var got: [UInt16] = []
            while try t.driver.reclaimBurst(maximum: 16, { got.append($0.id) }) > 0 {}
            #expect(got == posted, "lap \(lap)")
            #expect(t.driver.buffersInFlight == 0)
            posted.removeAll()
        }
    }

    @Test func aMixedInOrderScheduleComesBackInOrder() throws {
        var s = try Self.split([.version1, .indirectDescriptors, .inOrder])
        try mixedInOrder(&s)
        var p = try Self.packed([.version1, .indirectDescriptors, .ringPacked, .inOrder])
        try mixedInOrder(&p)
    }

    @Test func aPackedInOrderRunWritesOneUsedDescriptor() throws {
        var t = try Self.packed([.version1, .ringPacked, .inOrder])
        let buffers = DeviceBurstBuffers(capacity: 8)
        defer { buffers.deallocate() }
        let a = t.arena
        let before = t.ringBytes
        #expect(t.driver.postBurst(count: 4) { Buffer(address: a.bufferAddress($0), length: 64) } == 4)
        t.driver.publish()
        let posted = t.ringBytes
        #expect(try t.device.serveBurst(buffers, maximum: 8) { _, _ in 0 } == 4)
        t.device.publishUsed()
        // Only the first slot changed (len, id of the last buffer, flags); slots 1-3 are as
        // the driver wrote them.
        let after = t.ringBytes
        #expect(after[16..<64] == posted[16..<64])
        #expect(after[0..<16] != posted[0..<16] && posted != before)
        #expect(UInt16(after[12]) | UInt16(after[13]) << 8 == 3)
        var got: [UInt16] = []
        #expect(try t.driver.reclaimBurst(maximum: 8) { got.append($0.id) } == 4)
        #expect(got == [0, 1, 2, 3])
    }

    @Test func aPackedBatchServedInPlaceIsInvisibleUntilPublished() throws {
        var t = try Self.packed([.version1, .ringPacked])
        let buffers = DeviceBurstBuffers(capacity: 8)
        defer { buffers.deallocate() }
        let a = t.arena
        #expect(t.driver.postBurst(count: 4) { Buffer(address: a.bufferAddress($0), length: 64, isWritable: true) } == 4)
        t.driver.publish()
        #expect(try t.device.serveBurst(buffers, maximum: 8) { _, _ in 10 } == 4)
        // Every used descriptor but the batch's first is written whole; the driver reads in
        // order and stops at the first, so nothing is visible yet.
        #expect(!t.driver.hasUsed())
        #expect(try t.driver.reclaim() == nil)
        t.device.publishUsed()
        var got: [UsedBuffer] = []
        #expect(try t.driver.reclaimBurst(maximum: 8) { got.append($0) } == 4)
        #expect(got.map(\.length) == [10, 10, 10, 10])
    }

    @Test func aPackedUsedPositionBehindTheAvailableOneIsServedTheGeneralWay() throws {
        var t = try Self.packed([.version1, .ringPacked])
        let buffers = DeviceBurstBuffers(capacity: 8)
        defer { buffers.deallocate() }
        let a = t.arena
        var ids: [UInt16] = []
        #expect(t.driver.postBurst(count: 3, { Buffer(address: a.bufferAddress($0), length: 32) }, posted: { ids.append($1) }) == 3)
        t.driver.publish()
        // The first chain popped and held (as a relay or an asynchronous device would).
        let held = try #require(try t.device.pop())
        #expect(held.id == ids[0])
        var served: [UInt16] = []
        #expect(try t.device.serveBurst(buffers, maximum: 8) { chain, _ in served.append(chain.id); return 0 } == 2)
        #expect(served == [ids[1], ids[2]])
        t.device.pushUsed(held, length: 0)
        t.device.publishUsed()
        var got: [UInt16] = []
        #expect(try t.driver.reclaimBurst(maximum: 8) { got.append($0.id) } == 3)
        // Used descriptors go in completion order.
        #expect(got == [ids[1], ids[2], ids[0]])
        // And the in-place path takes over again once the positions meet.
        #expect(t.driver.postBurst(count: 2) { Buffer(address: a.bufferAddress($0), length: 32) } == 2)
        t.driver.publish()
        #expect(try t.device.serveBurst(buffers, maximum: 8) { _, _ in 0 } == 2)
        t.device.publishUsed()
        #expect(try t.driver.reclaimBurst(maximum: 8) { _ in } == 2)
    }

    @Test func aHostileHeadInsideASplitBurstEndsItAndTheNextCallNamesIt() throws {
        let a = try QueueArena(kind: .split, queueSize: 8, bufferSize: 256, bufferCount: 16, policy: .require(.smallPages))
        var spec = SpecSplitDriver(arena: a)
        var device = try a.splitDevice(features: [.version1])
        let buffers = DeviceBurstBuffers(capacity: 8)
        defer { buffers.deallocate() }
        spec.writeDescriptor(0, addr: a.bufferAddress(0), len: 8, flags: 0)
        spec.writeDescriptor(1, addr: a.bufferAddress(1), len: 8, flags: 0)
        spec.makeAvailable([0, 1, 9, 1])  // the third head is outside the table
        var served: [UInt16] = []
        #expect(try device.serveBurst(buffers, maximum: 8) { chain, _ in served.append(chain.id); return 0 } == 2)
        #expect(served == [0, 1])
        #expect(throws: VirtqueueError.descriptorIndexOutOfRange(queue: 0, index: 9, queueSize: 8)) {
            try device.serveBurst(buffers, maximum: 8) { _, _ in 0 }
        }
        #expect(device.brokenBy == .descriptorIndexOutOfRange(queue: 0, index: 9, queueSize: 8))
        // The two served before it are published and stay so.
        device.publishUsed()
        #expect(spec.usedIdx == 2)
        #expect(throws: VirtqueueError.queueBroken(queue: 0, cause: .descriptorIndexOutOfRange(queue: 0, index: 9, queueSize: 8))) {
            try device.serveBurst(buffers, maximum: 8) { _, _ in 0 }
        }
    }

    @Test func aSplitBufferOutsideTheWindowIsServedTheGeneralWay() throws {
        // A length reaching past guest memory's end: not served in place, and the general
        // path names it.
        let a = try QueueArena(kind: .split, queueSize: 8, bufferSize: 256, bufferCount: 16, policy: .require(.smallPages))
        var spec = SpecSplitDriver(arena: a)
        var device = try a.splitDevice(features: [.version1])
        let buffers = DeviceBurstBuffers(capacity: 8)
        defer { buffers.deallocate() }
        spec.writeDescriptor(0, addr: a.bufferAddress(0), len: 8, flags: 0)
        spec.writeDescriptor(1, addr: a.bufferAddress(15), len: UInt32.max, flags: 0)
        spec.makeAvailable([0, 1])
        #expect(try device.serveBurst(buffers, maximum: 8) { _, _ in 0 } == 1)
        #expect(performing: { try device.serveBurst(buffers, maximum: 8) { _, _ in 0 } }, throws: { error in
            if case VirtqueueError.bufferOutsideMemory(queue: 0, head: 1, gpa: _, length: UInt32.max, cause: _) = error { return true }
            return false
        })
    }
}

/// The one-compare checks of the burst paths at their edges: a buffer ending exactly at
/// guest memory's end is served and one byte further is named by the general path; an
/// empty descriptor is served the general way; a used length equal to the buffer's
/// writable bytes is reclaimed and one more ends the burst, named by the next call.
struct BurstEdgeTests {
    @Test(arguments: [RingLayoutKind.split, .packed])
    func aBufferEndingAtMemorysEndIsServedAndOneByteMoreIsNamed(_ kind: RingLayoutKind) throws {
        let a = try QueueArena(kind: kind, queueSize: 8, bufferSize: 256, bufferCount: 16, policy: .require(.smallPages))
        let end = a.memory.allRegions[0].end
        let buffers = DeviceBurstBuffers(capacity: 8)
        defer { buffers.deallocate() }
        // Heads 0-2: an empty buffer, one ending at memory's end, one ending a byte past it.
        let descriptors: [(UInt64, UInt32)] = [(a.bufferAddress(0), 0), (end - 16, 16), (end - 16, 17)]
        var seen: [(UInt16, UInt32, Bool)] = []
        // The same serve and the same refusal on either layout's device half.
        func serve<D: VirtqueueDeviceHalf>(_ device: inout D) throws {
            let served = try device.serveBurst(buffers, maximum: 8) { chain, segments in
                seen.append((chain.id, chain.readableBytes, segments.first?.host != nil)); return 0
            }
            #expect(served == 2)
            #expect(throws: VirtqueueError.bufferOutsideMemory(queue: 0, head: 2, gpa: end - 16, length: 17,
                                                              cause: .rangeCrossesRegions(gpa: end - 16, length: 17, regionEnd: end))) {
                try device.serveBurst(buffers, maximum: 8) { _, _ in 0 }
            }
        }
        if kind == .split {
            var spec = SpecSplitDriver(arena: a)
            var device = try a.splitDevice(features: [.version1])
            for (i, d) in descriptors.enumerated() { spec.writeDescriptor(i, addr: d.0, len: d.1, flags: 0) }
            spec.makeAvailable([0, 1, 2])
            try serve(&device)
        } else {
            var spec = SpecPackedDriver(arena: a)
            var device = try a.packedDevice(features: [.version1, .ringPacked])
            for (i, d) in descriptors.enumerated() { spec.makeAvailable(id: UInt16(i), [(d.0, d.1, false)]) }
            try serve(&device)
        }
        #expect(seen.map(\.0) == [0, 1])
        #expect(seen.map(\.1) == [0, 16])
        // The empty buffer has no host address; the one at memory's end has one.
        #expect(seen.map(\.2) == [false, true])
    }

    @Test(arguments: [RingLayoutKind.split, .packed])
    func aUsedLengthOfTheWholeBufferIsReclaimedAndOneMoreIsNamed(_ kind: RingLayoutKind) throws {
        let a = try QueueArena(kind: kind, queueSize: 8, bufferSize: 256, bufferCount: 16, policy: .require(.smallPages))
        var lengths: [UInt32] = []
        if kind == .split {
            var driver = try a.splitDriver(features: [.version1])
            #expect(driver.postBurst(count: 3) { Buffer(address: a.bufferAddress($0), length: 64, isWritable: true) } == 3)
            driver.publish()
            var spec = SpecSplitDevice(arena: a)
            // Id 2, not 0: the compare must hold for any id, not only for the lowest.
            spec.markUsed(2, len: 64)
            spec.markUsed(1, len: 65)
            #expect(try driver.reclaimBurst(maximum: 8) { lengths.append($0.length) } == 1)
            #expect(throws: VirtqueueError.usedLengthTooLarge(queue: 0, id: 1, length: 65, writable: 64)) {
                try driver.reclaimBurst(maximum: 8) { _ in }
            }
            #expect(driver.buffersInFlight == 2)
        } else {
            var driver = try a.packedDriver(features: [.version1, .ringPacked])
            var ids: [UInt16] = []
            #expect(driver.postBurst(count: 3, { Buffer(address: a.bufferAddress($0), length: 64, isWritable: true) },
                                     posted: { ids.append($1) }) == 3)
            driver.publish()
            var spec = SpecPackedDevice(arena: a)
            spec.markUsed(id: ids[2], len: 64, count: 1)
            spec.markUsed(id: ids[1], len: 65, count: 1)
            #expect(try driver.reclaimBurst(maximum: 8) { lengths.append($0.length) } == 1)
            #expect(throws: VirtqueueError.usedLengthTooLarge(queue: 0, id: UInt32(ids[1]), length: 65, writable: 64)) {
                try driver.reclaimBurst(maximum: 8) { _ in }
            }
            #expect(driver.buffersInFlight == 2)
        }
        #expect(lengths == [64])
    }
}
