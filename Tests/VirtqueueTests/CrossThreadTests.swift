// Driver and device on different threads (and CPUs), polling: millions of descriptors with
// checksummed payloads in both directions, none lost, duplicated or corrupted; a device
// replaced mid-stream by one restored from the saved queue state loses nothing.

import Atomics
import Doorbell
import Testing
import VirtioMemory
@testable import Virtqueue
#if canImport(Glibc)
import Glibc
#endif

/// How many descriptors each layout moves: 10^7 (about 20 s per layout in a debug build
/// here), fewer when VQB_STRESS_DESCRIPTORS says so (the ThreadSanitizer run).
let stressDescriptors: Int = {
    if let s = getenv("VQB_STRESS_DESCRIPTORS"), let n = Int(String(cString: s)) { return n }
    return 10_000_000
}()

/// What a run saw, counted on both threads and checked after they join.
struct StressReport: Sendable {
    var delivered = 0
    var reclaimed = 0
    var badPayloads = 0
    var badReplies = 0
    var outOfOrder = 0
    var errors: [String] = []
    var timedOut = false
    var restores = 0
}

/// 64 bytes derived from a sequence number; the device answers with every byte inverted.
@inline(__always)
func payloadWord(_ seq: UInt64, _ i: Int) -> UInt64 { (seq &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(i) &* 0x1000_0000_01B3) }

final class StressBox<T>: @unchecked Sendable { var value: T; init(_ v: T) { value = v } }

func runStress<Driver: VirtqueueDriverHalf, Device: VirtqueueDeviceHalf>(
    arena: QueueArena, driver: Driver, device: Device, count: Int, batch: Int,
    restoreEvery: Int, restore: @escaping @Sendable (inout Device) throws -> Void
) throws -> StressReport {
    let n = arena.queueSize
    let driverBox = StressBox(driver)
    let deviceBox = StressBox(device)
    let driverReport = StressBox(StressReport())
    let deviceReport = StressBox(StressReport())
    let (cpuA, cpuB) = twoCPUs()

    let driverThread = try PinnedThread(cpu: cpuA) {
        var d = driverBox.value
        var r = StressReport()
        var slotOf = [Int](repeating: -1, count: n)
        var seqOf = [UInt64](repeating: 0, count: n)
        var freeSlots = Array(0..<n)
        var posted: UInt64 = 0
        var backoff = Backoff()
        let deadline = Deadline(seconds: 600)
        do {
            while r.reclaimed < count {
                var progressed = false
                var added = 0
                while Int(posted) < count && added < batch && d.freeDescriptors >= 2, let slot = freeSlots.popLast() {
                    let out = arena.bufferHost(2 * slot)
                    for i in 0..<8 { out.storeBytes(of: payloadWord(posted, i), toByteOffset: 8 * i, as: UInt64.self) }
                    let chain = [Buffer(address: arena.bufferAddress(2 * slot), length: 64),
                                 Buffer(address: arena.bufferAddress(2 * slot + 1), length: 64, isWritable: true)]
                    let id = try chain.withUnsafeBufferPointer { try d.post($0) }
                    slotOf[Int(id)] = slot
                    seqOf[slot] = posted
                    posted += 1
                    added += 1
                }
                if added > 0 { d.publish(); progressed = true }
                while let used = try d.reclaim() {
                    progressed = true
                    let slot = slotOf[Int(used.id)]
                    slotOf[Int(used.id)] = -1
                    guard slot >= 0 else { r.errors.append("id \(used.id) reclaimed twice"); continue }
                    let reply = arena.bufferHost(2 * slot + 1)
                    var ok = used.length == 64
                    for i in 0..<8 where reply.load(fromByteOffset: 8 * i, as: UInt64.self) != ~payloadWord(seqOf[slot], i) { ok = false }
                    if !ok { r.badReplies += 1 }
                    freeSlots.append(slot)
                    r.reclaimed += 1
                }
                if progressed { backoff.reset() } else {
                    backoff.idle()
                    if deadline.passed { r.timedOut = true; break }
                }
            }
        } catch {
            r.errors.append("driver: \(error)")
        }
        driverReport.value = r
    }

    let deviceThread = try PinnedThread(cpu: cpuB) {
        var v = deviceBox.value
        var r = StressReport()
        var expected: UInt64 = 0
        var pending = 0
        var backoff = Backoff()
        let deadline = Deadline(seconds: 600)
        do {
            while r.delivered < count {
                var progressed = false
                while let chain = try v.pop() {
                    progressed = true
                    let segments = v.segments
                    guard segments.count == 2, segments[0].length == 64, segments[1].length == 64, segments[1].isWritable,
                          let input = segments[0].host, let output = segments[1].host else {
                        r.badPayloads += 1
                        v.pushUsed(chain, length: 0)
                        continue
                    }
                    var ok = true
                    for i in 0..<8 {
                        let word = input.load(fromByteOffset: 8 * i, as: UInt64.self)
                        if word != payloadWord(expected, i) { ok = false }
                        output.storeBytes(of: ~word, toByteOffset: 8 * i, as: UInt64.self)
                    }
                    if !ok { r.badPayloads += 1 }
                    expected += 1
                    v.pushUsed(chain, length: 64)
                    r.delivered += 1
                    pending += 1
                    if pending == batch { v.publishUsed(); pending = 0 }
                    if restoreEvery > 0 && r.delivered % restoreEvery == 0 {
                        v.publishUsed()
                        pending = 0
                        try restore(&v)
                        r.restores += 1
                    }
                }
                if pending > 0 { v.publishUsed(); pending = 0 }
                if progressed { backoff.reset() } else {
                    backoff.idle()
                    if deadline.passed { r.timedOut = true; break }
                }
            }
        } catch {
            r.errors.append("device: \(error)")
        }
        deviceReport.value = r
    }
    driverThread.join()
    deviceThread.join()
    var report = driverReport.value
    report.delivered = deviceReport.value.delivered
    report.badPayloads = deviceReport.value.badPayloads
    report.errors += deviceReport.value.errors
    report.timedOut = report.timedOut || deviceReport.value.timedOut
    report.restores = deviceReport.value.restores
    return report
}

@Suite(.serialized)
struct CrossThreadTests {
    @Test(arguments: RingLayoutKind.allCases)
    func movesMillionsOfChecksummedDescriptorsBetweenThreads(layout: RingLayoutKind) throws {
        let arena = try QueueArena(kind: layout, queueSize: 256, bufferSize: 64, bufferCount: 512)
        let features: VirtioFeatures = layout == .split ? [.version1] : [.version1, .ringPacked]
        let report: StressReport
        switch layout {
        case .split:
            report = try runStress(arena: arena, driver: try arena.splitDriver(features: features),
                               device: try arena.splitDevice(features: features),
                               count: stressDescriptors, batch: 32, restoreEvery: 0) { _ in }
        case .packed:
            report = try runStress(arena: arena, driver: try arena.packedDriver(features: features),
                               device: try arena.packedDevice(features: features),
                               count: stressDescriptors, batch: 32, restoreEvery: 0) { _ in }
        }
        #expect(report.errors == [])
        #expect(!report.timedOut)
        #expect(report.delivered == stressDescriptors)
        #expect(report.reclaimed == stressDescriptors)
        #expect(report.badPayloads == 0)
        #expect(report.badReplies == 0)
    }

    @Test(arguments: RingLayoutKind.allCases)
    func restoresTheDeviceFromSavedStateMidStreamWithoutLoss(layout: RingLayoutKind) throws {
        let arena = try QueueArena(kind: layout, queueSize: 64, bufferSize: 64, bufferCount: 128)
        let count = 200_000
        let report: StressReport
        switch layout {
        case .split:
            let features: VirtioFeatures = [.version1, .eventIndex]
            report = try runStress(arena: arena, driver: try arena.splitDriver(features: features),
                               device: try arena.splitDevice(features: features),
                               count: count, batch: 8, restoreEvery: 9_973) { device in
                device = try arena.splitDevice(features: features, state: device.state)
            }
        case .packed:
            let features: VirtioFeatures = [.version1, .ringPacked, .eventIndex]
            report = try runStress(arena: arena, driver: try arena.packedDriver(features: features),
                               device: try arena.packedDevice(features: features),
                               count: count, batch: 8, restoreEvery: 9_973) { device in
                device = try arena.packedDevice(features: features, state: device.state)
            }
        }
        #expect(report.errors == [])
        #expect(!report.timedOut)
        #expect(report.restores == count / 9_973)
        #expect(report.delivered == count)
        #expect(report.reclaimed == count)
        #expect(report.badPayloads == 0)
        #expect(report.badReplies == 0)
    }
}
