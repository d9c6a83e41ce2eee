// Split ring halves, each against a spec-written peer and against each other: chains of
// every length, indirect tables, many laps of wrap-around, IN_ORDER, both suppression
// modes, full and empty queues, state save/restore and reset.

import Testing
import VirtioMemory
@testable import Virtqueue

struct SplitRingTests {
    static let all: VirtioFeatures = [.version1, .indirectDescriptors]

    func arena(_ n: Int = 16) throws -> QueueArena {
        try QueueArena(kind: .split, queueSize: n, bufferSize: 256, bufferCount: 4 * n, policy: .require(.smallPages))
    }

    @Test func deviceReadsChainsOfEveryLengthFromASpecDriver() throws {
        let a = try arena(16)
        var spec = SpecSplitDriver(arena: a)
        var device = try a.splitDevice(features: Self.all)
        for length in 1...16 {
            // Descriptors in reverse table order, so next links jump around; the first half
            // device-readable, the rest device-writable.
            let readable = (length + 1) / 2
            let indices = (0..<length).map { 15 - $0 }
            for (k, i) in indices.enumerated() {
                let flags: UInt16 = (k >= readable ? 2 : 0) | (k < length - 1 ? 1 : 0)
                spec.writeDescriptor(i, addr: a.bufferAddress(k), len: UInt32(10 + k), flags: flags,
                                     next: k < length - 1 ? UInt16(indices[k + 1]) : 0)
            }
            spec.makeAvailable([UInt16(indices[0])])
            let chain = try #require(try device.pop())
            #expect(chain.id == UInt16(indices[0]))
            #expect(chain.segmentCount == length)
            #expect(chain.readableCount == readable)
            #expect(chain.ringDescriptors == UInt16(length))
            #expect(chain.readableBytes == UInt32((0..<readable).map { 10 + $0 }.reduce(0, +)))
            #expect(chain.writableBytes == UInt32((readable..<length).map { 10 + $0 }.reduce(0, +)))
            for (k, s) in device.segments.enumerated() {
                #expect(s.address == a.bufferAddress(k))
                #expect(s.length == UInt32(10 + k))
                #expect(s.isWritable == (k >= readable))
                #expect(s.host == a.bufferHost(k))
            }
            device.pushUsed(chain, length: chain.writableBytes)
            device.publishUsed()
            #expect(spec.usedIdx == UInt16(length))
            #expect(spec.usedEntry(length - 1) == (UInt32(indices[0]), chain.writableBytes))
            #expect(try device.pop() == nil)
        }
    }

    @Test func driverReclaimsWhatASpecDeviceReturnsOutOfOrder() throws {
        let a = try arena(8)
        var driver = try a.splitDriver(features: Self.all)
        var spec = SpecSplitDevice(arena: a)
        var ids: [UInt16] = []
        for i in 0..<4 {
            let chain = [Buffer(address: a.bufferAddress(2 * i), length: 32),
                         Buffer(address: a.bufferAddress(2 * i + 1), length: 64, isWritable: true)]
            ids.append(try chain.withUnsafeBufferPointer { try driver.post($0) })
        }
        driver.publish()
        #expect(driver.freeDescriptors == 0)
        let seen = spec.takeAvailable()
        #expect(seen.map(\.head) == ids)
        for (i, s) in seen.enumerated() {
            #expect(s.chain.count == 2)
            #expect(s.chain[0].0 == a.bufferAddress(2 * i) && s.chain[0].1 == 32 && s.chain[0].2 == 1)
            #expect(s.chain[1].0 == a.bufferAddress(2 * i + 1) && s.chain[1].1 == 64 && s.chain[1].2 == 2)
        }
        // The device completes them in reverse order with distinct lengths.
        for s in seen.reversed() { spec.markUsed(UInt32(s.head), len: UInt32(s.head) + 1) }
        var back: [UsedBuffer] = []
        while let u = try driver.reclaim() { back.append(u) }
        #expect(back == ids.reversed().map { UsedBuffer(id: $0, length: UInt32($0) + 1) })
        #expect(driver.freeDescriptors == 8)
        #expect(driver.buffersInFlight == 0)
    }

    @Test func halvesRoundTripThroughManyLapsWithPayloads() throws {
        let a = try arena(8)
        var driver = try a.splitDriver(features: Self.all)
        var device = try a.splitDevice(features: Self.all)
        var slotOf = [Int](repeating: -1, count: 8)
        var nextSeq: UInt64 = 0
        var expectSeq: UInt64 = 0
        var reclaimed: UInt64 = 0
        // 5000 buffers through an 8-entry ring: hundreds of laps, u16 indices wrap too.
        while reclaimed < 5000 {
            while driver.freeDescriptors > 0 && nextSeq < 5000 {
                let slot = Int(nextSeq % 32)
                a.bufferHost(slot).storeBytes(of: nextSeq, as: UInt64.self)
                let id = try driver.post(Buffer(address: a.bufferAddress(slot), length: 8))
                slotOf[Int(id)] = slot
                nextSeq += 1
            }
            driver.publish()
            while let chain = try device.pop() {
                let value = device.segments[0].host!.load(as: UInt64.self)
                #expect(value == expectSeq)
                expectSeq += 1
                device.pushUsed(chain, length: 0)
            }
            device.publishUsed()
            while let used = try driver.reclaim() {
                #expect(slotOf[Int(used.id)] >= 0)
                slotOf[Int(used.id)] = -1
                reclaimed += 1
            }
        }
        #expect(expectSeq == 5000)
        #expect(driver.freeDescriptors == 8)
    }

    @Test func indirectChainsCarryManyBuffersInOneDescriptor() throws {
        let a = try arena(8)
        var driver = try a.splitDriver(features: Self.all)
        var device = try a.splitDevice(features: Self.all)
        let buffers = (0..<8).map { Buffer(address: a.bufferAddress($0), length: UInt32(16 * ($0 + 1)), isWritable: $0 >= 3) }
        for round in 0..<10 {
            let id = try buffers.withUnsafeBufferPointer { try driver.postIndirect($0) }
            #expect(driver.freeDescriptors == 7)
            driver.publish()
            let chain = try #require(try device.pop())
            #expect(chain.isIndirect)
            #expect(chain.id == id)
            #expect(chain.ringDescriptors == 1)
            #expect(device.segments.map(\.address) == buffers.map(\.address))
            #expect(device.segments.map(\.length) == buffers.map(\.length))
            #expect(chain.readableCount == 3)
            device.pushUsed(chain, length: UInt32(round))
            device.publishUsed()
            #expect(try driver.reclaim() == UsedBuffer(id: id, length: UInt32(round)))
        }
    }

    @Test func indirectNeedsTheFeatureAndAPool() throws {
        let a = try arena(4)
        var driver = try a.splitDriver(features: [.version1])
        let one = [Buffer(address: a.bufferAddress(0), length: 8)]
        #expect(throws: VirtqueueError.indirectUnavailable(queue: 0)) {
            try one.withUnsafeBufferPointer { try driver.postIndirect($0) }
        }
    }

    @Test func inOrderDeviceReportsABatchWithOneUsedEntry() throws {
        let a = try arena(8)
        let features: VirtioFeatures = [.version1, .inOrder]
        var driver = try a.splitDriver(features: features)
        var device = try a.splitDevice(features: features)
        var spec = SpecSplitDriver(arena: a)
        for lap in 0..<5 {
            var ids: [UInt16] = []
            for i in 0..<5 {
                ids.append(try driver.post(Buffer(address: a.bufferAddress(i), length: 100, isWritable: true)))
            }
            driver.publish()
            // §2.7.5: with IN_ORDER descriptors are used in table order.
            #expect(ids == (0..<5).map { UInt16((lap * 5 + $0) % 8) })
            var last: Chain? = nil
            for _ in 0..<5 { last = try device.pop() }
            let before = spec.usedIdx
            device.pushUsedInOrder(lastId: last!.id, length: 42, count: 5)
            device.publishUsed()
            #expect(spec.usedIdx == before &+ 5)
            var back: [UsedBuffer] = []
            while let u = try driver.reclaim() { back.append(u) }
            // Earlier buffers report their whole writable length, the batch's last its own.
            #expect(back == ids.dropLast().map { UsedBuffer(id: $0, length: 100) } + [UsedBuffer(id: ids[4], length: 42)])
            spec.availIdx = UInt16((lap + 1) * 5)
        }
    }

    @Test func flagSuppressionStopsKicksAndInterruptsUntilReenabled() throws {
        let a = try arena(8)
        var driver = try a.splitDriver(features: [.version1])
        var device = try a.splitDevice(features: [.version1])
        // Kicks start enabled (used.flags = 0).
        _ = try driver.post(Buffer(address: a.bufferAddress(0), length: 8))
        driver.publish()
        #expect(value(driver.kickNeeded()))
        device.disableKicks()
        _ = try driver.post(Buffer(address: a.bufferAddress(1), length: 8))
        driver.publish()
        #expect(!value(driver.kickNeeded()))
        // Re-enabling reports the chains already there, so the device does not sleep on them.
        #expect(value(device.enableKicks()))
        // Interrupts: disabled by the driver → none; enabled → one.
        driver.disableInterrupts()
        let c = try #require(try device.pop())
        device.pushUsed(c, length: 0)
        device.publishUsed()
        #expect(!value(device.interruptNeeded()))
        #expect(value(driver.enableInterrupts()))   // a used buffer is already pending
        let c2 = try #require(try device.pop())
        device.pushUsed(c2, length: 0)
        device.publishUsed()
        #expect(value(device.interruptNeeded()))
        #expect(!value(device.interruptNeeded()))   // nothing new since the last decision
    }

    @Test func eventIndexKicksExactlyWhenTheDevicesIndexIsPassed() throws {
        let a = try arena(16)
        let features: VirtioFeatures = [.version1, .eventIndex]
        var driver = try a.splitDriver(features: features)
        var device = try a.splitDevice(features: features)
        let spec = SpecSplitDriver(arena: a)
        // The device asks for a kick at avail index 0 (its next), then sleeps.
        #expect(!value(device.enableKicks()))
        #expect(spec.availEvent == 0)
        var kicks = 0
        for i in 0..<6 {
            _ = try driver.post(Buffer(address: a.bufferAddress(i), length: 8))
            driver.publish()
            if driver.kickNeeded() { kicks += 1 }
        }
        // Only the first publication crossed avail_event = 0.
        #expect(kicks == 1)
        // Device drains 6 and asks again at 6; a batch of 3 then crosses it once.
        for _ in 0..<6 { _ = try device.pop() }
        #expect(!value(device.enableKicks()))
        for i in 0..<3 { _ = try driver.post(Buffer(address: a.bufferAddress(i), length: 8)) }
        driver.publish()
        #expect(value(driver.kickNeeded()))
        #expect(!value(driver.kickNeeded()))
    }

    @Test func eventIndexInterruptsOnlyAtUsedEvent() throws {
        let a = try arena(16)
        let features: VirtioFeatures = [.version1, .eventIndex]
        var driver = try a.splitDriver(features: features)
        var device = try a.splitDevice(features: features)
        let specDevice = SpecSplitDevice(arena: a)
        for i in 0..<8 { _ = try driver.post(Buffer(address: a.bufferAddress(i), length: 8)) }
        driver.publish()
        #expect(!value(driver.enableInterrupts()))
        #expect(specDevice.usedEvent == 0)
        var interrupts = 0
        for _ in 0..<8 {
            let c = try #require(try device.pop())
            device.pushUsed(c, length: 0)
            device.publishUsed()
            if device.interruptNeeded() { interrupts += 1 }
        }
        #expect(interrupts == 1)
    }

    @Test func fullAndEmptyQueuesAreReportedNotCrashed() throws {
        let a = try arena(4)
        var driver = try a.splitDriver(features: Self.all)
        var device = try a.splitDevice(features: Self.all)
        #expect(try device.pop() == nil)
        #expect(try driver.reclaim() == nil)
        for i in 0..<4 { _ = try driver.post(Buffer(address: a.bufferAddress(i), length: 8)) }
        #expect(throws: VirtqueueError.queueFull(queue: 0, needed: 1, free: 0)) {
            try driver.post(Buffer(address: a.bufferAddress(0), length: 8))
        }
        let two = [Buffer(address: a.bufferAddress(0), length: 8), Buffer(address: a.bufferAddress(1), length: 8)]
        #expect(throws: VirtqueueError.queueFull(queue: 0, needed: 2, free: 0)) {
            try two.withUnsafeBufferPointer { try driver.post($0) }
        }
        let bad = [Buffer(address: a.bufferAddress(0), length: 8, isWritable: true), Buffer(address: a.bufferAddress(1), length: 8)]
        #expect(throws: VirtqueueError.self) { try bad.withUnsafeBufferPointer { try driver.post($0) } }
    }

    @Test func aChainAsLongAsTheQueueIsAccepted() throws {
        let a = try arena(8)
        var driver = try a.splitDriver(features: Self.all)
        var device = try a.splitDevice(features: Self.all)
        for _ in 0..<3 {
            let chain = (0..<8).map { Buffer(address: a.bufferAddress($0), length: 4) }
            let id = try chain.withUnsafeBufferPointer { try driver.post($0) }
            driver.publish()
            let c = try #require(try device.pop())
            #expect(c.segmentCount == 8)
            device.pushUsed(c, length: 0)
            device.publishUsed()
            #expect(try driver.reclaim()?.id == id)
        }
    }

    @Test func stateSavedMidStreamRestoresIntoANewDeviceWithoutLoss() throws {
        let a = try arena(8)
        var driver = try a.splitDriver(features: Self.all)
        var device = try a.splitDevice(features: Self.all)
        for i in 0..<6 { _ = try driver.post(Buffer(address: a.bufferAddress(i), length: 8, isWritable: true)) }
        driver.publish()
        for _ in 0..<3 {
            let c = try #require(try device.pop())
            device.pushUsed(c, length: 1)
        }
        device.publishUsed()
        let saved = device.state
        #expect(saved == SplitQueueState(lastAvailableIndex: 3, usedIndex: 3))
        var restored = try a.splitDevice(features: Self.all, state: saved)
        var popped = 0
        while let c = try restored.pop() {
            restored.pushUsed(c, length: 2)
            popped += 1
        }
        restored.publishUsed()
        #expect(popped == 3)
        var lengths: [UInt32] = []
        while let u = try driver.reclaim() { lengths.append(u.length) }
        #expect(lengths == [1, 1, 1, 2, 2, 2])
        #expect(throws: VirtqueueError.self) {
            try a.splitDevice(features: Self.all, state: SplitQueueState(lastAvailableIndex: 20, usedIndex: 0))
        }
    }
}
