// vp_vdpa: a standard virtio-pci device presented as a vDPA device. Differs from the
// others in doing nothing in the datapath: control ops become common-config register
// writes, the notify area is passed through (the driver's kick is a store to the device's
// own doorbell), each queue has its own interrupt vector with bypass, DMA goes through
// the platform IOMMU, and there is no suspend (queue state: the initial state only).
//
// Modelled (cannot be real here; reported as modelled, not added to measured times):
// - pcie_doorbell_write_ns = 200: a posted MMIO write's flight to the device (PCIe
//   posted-write latency, typically 100–300 ns on current root complexes; Intel
//   "PCIe Latency" measurements, Neugebauer et al., "Understanding PCIe performance
//   for end host networking", SIGCOMM 2018).
// - msix_interrupt_delivery_ns = 1000: MSI-X message to a host vector handler
//   (same SIGCOMM 2018 paper; interrupt bypass via posted interrupts avoids a VM exit).
// - common_cfg_write_ns = 200: each control-path register write (same PCIe source).

import Doorbell
import Virtqueue
import VirtioMemory

public final class VPVDPA: VDPAConfigOps, @unchecked Sendable {
    public let core: VDPADeviceCore
    public let counters = NetDeviceCounters()
    public let deviceCPU: Int32?
    private var thread: NetDeviceThread<GuestMemory>?
    /// Register writes the control path made (queue_select + value per queue op, status writes).
    public private(set) var commonConfigWrites = 0
    private var everStarted = false

    public static var parentName: String { "vp_vdpa" }
    public static var strategy: String {
        "a virtio-pci device as vDPA: common-config registers, notify area passed through, per-queue interrupt bypass, platform IOMMU"
    }
    public static var dmaModel: DMAModel { .platformIOMMU }
    /// set_vq_state accepts only a queue's initial state.
    public static var restoresQueueState: Bool { false }
    public static var supportedOps: Set<ConfigOp> {
        ConfigOp.mandatory.union([.kickVQWithData, .getVQNotification, .getVQIRQ, .getVQState, .setVQState])
    }
    public static var modelParameters: [ModelParameter] {
        [.pcieDoorbellWrite,
         .msixInterruptDelivery,
         .commonConfigWrite]
    }

    /// The device features a virtio-pci net device offers here.
    public static var offeredFeatures: VirtioFeatures {
        VirtioFeatures([.version1, .indirectDescriptors, .eventIndex, .ringPacked, .accessPlatform, .notificationData])
            .union(NetConfig.netFeatures)
    }

    public init(_ c: ParentConfiguration) throws(MediationError) {
        core = try VDPADeviceCore(net: c, vendorID: 0x1AF4, offered: Self.offeredFeatures)
        deviceCPU = c.deviceCPU
    }

    public func startDevice() throws(MediationError) {
        let memory = try core.platformMemory(parent: Self.parentName)
        let queues = core.withState { s in s.queues.filter(\.ready).count }
        // Per ready queue: queue_select, queue_size, three area addresses, msix vector, enable; then status.
        commonConfigWrites += queues * 7 + 1
        thread = try core.startNetDevice(memory: memory, behaviour: NetDeviceBehaviour(copiesPayload: false),
                                         cpu: deviceCPU, counters: counters)
        everStarted = true
    }

    /// Why the device thread stopped by itself (a hostile ring, an unmapped address), one
    /// entry per stop; the queue then needs a reset, as virtio's NEEDS_RESET says.
    public private(set) var deviceErrors: [String] = []

    public func stopDevice() {
        if let t = thread {
            let stop = t.stop(wake: core.wakeForStop)
            if let e = stop.error { deviceErrors.append(e) }
            core.absorb(stop)
            thread = nil
        }
        everStarted = false
    }

    /// Host-side kick: a write to the queue's notify register, when the notify area is not
    /// mapped to a driver (under vhost, the kick fd's wake-up calls it when the area is not mapped).
    public func kickVQ(_ queue: UInt16) throws(MediationError) { try core.ringKick(queue: queue) }

    public func kickVQWithData(_ data: NotificationData) throws(MediationError) { try kickVQ(data.queue) }

    /// The notify area: the device's doorbell itself, handed to the one driver that maps it.
    public func getVQNotification(_ queue: UInt16) throws(MediationError) -> DoorbellEndpoint {
        try core.mapNotifyArea(queue: queue)
    }

    /// One MSI-X vector per queue (vector 0 is the config interrupt): bypass is possible.
    public func getVQIRQ(_ queue: UInt16) throws(MediationError) -> Int {
        try core.perQueueVector(queue)
    }

    /// A virtio-pci device cannot report where it is: only the initial state, before it ran.
    public func getVQState(_ queue: UInt16) throws(MediationError) -> VDPAQueueState {
        guard Int(queue) < core.identity.queueCount else { throw .queueOutOfRange(queue: queue, queues: core.identity.queueCount) }
        if everStarted { throw .invalidQueueState(queue: queue, reason: "vp_vdpa reports only the initial state; the queue has run") }
        return core.withState { $0.machine.driverFeatures.contains(.ringPacked) } ? .packed(PackedQueueState()) : .split(SplitQueueState())
    }

    public func setVQState(_ queue: UInt16, _ state: VDPAQueueState) throws(MediationError) {
        guard state == .split(SplitQueueState()) || state == .packed(PackedQueueState()) else {
            throw .invalidQueueState(queue: queue, reason: "vp_vdpa accepts only the initial state")
        }
    }

    public var modelledControlNanoseconds: Double { Double(commonConfigWrites) * 200 }
}
