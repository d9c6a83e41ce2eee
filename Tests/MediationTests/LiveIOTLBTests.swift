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

    /// A vhost front end with a vIOMMU maps a second window onto its transmit buffers while
    /// the shadow virtqueue relays (VHOST_IOTLB_UPDATE after DRIVER_OK): the relay drains,
    /// restarts on the new domain, and packets posted at the new addresses go through at once
    /// with nothing lost; after VHOST_IOTLB_INVALIDATE the relay refuses the window.
    @Test(arguments: RingLayoutKind.allCases)
    func theShadowVirtqueueTakesIOTLBUpdatesWhileItRelays(_ layout: RingLayoutKind) throws {
        let device = try ShadowVirtqueue<VPVDPA>(name: "svq-iotlb", deviceCPU: 1)
        let binding = try VhostBinding(device: device, bus: VDPABus())
        let problems = try onConsumerThread { problems in
            let frontend = try VhostFrontend<EventfdDoorbell>(binding: binding, layout: layout, queues: [0, 1], queueSize: 256, callBell: ())
            let base = VhostFrontend<EventfdDoorbell>.guestBase(1)
            let bytes = UInt64(frontend.arenas[1]!.region.size)
            let alias: UInt64 = 0x40_0000_0000
            func run<D: VirtqueueDriverHalf>(_ tx: inout VhostQueue<D, EventfdDoorbell>) throws {
                let first = tx.transmit(packets: 100_000, payloadBytes: 64, batch: 32)
                if first.errors != [] || first.packets != 100_000 { problems.append("before: \(first.errors)") }
                try binding.handle(.iotlbUpdate(iova: alias, size: bytes, guestAddress: base, access: .readWrite))
                var aliased = DriverQueue(index: tx.index, driver: tx.driver, kick: tx.kick, call: tx.call,
                                          bufferAddresses: tx.bufferAddresses.map { $0 - base + alias },
                                          bufferHosts: tx.bufferHosts, bufferSize: tx.bufferSize, interruptBypass: tx.interruptBypass)
                let second = aliased.transmit(packets: 50_000, payloadBytes: 64, batch: 32, firstSequence: 100_000)
                if second.errors != [] || second.packets != 50_000 { problems.append("through the new window: \(second.errors)") }
                if device.counters.transmitChecksum.load(ordering: .relaxed) != first.checksum &+ second.checksum {
                    problems.append("the device did not see every payload byte")
                }
                try binding.handle(.iotlbInvalidate(iova: alias, size: bytes))
                _ = try aliased.driver.post(Buffer(address: aliased.bufferAddresses[0], length: 64))
                aliased.driver.publish()
                _ = try? aliased.kick.notify()
                // The relay stops on the miss and the device needs a reset (§2.1.2).
                var waited = 0
                while !device.getStatus().contains(.needsReset) && waited < 500 {
                    usleep(10_000)
                    waited += 1
                }
                if !device.getStatus().contains(.needsReset) { problems.append("a buffer in the invalidated window was not refused") }
            }
            switch layout {
            case .split:
                var tx = frontend.takeSplitQueue(1)!
                try run(&tx)
            case .packed:
                var tx = frontend.takePackedQueue(1)!
                try run(&tx)
            }
            frontend.close()
        }
        #expect(problems == [])
        binding.unbind()
    }

    /// A parent without a live remap (vp_vdpa on its own) refuses an IOTLB update while it
    /// runs, by name, and keeps the domain it had: traffic goes on.
    @Test func aPlatformIOMMUParentThatCannotRemapLiveRefusesAndKeepsRunning() throws {
        let device = try VPVDPA(name: "vp-iotlb", deviceCPU: 1)
        let binding = try VhostBinding(device: device, bus: VDPABus())
        let problems = try onConsumerThread { problems in
            let frontend = try VhostFrontend<EventfdDoorbell>(binding: binding, layout: .split, queues: [0, 1], queueSize: 256, callBell: ())
            var tx = frontend.takeSplitQueue(1)!
            let base = VhostFrontend<EventfdDoorbell>.guestBase(1)
            do {
                try binding.handle(.iotlbUpdate(iova: 0x40_0000_0000, size: 4096, guestAddress: base, access: .readWrite))
                problems.append("the update was accepted")
            } catch let e as MediationError {
                if e != .mappingChangeWhileRunning(op: .dmaMap) { problems.append("\(e)") }
            }
            let t = tx.transmit(packets: 10_000, payloadBytes: 64, batch: 32)
            if t.errors != [] || t.packets != 10_000 { problems.append("\(t.errors)") }
            frontend.close()
        }
        #expect(problems == [])
        binding.unbind()
    }
}
}

/// Runs `body` on a consumer thread pinned to CPU 0 and returns what it found wrong (an
/// error it threw included).
func onConsumerThread(_ body: @escaping @Sendable (inout [String]) throws -> Void) throws -> [String] {
    let outcome = ResultBox<[String]>([])
    let thread = try PinnedThread(cpu: 0) {
        var problems: [String] = []
        do { try body(&problems) } catch { problems.append("\(error)") }
        outcome.value = problems
    }
    thread.join()
    return outcome.value
}
