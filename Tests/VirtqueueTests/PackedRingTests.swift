// Packed ring halves, each against a spec-written peer and against each other: chains,
// indirect tables, wrap counters over many laps (including one chain filling the whole
// ring), IN_ORDER, event suppression, full and empty queues, state save/restore.

import Testing
import VirtioMemory
@testable import Virtqueue

struct PackedRingTests {
    static let all: VirtioFeatures = [.version1, .ringPacked, .indirectDescriptors]

    func arena(_ n: Int) throws -> QueueArena {
        try QueueArena(kind: .packed, queueSize: n, bufferSize: 256, bufferCount: 4 * max(n, 8), policy: .require(.smallPages))
    }

    @Test func deviceReadsChainsFromASpecDriverAcrossWraps() throws {
        // 7 is not a power of two: packed rings allow any size.
        let a = try arena(7)
        var spec = SpecPackedDriver(arena: a)
        var device = try a.packedDevice(features: Self.all)
        for round in 0..<40 {
            let length = round % 7 + 1
            let chain = (0..<length).map { (a.bufferAddress($0), UInt32(8 + $0), $0 >= length / 2) }
            spec.makeAvailable(id: UInt16(round % 7), chain)
            let popped = try #require(try device.pop())
            #expect(popped.id == UInt16(round % 7))
            #expect(popped.ringDescriptors == UInt16(length))
            #expect(device.segments.map(\.address) == chain.map(\.0))
            #expect(device.segments.map(\.length) == chain.map(\.1))
            #expect(device.segments.map(\.isWritable) == chain.map(\.2))
            device.pushUsed(popped, length: 0)
            device.publishUsed()
            #expect(try device.pop() == nil)
            // The spec driver's view: one used descriptor at the chain's first position.
            let usedPosition = (spec.next - length + 7) % 7
            let d = spec.descriptor(usedPosition)
            #expect(d.id == UInt16(round % 7))
            let usedWrap = spec.next >= length ? spec.wrap : !spec.wrap
            #expect(d.flags & 0x8080 == (usedWrap ? 0x8080 : 0))
        }
    }

    @Test func driverReclaimsWhatASpecDeviceReturnsOutOfOrder() throws {
        let a = try arena(8)
        var driver = try a.packedDriver(features: Self.all)
        var spec = SpecPackedDevice(arena: a)
        var ids: [UInt16] = []
        for i in 0..<4 {
            let chain = [Buffer(address: a.bufferAddress(2 * i), length: 32),
                         Buffer(address: a.bufferAddress(2 * i + 1), length: 64, isWritable: true)]
            ids.append(try chain.withUnsafeBufferPointer { try driver.post($0) })
        }
        driver.publish()
        let seen = spec.takeAvailable()
        #expect(seen.map(\.id) == ids)
        #expect(seen.allSatisfy { $0.count == 2 && $0.chain[0].2 & 1 == 1 && $0.chain[1].2 & 2 == 2 })
        for s in seen.reversed() { spec.markUsed(id: s.id, len: UInt32(s.id) + 1, count: s.count) }
        var back: [UsedBuffer] = []
        while let u = try driver.reclaim() { back.append(u) }
        #expect(back == ids.reversed().map { UsedBuffer(id: $0, length: UInt32($0) + 1) })
        #expect(driver.freeDescriptors == 8)
    }

    @Test func oneChainFillingTheWholeRingWrapsBothCounters() throws {
        let a = try arena(5)
        var driver = try a.packedDriver(features: Self.all)
        var device = try a.packedDevice(features: Self.all)
        // Offset the ring first so the full-ring chain itself crosses the end.
        _ = try driver.post(Buffer(address: a.bufferAddress(0), length: 4))
        driver.publish()
        device.pushUsed(try #require(try device.pop()), length: 0)
        device.publishUsed()
        _ = try driver.reclaim()
        for lap in 0..<6 {
            let chain = (0..<5).map { Buffer(address: a.bufferAddress($0), length: UInt32(lap + 1), isWritable: $0 > 2) }
            let id = try chain.withUnsafeBufferPointer { try driver.post($0) }
            #expect(driver.freeDescriptors == 0)
            driver.publish()
            let popped = try #require(try device.pop())
            #expect(popped.ringDescriptors == 5)
            #expect(popped.segmentCount == 5)
            #expect(try device.pop() == nil)
            device.pushUsed(popped, length: popped.writableBytes)
            device.publishUsed()
            #expect(try driver.reclaim() == UsedBuffer(id: id, length: popped.writableBytes))
            #expect(try driver.reclaim() == nil)
            #expect(driver.freeDescriptors == 5)
        }
        #expect(device.state.lastAvailableIndex == 1)
    }

    @Test func halvesRoundTripThroughManyLapsWithPayloads() throws {
        let a = try arena(6)
        var driver = try a.packedDriver(features: Self.all)
        var device = try a.packedDevice(features: Self.all)
        var nextSeq: UInt64 = 0
        var expectSeq: UInt64 = 0
        var reclaimed = 0
        while reclaimed < 5000 {
            while driver.freeDescriptors >= 2 && nextSeq < 5000 {
                let slot = Int(nextSeq % 24)
                a.bufferHost(slot).storeBytes(of: nextSeq, as: UInt64.self)
                // Alternate one- and two-descriptor chains so positions and ids drift apart.
                if nextSeq % 2 == 0 {
                    _ = try driver.post(Buffer(address: a.bufferAddress(slot), length: 8))
                } else {
                    let chain = [Buffer(address: a.bufferAddress(slot), length: 8),
                                 Buffer(address: a.bufferAddress(slot), length: 8, isWritable: true)]
                    _ = try chain.withUnsafeBufferPointer { try driver.post($0) }
                }
                nextSeq += 1
            }
            driver.publish()
            while let chain = try device.pop() {
                #expect(device.segments[0].host!.load(as: UInt64.self) == expectSeq)
                expectSeq += 1
                device.pushUsed(chain, length: 0)
            }
            device.publishUsed()
            while try driver.reclaim() != nil { reclaimed += 1 }
        }
        #expect(expectSeq == 5000)
        #expect(driver.freeDescriptors == 6)
    }

    @Test func indirectChainsUseOneRingDescriptor() throws {
        let a = try arena(8)
        var driver = try a.packedDriver(features: Self.all)
        var device = try a.packedDevice(features: Self.all)
        let buffers = (0..<8).map { Buffer(address: a.bufferAddress($0), length: UInt32(16 * ($0 + 1)), isWritable: $0 >= 5) }
        for round in 0..<20 {
            let id = try buffers.withUnsafeBufferPointer { try driver.postIndirect($0) }
            driver.publish()
            let chain = try #require(try device.pop(), "round \(round)")
            #expect(chain.isIndirect && chain.ringDescriptors == 1 && chain.id == id)
            #expect(device.segments.map(\.address) == buffers.map(\.address))
            #expect(chain.readableCount == 5)
            device.pushUsed(chain, length: UInt32(round))
            device.publishUsed()
            #expect(try driver.reclaim() == UsedBuffer(id: id, length: UInt32(round)))
        }
    }

    @Test func inOrderDeviceReportsABatchWithOneUsedDescriptor() throws {
        let a = try arena(8)
        let features: VirtioFeatures = [.version1, .ringPacked, .inOrder]
        var driver = try a.packedDriver(features: features)
        var device = try a.packedDevice(features: features)
        for _ in 0..<7 {
            var ids: [UInt16] = []
            for i in 0..<3 {
                let chain = [Buffer(address: a.bufferAddress(i), length: 8),
                             Buffer(address: a.bufferAddress(i + 3), length: 50, isWritable: true)]
                ids.append(try chain.withUnsafeBufferPointer { try driver.post($0) })
            }
            driver.publish()
            var last: Chain? = nil
            var slots: UInt16 = 0
            while let c = try device.pop() { last = c; slots += c.ringDescriptors }
            #expect(slots == 6)
            device.pushUsedInOrder(lastId: last!.id, length: 7, ringDescriptors: slots)
            device.publishUsed()
            var back: [UsedBuffer] = []
            while let u = try driver.reclaim() { back.append(u) }
            #expect(back == [UsedBuffer(id: ids[0], length: 50), UsedBuffer(id: ids[1], length: 50), UsedBuffer(id: ids[2], length: 7)])
            #expect(driver.freeDescriptors == 8)
        }
    }

    @Test func eventSuppressionDisableEnableAndDescriptorModes() throws {
        let a = try arena(8)
        var driver = try a.packedDriver(features: Self.all)
        var device = try a.packedDevice(features: Self.all)
        _ = try driver.post(Buffer(address: a.bufferAddress(0), length: 8))
        driver.publish()
        #expect(value(driver.kickNeeded()))          // enabled at start (flags 0)
        device.disableKicks()
        _ = try driver.post(Buffer(address: a.bufferAddress(1), length: 8))
        driver.publish()
        #expect(!value(driver.kickNeeded()))
        #expect(value(device.enableKicks()))         // two chains already pending

        driver.disableInterrupts()
        device.pushUsed(try #require(try device.pop()), length: 0)
        device.publishUsed()
        #expect(!value(device.interruptNeeded()))
        #expect(value(driver.enableInterrupts()))    // one used already pending
        device.pushUsed(try #require(try device.pop()), length: 0)
        device.publishUsed()
        #expect(value(device.interruptNeeded()))
    }

    @Test func descriptorEventsKickOnlyWhenTheOffsetIsPassedEvenAcrossAWrap() throws {
        let a = try arena(6)
        let features: VirtioFeatures = [.version1, .ringPacked, .eventIndex]
        var driver = try a.packedDriver(features: features)
        var device = try a.packedDevice(features: features)
        let spec = SpecPackedDriver(arena: a)
        var kicks = 0
        var published = 0
        for _ in 0..<10 {
            // Device drains, asks for a kick at its next position, sleeps.
            while let c = try device.pop() { device.pushUsed(c, length: 0) }
            device.publishUsed()
            while try driver.reclaim() != nil {}
            #expect(!value(device.enableKicks()))
            #expect(spec.deviceEventFlags == PackedEventFlags.descriptor)
            // The driver publishes 4 chains one at a time: only the first crosses the event.
            for i in 0..<4 {
                _ = try driver.post(Buffer(address: a.bufferAddress(i), length: 8))
                driver.publish()
                published += 1
                if value(driver.kickNeeded()) { kicks += 1 }
            }
        }
        // 40 chains through a 6-slot ring (several wraps): exactly one kick per sleep.
        #expect(published == 40)
        #expect(kicks == 10)
    }

    @Test func fullQueueAndMisuseAreErrors() throws {
        let a = try arena(3)
        var driver = try a.packedDriver(features: Self.all)
        var device = try a.packedDevice(features: Self.all)
        #expect(try device.pop() == nil)
        #expect(try driver.reclaim() == nil)
        for i in 0..<3 { _ = try driver.post(Buffer(address: a.bufferAddress(i), length: 8)) }
        #expect(throws: VirtqueueError.queueFull(queue: 0, needed: 1, free: 0)) {
            try driver.post(Buffer(address: a.bufferAddress(0), length: 8))
        }
        let empty: [Buffer] = []
        #expect(throws: VirtqueueError.invalidChain(queue: 0, reason: "no buffers")) {
            try empty.withUnsafeBufferPointer { try driver.post($0) }
        }
    }

    @Test func stateSavedMidStreamRestoresIntoANewDeviceWithoutLoss() throws {
        let a = try arena(5)
        var driver = try a.packedDriver(features: Self.all)
        var device = try a.packedDevice(features: Self.all)
        var delivered: [UInt64] = []
        var seq: UInt64 = 0
        for round in 0..<30 {
            while driver.freeDescriptors > 0 {
                a.bufferHost(Int(seq % 20)).storeBytes(of: seq, as: UInt64.self)
                _ = try driver.post(Buffer(address: a.bufferAddress(Int(seq % 20)), length: 8, isWritable: true))
                seq += 1
            }
            driver.publish()
            // Take two chains, save, and hand the rest to a device restored from the state.
            for _ in 0..<2 {
                let c = try #require(try device.pop())
                delivered.append(device.segments[0].host!.load(as: UInt64.self))
                device.pushUsed(c, length: 8)
            }
            device.publishUsed()
            let saved = device.state
            try saved.validate(queue: 0, queueSize: 5)
            device = try a.packedDevice(features: Self.all, state: saved)
            while let c = try device.pop() {
                delivered.append(device.segments[0].host!.load(as: UInt64.self))
                device.pushUsed(c, length: 8)
            }
            device.publishUsed()
            while try driver.reclaim() != nil {}
            #expect(driver.buffersInFlight == 0, "round \(round)")
        }
        #expect(delivered == Array(0..<seq))
        #expect(throws: VirtqueueError.self) {
            try a.packedDevice(features: Self.all, state: PackedQueueState(lastAvailableIndex: 9))
        }
    }
}
