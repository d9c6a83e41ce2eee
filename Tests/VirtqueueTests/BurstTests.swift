// The burst calls against the one-descriptor calls: the same operations, as bursts on one
// ring and one at a time on a twin, leave byte-identical rings and hand back the same
// chains and buffers; a rule broken inside a burst ends the burst there and is thrown by
// the next call; IN_ORDER bursts are reported by one used entry.

import Testing
import VirtioMemory
@testable import Virtqueue

/// A small deterministic generator (so a failure replays).
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// One layout's driver and device over one arena.
struct Twin<D: VirtqueueDriverHalf, V: VirtqueueDeviceHalf> {
    var driver: D
    var device: V
    let arena: QueueArena
    var ringBytes: [UInt8] {
        let count = arena.kind == .split ? try! SplitLayout(queueSize: arena.queueSize).totalSize
                                         : try! PackedLayout(queueSize: arena.queueSize).totalSize
        let p = try! arena.memory.translate(arena.ringGPA, length: UInt64(count))
        return Array(UnsafeRawBufferPointer(start: p, count: count))
    }
}

struct BurstEquivalenceTests {
    static let queueSize = 16

    /// Runs the same random schedule on `bursts` (burst calls) and `singles` (one at a time).
    func run<D: VirtqueueDriverHalf, V: VirtqueueDeviceHalf>(_ bursts: inout Twin<D, V>, _ singles: inout Twin<D, V>,
                                                              seed: UInt64, sameBytes: Bool = true) throws {
        var rng = SplitMix(state: seed)
        let chains = UnsafeMutablePointer<Chain>.allocate(capacity: Self.queueSize)
        defer { chains.deallocate() }
        var nextBuffer = 0
        for step in 0..<400 {
            // Post k buffers: random length, direction.
            let k = rng.below(Self.queueSize + 1)
            var posted: [Buffer] = []
            for i in 0..<k {
                posted.append(Buffer(address: bursts.arena.bufferAddress((nextBuffer + i) % bursts.arena.bufferCount),
                                     length: UInt32(1 + rng.below(200)), isWritable: rng.below(2) == 1))
            }
            let n = bursts.driver.postBurst(count: k) { posted[$0] }
            var m = 0
            while m < k, singles.driver.freeDescriptors > 0 {
                _ = try singles.driver.post(posted[m])
                m += 1
            }
            #expect(n == m, "step \(step): posted \(n) vs \(m)")
            nextBuffer += n
            bursts.driver.publish()
            singles.driver.publish()
            // Pop up to p, complete them with random lengths within their writable bytes.
            let p = 1 + rng.below(Self.queueSize)
            let popped = try bursts.device.popBurst(into: chains, maximum: p)
            var one: [Chain] = []
            while one.count < p, let c = try singles.device.pop() {
                // The same buffers (host pointers differ: two arenas).
                #expect(bursts.device.segments(of: chains[one.count]).map { [$0.address, UInt64($0.length), $0.isWritable ? 1 : 0] }
                        == singles.device.segments.map { [$0.address, UInt64($0.length), $0.isWritable ? 1 : 0] })
                one.append(c)
            }
            #expect(popped == one.count, "step \(step)")
            var lengths: [UInt32] = []
            for i in 0..<popped {
                #expect(chains[i].id == one[i].id && chains[i].segmentCount == one[i].segmentCount
                        && chains[i].readableBytes == one[i].readableBytes && chains[i].writableBytes == one[i].writableBytes)
                // With IN_ORDER a burst may be one used entry: lengths a driver can recover.
                lengths.append(chains[i].writableBytes == 0 || !sameBytes ? chains[i].writableBytes
                               : UInt32(rng.below(Int(chains[i].writableBytes) + 1)))
            }
            bursts.device.pushUsedBurst(chains, count: popped) { lengths[$0] }
            for i in 0..<popped { singles.device.pushUsedBurst([one[i]], count: 1) { _ in lengths[i] } }
            bursts.device.publishUsed()
            singles.device.publishUsed()
            // Reclaim up to r.
            let r = 1 + rng.below(Self.queueSize)
            var fromBurst: [UsedBuffer] = []
            _ = try bursts.driver.reclaimBurst(maximum: r) { fromBurst.append($0) }
            var fromSingles: [UsedBuffer] = []
            while fromSingles.count < r, let u = try singles.driver.reclaim() { fromSingles.append(u) }
            #expect(fromBurst == fromSingles, "step \(step)")
            #expect(bursts.driver.freeDescriptors == singles.driver.freeDescriptors)
            if sameBytes { #expect(bursts.ringBytes == singles.ringBytes, "step \(step): ring memory differs") }
        }
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func splitBurstsMatchOneAtATime(seed: UInt64) throws {
        let features: VirtioFeatures = [.version1, .eventIndex]
        func make() throws -> Twin<SplitDriver, SplitDevice<GuestMemory>> {
            let a = try QueueArena(kind: .split, queueSize: Self.queueSize, bufferSize: 256, bufferCount: 64, policy: .require(.smallPages))
            return Twin(driver: try a.splitDriver(features: features), device: try a.splitDevice(features: features), arena: a)
        }
        var b = try make()
        var s = try make()
        try run(&b, &s, seed: seed)
    }

    @Test func splitInOrderBurstsMatchOneAtATime() throws {
        // The device's burst is one used entry, the twin's one entry per chain: the rings
        // differ, what the driver gets back must not.
        let features: VirtioFeatures = [.version1, .inOrder]
        func make() throws -> Twin<SplitDriver, SplitDevice<GuestMemory>> {
            let a = try QueueArena(kind: .split, queueSize: Self.queueSize, bufferSize: 256, bufferCount: 64, policy: .require(.smallPages))
            return Twin(driver: try a.splitDriver(features: features), device: try a.splitDevice(features: features), arena: a)
        }
        var b = try make()
        var s = try make()
        try run(&b, &s, seed: 7, sameBytes: false)
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func packedBurstsMatchOneAtATime(seed: UInt64) throws {
        let features: VirtioFeatures = [.version1, .eventIndex, .ringPacked]
        func make() throws -> Twin<PackedDriver, PackedDevice<GuestMemory>> {
            let a = try QueueArena(kind: .packed, queueSize: Self.queueSize, bufferSize: 256, bufferCount: 64, policy: .require(.smallPages))
            return Twin(driver: try a.packedDriver(features: features), device: try a.packedDevice(features: features), arena: a)
        }
        var b = try make()
        var s = try make()
        try run(&b, &s, seed: seed)
    }
}

struct BurstErrorTests {
    @Test func aBadChainInsideASplitBurstEndsItAndTheNextPopNamesIt() throws {
        let a = try QueueArena(kind: .split, queueSize: 8, bufferSize: 256, bufferCount: 16, policy: .require(.smallPages))
        var spec = SpecSplitDriver(arena: a)
        var device = try a.splitDevice(features: [.version1])
        spec.writeDescriptor(0, addr: a.bufferAddress(0), len: 8, flags: 0)
        spec.writeDescriptor(1, addr: a.bufferAddress(1), len: 8, flags: 0)
        spec.makeAvailable([0, 1, 9, 1])  // the third head is outside the table
        let chains = UnsafeMutablePointer<Chain>.allocate(capacity: 8)
        defer { chains.deallocate() }
        #expect(try device.popBurst(into: chains, maximum: 8) == 2)
        #expect(chains[0].id == 0 && chains[1].id == 1)
        #expect(throws: VirtqueueError.descriptorIndexOutOfRange(queue: 0, index: 9, queueSize: 8)) {
            try device.popBurst(into: chains, maximum: 8)
        }
        #expect(device.brokenBy == .descriptorIndexOutOfRange(queue: 0, index: 9, queueSize: 8))
        // The two chains before it stay completable.
        device.pushUsedBurst(chains, count: 2) { _ in 0 }
        device.publishUsed()
        #expect(spec.usedIdx == 2)
    }

    @Test func aForgedUsedIdInsideAReclaimBurstEndsItAndTheNextCallNamesIt() throws {
        let a = try QueueArena(kind: .split, queueSize: 8, bufferSize: 256, bufferCount: 16, policy: .require(.smallPages))
        var driver = try a.splitDriver(features: [.version1])
        let n = driver.postBurst(count: 3) { Buffer(address: a.bufferAddress($0), length: 8) }
        #expect(n == 3)
        driver.publish()
        let raw = RawMemory(memory: a.memory)
        let used = a.addresses.deviceArea
        // Entries: id 0 (fine), id 0 again (no longer in flight), id 2.
        for (i, id) in [UInt32(0), 0, 2].enumerated() {
            raw.set32(used + 4 + UInt64(8 * i), id)
            raw.set32(used + 8 + UInt64(8 * i), 0)
        }
        raw.set16(used + 2, 3)
        var got: [UInt16] = []
        #expect(try driver.reclaimBurst(maximum: 8) { got.append($0.id) } == 1)
        #expect(got == [0])
        #expect(throws: VirtqueueError.usedIdNotInFlight(queue: 0, id: 0)) {
            try driver.reclaimBurst(maximum: 8) { _ in }
        }
    }

    @Test func aPackedBurstStopsAtAnImpossibleDescriptorAndTheNextPopNamesIt() throws {
        let a = try QueueArena(kind: .packed, queueSize: 8, bufferSize: 256, bufferCount: 16, policy: .require(.smallPages))
        var driver = try a.packedDriver(features: [.version1, .ringPacked])
        var device = try a.packedDevice(features: [.version1, .ringPacked])
        _ = driver.postBurst(count: 2) { Buffer(address: a.bufferAddress($0), length: 8) }
        driver.publish()
        // Slot 2: AVAIL == USED == wrap, which no driver writes.
        let raw = RawMemory(memory: a.memory)
        raw.set16(a.addresses.descriptorArea + 32 + 14, DescriptorFlags.available | DescriptorFlags.used)
        let chains = UnsafeMutablePointer<Chain>.allocate(capacity: 8)
        defer { chains.deallocate() }
        #expect(try device.popBurst(into: chains, maximum: 8) == 2)
        #expect(throws: VirtqueueError.impossiblePackedFlags(queue: 0, index: 2, flags: DescriptorFlags.available | DescriptorFlags.used,
                                                            wrapCounter: true)) {
            try device.popBurst(into: chains, maximum: 8)
        }
    }
}

struct InOrderBurstTests {
    /// Packed IN_ORDER: a driver that stops reclaiming inside a device's batch has not yet
    /// read the batch's used descriptor (in the batch's first slot), so none of the batch's
    /// slots is free: posting more must not overwrite it. (Found by the burst tests: it was.)
    @Test func packedInOrderKeepsABatchsSlotsUntilItsUsedDescriptorIsPassed() throws {
        let a = try QueueArena(kind: .packed, queueSize: 16, bufferSize: 256, bufferCount: 64, policy: .require(.smallPages))
        let features: VirtioFeatures = [.version1, .inOrder, .ringPacked]
        var driver = try a.packedDriver(features: features)
        var device = try a.packedDevice(features: features)
        let chains = UnsafeMutablePointer<Chain>.allocate(capacity: 16)
        defer { chains.deallocate() }
        #expect(driver.postBurst(count: 16) { Buffer(address: a.bufferAddress($0), length: 64) } == 16)
        driver.publish()
        #expect(try device.popBurst(into: chains, maximum: 4) == 4)
        device.pushUsedBurst(chains, count: 4) { _ in 0 }  // one used descriptor, slot 0, id 3
        device.publishUsed()
        var back: [UInt16] = []
        #expect(try driver.reclaimBurst(maximum: 3) { back.append($0.id) } == 3)
        #expect(back == [0, 1, 2])
        #expect(driver.freeDescriptors == 0, "slot 0 still holds the batch's used descriptor")
        #expect(driver.postBurst(count: 3) { Buffer(address: a.bufferAddress(16 + $0), length: 64) } == 0)
        #expect(try driver.reclaimBurst(maximum: 8) { back.append($0.id) } == 1)
        #expect(back == [0, 1, 2, 3])
        #expect(driver.freeDescriptors == 4)
    }

    @Test func aSplitInOrderBurstIsOneUsedEntry() throws {
        let a = try QueueArena(kind: .split, queueSize: 8, bufferSize: 256, bufferCount: 16, policy: .require(.smallPages))
        let features: VirtioFeatures = [.version1, .inOrder]
        var driver = try a.splitDriver(features: features)
        var device = try a.splitDevice(features: features)
        let spec = SpecSplitDriver(arena: a)
        let raw = RawMemory(memory: a.memory)
        let chains = UnsafeMutablePointer<Chain>.allocate(capacity: 8)
        defer { chains.deallocate() }
        for lap in 0..<4 {
            #expect(driver.postBurst(count: 5) { Buffer(address: a.bufferAddress($0), length: 64) } == 5)
            driver.publish()
            let n = try device.popBurst(into: chains, maximum: 8)
            #expect(n == 5)
            let before = spec.usedIdx
            // Mark every used slot so we can see which ones the device wrote.
            for i in 0..<8 { raw.set32(a.addresses.deviceArea + 4 + UInt64(8 * i), 0xFFFF) }
            device.pushUsedBurst(chains, count: n) { _ in 0 }  // TX: nothing written, as the driver assumes
            device.publishUsed()
            #expect(spec.usedIdx == before &+ 5)
            let written = (0..<8).filter { raw.u32(a.addresses.deviceArea + 4 + UInt64(8 * $0)) != 0xFFFF }
            #expect(written == [Int((before &+ 4) % 8)], "lap \(lap): one entry, in the burst's last slot")
            var back = 0
            _ = try driver.reclaimBurst(maximum: 8) { _ in back += 1 }
            #expect(back == 5)
        }
    }

    @Test func aPackedInOrderBurstIsOneUsedDescriptor() throws {
        let a = try QueueArena(kind: .packed, queueSize: 8, bufferSize: 256, bufferCount: 16, policy: .require(.smallPages))
        let features: VirtioFeatures = [.version1, .inOrder, .ringPacked]
        var driver = try a.packedDriver(features: features)
        var device = try a.packedDevice(features: features)
        let raw = RawMemory(memory: a.memory)
        let chains = UnsafeMutablePointer<Chain>.allocate(capacity: 8)
        defer { chains.deallocate() }
        var position = 0
        for lap in 0..<4 {
            #expect(driver.postBurst(count: 5) { Buffer(address: a.bufferAddress($0), length: 64) } == 5)
            driver.publish()
            let n = try device.popBurst(into: chains, maximum: 8)
            #expect(n == 5)
            let flagsBefore = (0..<8).map { raw.u16(a.addresses.descriptorArea + UInt64(16 * $0) + 14) }
            device.pushUsedBurst(chains, count: n) { _ in 0 }
            device.publishUsed()
            let flagsAfter = (0..<8).map { raw.u16(a.addresses.descriptorArea + UInt64(16 * $0) + 14) }
            let changed = (0..<8).filter { flagsBefore[$0] != flagsAfter[$0] }
            #expect(changed == [position], "lap \(lap): one used descriptor, at the burst's first slot")
            var back = 0
            _ = try driver.reclaimBurst(maximum: 8) { _ in back += 1 }
            #expect(back == 5)
            position = (position + 5) % 8
        }
    }
}
