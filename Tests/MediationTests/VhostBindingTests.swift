// The vhost binding: a consumer on another thread brings the device up with vhost
// messages only (its memory shared by memfd, kicks by mapped doorbell or by a kick eventfd
// whose wake-up runs kick_vq on the consumer's thread, calls by its own doorbell) and passes a million checksummed packets each way; every
// misordered or bad message is a typed error; unbinding leaves no descriptor behind.

import Atomics
import Doorbell
import Glibc
import Testing
import Virtqueue
import VirtioMemory
@testable import Mediation

/// What the consumer thread saw, handed back to the test's thread for checking.
struct ConsumerReport: @unchecked Sendable {
    var setupError: String?
    var sent = TrafficOutcome()
    var received = TrafficOutcome()
    var passthrough = false
    var bringUpNanoseconds: UInt64 = 0
}

/// Runs a consumer on CPU 0: bring-up through `binding`, then `packets` each way.
func runVhostConsumer(_ binding: VhostBinding, layout: RingLayoutKind, packets: Int,
                      callBell: Void = (), mapNotifyArea: Bool = true) throws -> ConsumerReport {
    let box = ResultBox(ConsumerReport())
    let bell = ResultBox(callBell)
    let thread = try PinnedThread(cpu: 0) {
        do {
            let frontend = try VhostFrontend<EventfdDoorbell>(binding: binding, layout: layout, queues: [0, 1], queueSize: 256,
                                             bufferSize: 2048, callBell: bell.value, mapNotifyArea: mapNotifyArea)
            box.value.bringUpNanoseconds = frontend.timings.first { $0.operation == "bring_up" }?.nanoseconds ?? 0
            func run<D: VirtqueueDriverHalf>(_ rx: inout VhostQueue<D, EventfdDoorbell>, _ tx: inout VhostQueue<D, EventfdDoorbell>) {
                box.value.passthrough = tx.kick.isPassthrough
                box.value.sent = tx.transmit(packets: packets, payloadBytes: 64, batch: 32)
                box.value.received = rx.receive(packets: packets, batch: 32, expectedBytes: 64)
            }
            switch layout {
            case .split:
                var rx = frontend.takeSplitQueue(0)!
                var tx = frontend.takeSplitQueue(1)!
                run(&rx, &tx)
            case .packed:
                var rx = frontend.takePackedQueue(0)!
                var tx = frontend.takePackedQueue(1)!
                run(&rx, &tx)
            }
            frontend.close()
        } catch {
            box.value.setupError = "\(error)"
        }
    }
    thread.join()
    return box.value
}

func expectMillionEachWay(_ r: ConsumerReport, _ counters: NetDeviceCounters, packets: Int) {
    #expect(r.setupError == nil)
    #expect(r.sent.errors == [] && r.received.errors == [])
    #expect(r.sent.packets == packets && r.received.packets == packets)
    #expect(counters.transmitted.load(ordering: .relaxed) == UInt64(packets))
    #expect(counters.received.load(ordering: .relaxed) == UInt64(packets))
    #expect(counters.transmitChecksum.load(ordering: .relaxed) == r.sent.checksum, "the device saw every payload byte")
}

extension MediationSuites {
@Suite struct VhostBindingTests {
    @Test(arguments: RingLayoutKind.allCases)
    func vpVDPAUnderVhostPassesAMillionPacketsEachWayWithAMappedDoorbell(_ layout: RingLayoutKind) throws {
        let bus = VDPABus()
        let device = try VPVDPA(name: "vdpa0", deviceCPU: 1)
        let binding = try VhostBinding(device: device, bus: bus)
        #expect(device.boundTo == "vhost")
        let report = try runVhostConsumer(binding, layout: layout, packets: packetCount, callBell: ())
        expectMillionEachWay(report, device.counters, packets: packetCount)
        #expect(report.passthrough, "vp_vdpa's notify area is mapped: kicks land on the device's doorbell")
        #expect(report.sent.kick.notificationsSent > 0)
        #expect(binding.kicksThroughKickFd == 0, "no kick went through a kick fd")
        let names = Set(binding.timings.map(\.operation))
        #expect(names.isSuperset(of: ["VHOST_SET_OWNER", "VHOST_SET_MEM_TABLE", "VHOST_SET_VRING_ADDR", "VHOST_VDPA_SET_STATUS",
                                      "VHOST_VDPA_GET_VRING_NOTIFICATION", "VHOST_RESET_OWNER"]))
        binding.unbind()
        #expect(device.boundTo == nil)
        #expect(device.getStatus() == [])
        #expect(binding.kickFdFailures == [])
    }

    @Test(arguments: RingLayoutKind.allCases)
    func vdpaSimUnderVhostPassesAMillionPacketsEachWayWithKicksThroughTheKickFd(_ layout: RingLayoutKind) throws {
        let bus = VDPABus()
        let device = try VDPASim(name: "vdpa1", deviceCPU: 1)
        let binding = try VhostBinding(device: device, bus: bus)
        let report = try runVhostConsumer(binding, layout: layout, packets: packetCount, callBell: ())
        expectMillionEachWay(report, device.counters, packets: packetCount)
        #expect(!report.passthrough, "vdpa_sim has no notify area: kicks go through the kick eventfd")
        #expect(report.sent.kick.notificationsSent > 0)
        // Every write to either queue's kick fd ran kick_vq once, on the consumer's thread.
        #expect(binding.kicksThroughKickFd == report.sent.kick.notificationsSent + report.received.kick.notificationsSent)
        binding.unbind()
        #expect(binding.kickFdFailures == [])
        // Every packet's descriptor and payload went through the software IOTLB.
        #expect(device.iotlbHits >= UInt64(2 * packetCount))
    }

    @Test func vpVDPAKicksGoThroughTheKickFdWhenTheNotifyAreaIsNotMapped() throws {
        let device = try VPVDPA(name: "vdpa0", deviceCPU: 1)
        let binding = try VhostBinding(device: device, bus: VDPABus())
        let report = try runVhostConsumer(binding, layout: .split, packets: 100_000, callBell: (), mapNotifyArea: false)
        expectMillionEachWay(report, device.counters, packets: 100_000)
        #expect(!report.passthrough)
        #expect(report.sent.kick.notificationsSent > 0)
        #expect(binding.kicksThroughKickFd == report.sent.kick.notificationsSent + report.received.kick.notificationsSent)
        binding.unbind()
        #expect(binding.kickFdFailures == [])
    }

    @Test func messagesOutOfOrderAndBadMemoryAreTypedErrors() throws {
        let device = try VDPASim(name: "s")
        let bus = VDPABus()
        let binding = try VhostBinding(device: device, bus: bus)
        #expect(throws: MediationError.vhostMessageOutOfOrder(message: "VHOST_GET_FEATURES", requires: "VHOST_SET_OWNER")) {
            try binding.handle(.getFeatures)
        }
        try binding.handle(.setOwner)
        #expect(throws: MediationError.vhostMessageOutOfOrder(message: "VHOST_SET_OWNER", requires: "no owner (the device already has one)")) {
            try binding.handle(.setOwner)
        }
        try binding.handle(.setStatus(.acknowledge))
        try binding.handle(.setStatus([.acknowledge, .driver]))
        #expect(throws: MediationError.featureNotOffered(unoffered: VirtioFeatures.notificationData.rawValue)) {
            try binding.handle(.setFeatures([.version1, .notificationData]))
        }
        try binding.handle(.setFeatures([.version1, .accessPlatform]))
        try binding.handle(.setStatus([.acknowledge, .driver, .featuresOK]))
        // A ring before any memory table, then a table whose fd is not open, then one past the file's end.
        let ring = try SplitLayout(queueSize: 64).addresses(at: 0x1_0000_0000)
        #expect(throws: MediationError.vhostMessageOutOfOrder(message: "VHOST_SET_VRING_ADDR", requires: "VHOST_SET_MEM_TABLE")) {
            try binding.handle(.setVringAddr(queue: 0, ring))
        }
        #expect(throws: MediationError.self) { try binding.handle(.setMemTable([VhostMemoryRegion(guestAddress: 0x1_0000_0000, size: 1 << 20, fd: 9999)])) }
        let memory = try HugepageRegion(bytes: 1 << 20, policy: .require(.smallPages), shareable: true)
        #expect(throws: MediationError.mapping(.addressOutsideMemory(gpa: 0, length: 2 << 20))) {
            try binding.handle(.setMemTable([VhostMemoryRegion(guestAddress: 0x1_0000_0000, size: 2 << 20, fd: memory.fd!)]))
        }
        #expect(throws: MediationError.vhostMessageOutOfOrder(message: "VHOST_VDPA_SET_STATUS(DRIVER_OK)", requires: "VHOST_SET_MEM_TABLE")) {
            try binding.handle(.setStatus([.acknowledge, .driver, .featuresOK, .driverOK]))
        }
        try binding.handle(.setMemTable([VhostMemoryRegion(guestAddress: 0x1_0000_0000, size: UInt64(memory.size), fd: memory.fd!)]))
        try binding.handle(.setVringNum(queue: 0, size: 64))
        // A ring that runs past the table's end.
        let outside = try SplitLayout(queueSize: 64).addresses(at: 0x1_0000_0000 + UInt64(memory.size) - 512)
        #expect(throws: MediationError.self) { try binding.handle(.setVringAddr(queue: 0, outside)) }
        #expect(throws: MediationError.vhostAddressUnmapped(address: 0x5_0000_0000, length: 4096)) {
            try binding.handle(.iotlbUpdate(iova: 0x9_0000_0000, size: 4096, guestAddress: 0x5_0000_0000, access: .readWrite))
        }
        try binding.handle(.iotlbUpdate(iova: 0x9_0000_0000, size: 4096, guestAddress: 0x1_0000_0000, access: .read))
        try binding.handle(.iotlbInvalidate(iova: 0x9_0000_0000, size: 4096))
        #expect(throws: MediationError.mapping(.unmapOfUnmappedRange(iova: 0x9_0000_0000, size: 4096))) {
            try binding.handle(.iotlbInvalidate(iova: 0x9_0000_0000, size: 4096))
        }
        #expect(throws: MediationError.queueOutOfRange(queue: 7, queues: 2)) { try binding.handle(.setVringNum(queue: 7, size: 64)) }
        #expect(throws: MediationError.unsupportedOp(.getVQNotification, parent: "vdpa_sim")) {
            try binding.handle(.getVringNotification(queue: 0))
        }
        // A device bound to vhost cannot also be bound to virtio.
        #expect(throws: MediationError.alreadyBound(device: "s", binding: "vhost")) {
            _ = try VirtioBinding<EventfdDoorbell>(device: device, bus: bus, layout: .split, queues: [0], queueSize: 64, callBell: ())
        }
        binding.unbind()
        #expect(device.boundTo == nil)
    }

    @Test func vdpaSimQueueStateTravelsThroughVhostMessages() throws {
        let device = try VDPASim(name: "s", deviceCPU: 1)
        let binding = try VhostBinding(device: device, bus: VDPABus())
        let report = try runVhostConsumerKeepingDevice(binding, packets: 10_000)
        #expect(report.setupError == nil)
        #expect(report.sent.packets == 10_000)
        binding.unbind()
    }

    @Test func bindUseAndUnbindLeaveNoDescriptorOrMappingBehind() throws {
        // Warm up once so lazily opened descriptors (the probe, the runtime's) are counted
        // before. The count is the whole test process's, and suites of other targets run
        // alongside and open their own, so a clean round in any of three passes; a real
        // leak grows the count in every round.
        var clean = false
        for round in 0..<4 where !clean {
            let before = openDescriptorCount()
            do {
                let device = try VDPASim(name: "leak", deviceCPU: 1)
                let binding = try VhostBinding(device: device, bus: VDPABus())
                let report = try runVhostConsumer(binding, layout: .packed, packets: 10_000, callBell: ())
                #expect(report.setupError == nil && report.sent.packets == 10_000)
                binding.unbind()
            }
            if round > 0 { clean = noDescriptorsLeaked(since: before) }
        }
        #expect(clean)
    }
}
}

/// A consumer that suspends the device after traffic and reads each queue's position back
/// with VHOST_GET_VRING_BASE: the transmit queue's avail and used positions equal the
/// packets sent.
func runVhostConsumerKeepingDevice(_ binding: VhostBinding, packets: Int) throws -> ConsumerReport {
    let box = ResultBox(ConsumerReport())
    let thread = try PinnedThread(cpu: 0) {
        do {
            let frontend = try VhostFrontend<EventfdDoorbell>(binding: binding, layout: .split, queues: [0, 1], queueSize: 256, callBell: ())
            var tx = frontend.takeSplitQueue(1)!
            box.value.sent = tx.transmit(packets: packets, payloadBytes: 64, batch: 32)
            try binding.handle(.suspend)
            guard case let .vringBase(.split(state)) = try binding.handle(.getVringBase(queue: 1)) else {
                box.value.setupError = "VHOST_GET_VRING_BASE gave no split state"
                return
            }
            if state.lastAvailableIndex != UInt16(truncatingIfNeeded: packets) || state.usedIndex != UInt16(truncatingIfNeeded: packets) {
                box.value.setupError = "queue 1 state \(state) after \(packets) packets"
            }
            try binding.handle(.resume)
            frontend.close()
        } catch {
            box.value.setupError = "\(error)"
        }
    }
    thread.join()
    return box.value
}
