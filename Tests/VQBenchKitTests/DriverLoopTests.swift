// The one driver loop against the one device loop: every buffer of every queue moves once,
// bursts are posted from the buffer ring in order (wrapping), a last short burst is posted,
// and latency mode times each burst exactly once.

import Doorbell
import Mediation
import Testing
import Virtqueue
import VirtioMemory
@testable import VQBenchKit

/// Records what the loop tells its service.
struct RecordingDriverService: DriverLoopService {
    var slots: [[Int]]
    var bursts: [[Int]]
    var roundTrips: [Int]
    init(queues: Int) {
        slots = Array(repeating: [], count: queues)
        bursts = Array(repeating: [], count: queues)
        roundTrips = Array(repeating: 0, count: queues)
    }
    mutating func willPost(queue: Int, slot: Int, count: Int) {
        bursts[queue].append(count)
        for i in 0..<count { slots[queue].append(slot + i) }
    }
    mutating func roundTrip(queue: Int, nanoseconds: UInt64) { roundTrips[queue] += 1 }
}

@Suite struct DriverLoopTests {
    static let target = 1_003  // not a multiple of the batch: the last burst is short
    static let batch = 8
    static let queueSize = 64

    func run<Driver: VirtqueueDriverHalf, Device: VirtqueueDeviceHalf>(
        _ setups: [RingSetup<Driver, Device>], latency: Bool
    ) throws -> (error: String?, deviceError: String?, queues: [(posted: Int, reclaimed: Int)], service: RecordingDriverService) {
        let devices = Slot(setups.map { DeviceQueue(index: 0, device: $0.device, call: BusyPollDoorbell.Notifier?.none) })
        let deviceError = Slot<String?>(nil)
        let total = Self.target * setups.count
        let deviceThread = try PinnedThread(cpu: nil) {
            var queues = devices.value
            var service = BareRingService(descriptors: total)
            do {
                var (_, waiter) = try BusyPollDoorbell.makePair()
                let options = DeviceLoopOptions(batch: Self.batch, sleeps: false, sleepNanoseconds: 0, timeoutIsLostKick: false)
                deviceError.value = runDeviceLoop(&queues, kick: &waiter, options: options, service: &service)
            } catch {
                deviceError.value = "\(error)"
            }
        }
        let (notifier, waiter) = try BusyPollDoorbell.makePair()
        var call = waiter
        var service = RecordingDriverService(queues: setups.count)
        let rings = setups.map { setup -> UnsafeMutableBufferPointer<UInt64> in
            let ring = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: setup.addresses.count)
            _ = ring.initialize(from: setup.addresses)
            return ring
        }
        defer { for ring in rings { ring.deallocate() } }
        var queues = zip(setups, rings).map { setup, ring in
            DriverLoopQueue(driver: setup.driver, kick: notifier, addresses: UnsafeBufferPointer(ring), target: Self.target)
        }
        let options = DriverLoopOptions(batch: Self.batch, length: 64, latency: latency, sleeps: false)
        let error = runDriverLoop(&queues, call: &call, options: options, service: &service)
        deviceThread.join()
        return (error, deviceError.value, queues.map { ($0.posted, $0.reclaimed) }, service)
    }

    func check(_ r: (error: String?, deviceError: String?, queues: [(posted: Int, reclaimed: Int)], service: RecordingDriverService),
               latency: Bool) {
        #expect(r.error == nil)
        #expect(r.deviceError == nil)
        let bursts = (Self.target + Self.batch - 1) / Self.batch
        for q in r.queues.indices {
            #expect(r.queues[q].posted == Self.target)
            #expect(r.queues[q].reclaimed == Self.target)
            // Posted in ring order, wrapping at the end of the buffer ring.
            #expect(r.service.slots[q] == (0..<Self.target).map { $0 % Self.queueSize })
            #expect(r.service.bursts[q].reduce(0, +) == Self.target)
            #expect(r.service.bursts[q].last == Self.target % Self.batch)
            #expect(r.service.roundTrips[q] == (latency ? bursts : 0))
            if latency { #expect(r.service.bursts[q].count == bursts) }
        }
    }

    @Test(arguments: [false, true])
    func splitQueuesMoveEveryBufferOnce(latency: Bool) throws {
        let setups = try (0..<2).map { _ in try RingSetups.split(queueSize: Self.queueSize, policy: .require(.smallPages)) }
        check(try run(setups, latency: latency), latency: latency)
    }

    @Test(arguments: [false, true])
    func packedQueuesMoveEveryBufferOnce(latency: Bool) throws {
        let setups = try (0..<2).map { _ in try RingSetups.packed(queueSize: Self.queueSize, policy: .require(.smallPages)) }
        check(try run(setups, latency: latency), latency: latency)
    }

    @Test func aQueueThatIsAlreadyDoneIsNotPostedTo() throws {
        let setups = try (0..<1).map { _ in try RingSetups.split(queueSize: Self.queueSize, policy: .require(.smallPages)) }
        let (notifier, waiter) = try BusyPollDoorbell.makePair()
        var call = waiter
        var service = RecordingDriverService(queues: 1)
        setups[0].addresses.withUnsafeBufferPointer { addrs in
            var queues = [DriverLoopQueue(driver: setups[0].driver, kick: notifier, addresses: addrs, target: 0)]
            // Nothing to move: the loop returns at once without posting (no device runs).
            #expect(runDriverLoop(&queues, call: &call, options: DriverLoopOptions(batch: 8, length: 64, latency: false, sleeps: false),
                                  service: &service) == nil)
            #expect(queues[0].posted == 0)
            #expect(queues[0].driver.buffersInFlight == 0)
        }
        #expect(service.slots[0].isEmpty)
    }
}
