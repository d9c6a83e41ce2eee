// Both parents under the virtio binding: bring-up through config ops, a million
// checksummed packets each way, unsupported ops as typed errors, and vdpa_sim's
// suspend → get state → new device → set state → resume in the middle of traffic.

import Doorbell
import Testing
import Virtqueue
import VirtioMemory
@testable import Mediation

let packetCount = 1_000_000

/// Transmits `packets` on `tx` and receives as many on `rx`, checking every packet and that
/// the device saw every payload byte.
func exerciseQueues<D: VirtqueueDriverHalf, K: DoorbellNotifier, C: DoorbellWaiter>(
    rx: inout DriverQueue<D, K, C>, tx: inout DriverQueue<D, K, C>, counters: NetDeviceCounters, packets: Int
) {
    let sent = tx.transmit(packets: packets, payloadBytes: 64, batch: 32)
    #expect(sent.errors == [])
    #expect(sent.packets == packets)
    #expect(counters.transmitted.load(ordering: .relaxed) == UInt64(packets))
    #expect(counters.transmitChecksum.load(ordering: .relaxed) == sent.checksum, "the device saw every payload byte")
    let got = rx.receive(packets: packets, batch: 32, expectedBytes: 64)
    #expect(got.errors == [])
    #expect(got.packets == packets)
}

/// Transmits on queue 1 and receives on queue 0 through `binding`, checking every packet.
func exerciseBothDirections<B: EndpointDoorbell>(_ binding: VirtioBinding<B>, counters: NetDeviceCounters, packets: Int,
                                              layout: RingLayoutKind) throws {
    switch layout {
    case .split:
        var rx = try #require(binding.takeSplitQueue(0))
        var tx = try #require(binding.takeSplitQueue(1))
        exerciseQueues(rx: &rx, tx: &tx, counters: counters, packets: packets)
    case .packed:
        var rx = try #require(binding.takePackedQueue(0))
        var tx = try #require(binding.takePackedQueue(1))
        exerciseQueues(rx: &rx, tx: &tx, counters: counters, packets: packets)
    }
}

extension MediationSuites {
@Suite struct VirtioBindingTests {
    @Test(arguments: RingLayoutKind.allCases)
    func vpVDPAPassesAMillionPacketsEachWay(_ layout: RingLayoutKind) throws {
        let bus = VDPABus()
        let device = try VPVDPA(name: "vdpa0", deviceCPU: 1)
        let binding = try VirtioBinding<EventfdDoorbell>(device: device, bus: bus, layout: layout, queues: [0, 1], queueSize: 256,
                                        bufferSize: 2048, callBell: ())
        #expect(device.boundTo == "virtio")
        #expect(binding.timings.contains { $0.operation == "bring_up" })
        try exerciseBothDirections(binding, counters: device.counters, packets: packetCount, layout: layout)
        binding.unbind()
        #expect(device.boundTo == nil)
        #expect(device.getStatus() == [])
    }

    @Test(arguments: RingLayoutKind.allCases)
    func vdpaSimPassesAMillionPacketsEachWayThroughTheIOTLB(_ layout: RingLayoutKind) throws {
        let bus = VDPABus()
        let device = try VDPASim(name: "vdpa1", deviceCPU: 1)
        let binding = try VirtioBinding<EventfdDoorbell>(device: device, bus: bus, layout: layout, queues: [0, 1], queueSize: 256,
                                        bufferSize: 2048, callBell: ())
        try exerciseBothDirections(binding, counters: device.counters, packets: packetCount, layout: layout)
        binding.unbind()
        // Every packet's descriptor and payload went through the IOTLB (rings are translated once).
        #expect(device.iotlbHits >= UInt64(2 * packetCount))
    }

    @Test func unsupportedOpsAreTypedErrors() throws {
        let sim = try VDPASim(name: "s", kick: .busyPoll)
        #expect(throws: MediationError.unsupportedOp(.getVQNotification, parent: "vdpa_sim")) { _ = try sim.getVQNotification(0) }
        #expect(throws: MediationError.unsupportedOp(.getVQIRQ, parent: "vdpa_sim")) { _ = try sim.getVQIRQ(0) }
        let vp = try VPVDPA(name: "p", kick: .busyPoll)
        #expect(throws: MediationError.unsupportedOp(.suspend, parent: "vp_vdpa")) { try vp.suspend() }
        #expect(throws: MediationError.unsupportedOp(.setMap, parent: "vp_vdpa")) { try vp.setMap([]) }
        #expect(throws: MediationError.unsupportedOp(.dmaMap, parent: "vp_vdpa")) {
            try vp.dmaMap(IOTLB.Mapping(iova: 0, size: 4096, gpa: 0))
        }
        #expect(!VPVDPA.supportedOps.contains(.suspend))
        #expect(VDPASim.supportedOps.isSuperset(of: [.suspend, .resume, .getVQState, .setVQState, .setMap]))
        #expect(ConfigOp.mandatory.isSubset(of: VPVDPA.supportedOps))
    }

    @Test func queueSetupAfterDriverOKIsRefused() throws {
        let bus = VDPABus()
        let device = try VDPASim(name: "s")
        let binding = try VirtioBinding<EventfdDoorbell>(device: device, bus: bus, layout: .split, queues: [0, 1], queueSize: 64, callBell: ())
        #expect(throws: MediationError.queueSetupAfterDriverOK(queue: 1, op: .setVQNum)) { try device.setVQNum(1, 128) }
        #expect(throws: MediationError.alreadyBound(device: "s", binding: "virtio")) {
            _ = try VirtioBinding<EventfdDoorbell>(device: device, bus: bus, layout: .split, queues: [0], queueSize: 64, callBell: ())
        }
        binding.unbind()
    }

    @Test(arguments: RingLayoutKind.allCases)
    func vdpaSimMovesMidTrafficToANewDeviceWithNothingLost(_ layout: RingLayoutKind) throws {
        let bus = VDPABus()
        let first = try VDPASim(name: "src", deviceCPU: 1)
        let binding = try VirtioBinding<EventfdDoorbell>(device: first, bus: bus, layout: layout, queues: [0, 1], queueSize: 256, callBell: ())
        func run<D: VirtqueueDriverHalf>(_ tx: inout VirtioQueue<D, EventfdDoorbell>,
                                         _ rx: inout VirtioQueue<D, EventfdDoorbell>) throws {
            let half = 50_000
            let a = tx.transmit(packets: half, payloadBytes: 64, batch: 32)
            var r = rx.receive(packets: half, batch: 32, expectedBytes: 64)
            #expect(a.errors == [] && r.errors == [])
            // Leave a batch posted and kicked, consumed or not: suspend lands mid-traffic.
            var inFlightChecksum: UInt64 = 0
            for i in 0..<32 {
                tx.bufferHosts[i].storeBytes(of: UInt64(1 << 40 + i), as: UInt64.self)
                inFlightChecksum &+= payloadChecksum(tx.bufferHosts[i], 64)
                _ = try tx.driver.post(Buffer(address: tx.bufferAddresses[i], length: 64))
            }
            tx.driver.publish()
            #expect(tx.kickIfNeeded() == nil)
            try first.suspend()
            let txState = try first.getVQState(1)
            let rxState = try first.getVQState(0)
            // A second device takes the rings over: same memory, same callbacks' peers.
            let second = try VDPASim(name: "dst", deviceCPU: 1)
            let features = first.getDriverFeatures()
            try second.setStatus(.acknowledge)
            try second.setStatus([.acknowledge, .driver])
            try second.setDriverFeatures(features)
            try second.setStatus([.acknowledge, .driver, .featuresOK])
            let (iotlb, physical) = first.core.withState { ($0.iotlb, $0.physicalMemory!) }
            second.core.attachPhysicalMemory(physical)
            try second.setMap(iotlb.allMappings)
            for q: UInt16 in [0, 1] {
                let cfg = first.core.withState { $0.queues[Int(q)] }
                try second.setVQNum(q, cfg.size!)
                try second.setVQAddress(q, cfg.addresses!)
                // The callbacks move with the queue (the driver keeps its waiters).
                let cb = first.core.withState { s in
                    let c = s.queues[Int(q)].callback
                    s.queues[Int(q)].callback = nil
                    return c
                }
                try second.setVQCallback(q, cb)
                try second.setVQState(q, q == 1 ? txState : rxState)
                try second.setVQReady(q, true)
            }
            // The driver's kicks go to the new device from now on.
            tx.kick = VirtioKick(device: second, queue: 1, direct: nil)
            rx.kick = VirtioKick(device: second, queue: 0, direct: nil)
            try second.setStatus([.acknowledge, .driver, .featuresOK, .driverOK])
            // The chains left in flight come back from the new device.
            var back = 0
            while back < 32 {
                if try tx.driver.reclaim() != nil { back += 1; continue }
                #expect(tx.kickIfNeeded() == nil)
                if let e = tx.awaitUsed() { Issue.record("\(e)"); return }
            }
            let b = tx.transmit(packets: half, payloadBytes: 64, batch: 32, firstSequence: UInt64(half))
            // The new device numbers its received packets from its own start.
            r = rx.receive(packets: half, batch: 32, expectedBytes: 64)
            #expect(b.errors == [] && r.errors == [])
            let sent = first.counters.transmitted.load(ordering: .relaxed) + second.counters.transmitted.load(ordering: .relaxed)
            #expect(sent == UInt64(2 * half + 32), "every transmitted packet consumed exactly once")
            let sum = first.counters.transmitChecksum.load(ordering: .relaxed) &+ second.counters.transmitChecksum.load(ordering: .relaxed)
            #expect(sum == a.checksum &+ b.checksum &+ inFlightChecksum, "no payload lost or seen twice")
            second.reset()
        }
        switch layout {
        case .split:
            var tx = try #require(binding.takeSplitQueue(1))
            var rx = try #require(binding.takeSplitQueue(0))
            try run(&tx, &rx)
        case .packed:
            var tx = try #require(binding.takePackedQueue(1))
            var rx = try #require(binding.takePackedQueue(0))
            try run(&tx, &rx)
        }
        binding.unbind()
    }
}
}
