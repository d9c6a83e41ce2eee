// vdpa_sim's IOTLB edited while its device runs (a vIOMMU mapping and unmapping during
// traffic): traffic through unrelated mappings is untouched by the churn, a window mapped
// mid-traffic carries packets at once, and once it is unmapped the device refuses it.

import Atomics
import Doorbell
import Glibc
import Testing
import Virtqueue
import VirtioMemory
@testable import Mediation

extension MediationSuites {
@Suite struct LiveIOTLBTests {
    @Test(arguments: RingLayoutKind.allCases)
    func mappingsChangeWhileTheDeviceRunsAndTakeEffectAtOnce(_ layout: RingLayoutKind) throws {
        let bus = VDPABus()
        let device = try VDPASim(name: "sim", deviceCPU: 1)
        let binding = try VirtioBinding<EventfdDoorbell>(device: device, bus: bus, layout: layout, queues: [0, 1], queueSize: 256, callBell: ())
        let txBase = VirtioBinding<EventfdDoorbell>.iovaBase(1)
        let physical = VirtioBinding<EventfdDoorbell>.physicalBase(1)
        let windowBytes = UInt64(binding.arenas[1]!.region.size)

        // Churn: another thread maps and unmaps an unrelated window as fast as it can.
        let stop = ManagedAtomic<Bool>(false)
        let churned = ManagedAtomic<Int>(0)
        let churnError = ResultBox<String?>(nil)
        let churn = try PinnedThread(cpu: nil) {
            let unrelated = IOTLB.Mapping(iova: 0x70_0000_0000, size: 1 << 20, gpa: physical)
            while !stop.load(ordering: .relaxed) {
                do {
                    try device.dmaMap(unrelated)
                    try device.dmaUnmap(iova: unrelated.iova, size: unrelated.size)
                    churned.wrappingIncrement(ordering: .relaxed)
                } catch {
                    churnError.value = "\(error)"
                    return
                }
            }
        }

        func run<D: VirtqueueDriverHalf>(_ tx: inout VirtioQueue<D, EventfdDoorbell>) throws {
            let first = tx.transmit(packets: 200_000, payloadBytes: 64, batch: 32)
            #expect(first.errors == [] && first.packets == 200_000)

            // A second window onto the same buffers, mapped while the device runs.
            let alias: UInt64 = 0x40_0000_0000
            try device.dmaMap(IOTLB.Mapping(iova: alias, size: windowBytes, gpa: physical))
            var aliased = DriverQueue(index: tx.index, driver: tx.driver, kick: tx.kick, call: tx.call,
                                      bufferAddresses: tx.bufferAddresses.map { $0 - txBase + alias },
                                      bufferHosts: tx.bufferHosts, bufferSize: tx.bufferSize, interruptBypass: tx.interruptBypass)
            let second = aliased.transmit(packets: 50_000, payloadBytes: 64, batch: 32, firstSequence: 200_000)
            #expect(second.errors == [] && second.packets == 50_000, "the window mapped mid-traffic carries packets at once")
            #expect(device.counters.transmitChecksum.load(ordering: .relaxed) == first.checksum &+ second.checksum)

            // Unmapped while running: the next packet posted there is refused by the device.
            try device.dmaUnmap(iova: alias, size: windowBytes)
            _ = try aliased.driver.post(Buffer(address: aliased.bufferAddresses[0], length: 64))
            aliased.driver.publish()
            #expect(aliased.kickIfNeeded() == nil)
            _ = try? aliased.kick.notify()
            // The device thread stops on the miss; give it time to get there, then collect why.
            usleep(300_000)
            try device.suspend()
            #expect(device.deviceErrors.count == 1)
            #expect(device.deviceErrors.first?.contains("IOTLB miss: no mapping for IOVA 0x4000") == true, "\(device.deviceErrors)")
        }
        switch layout {
        case .split:
            var tx = try #require(binding.takeSplitQueue(1))
            try run(&tx)
        case .packed:
            var tx = try #require(binding.takePackedQueue(1))
            try run(&tx)
        }
        stop.store(true, ordering: .relaxed)
        churn.join()
        #expect(churnError.value == nil)
        #expect(churned.load(ordering: .relaxed) > 0)
        #expect(device.iotlb.edits >= UInt64(2 * churned.load(ordering: .relaxed)))
        binding.unbind()
    }
}
}
