// pds_vdpa: AMD Pensando's DSC. Every control op is a command on the admin queue to the
// card's core firmware (here: a firmware thread serving a command queue; each op waits for
// its completion); the notify area is passed through and each queue has its own vector with
// bypass; DMA through the platform IOMMU; queue state can be read or written only while the
// queue is disabled.
//
// Modelled (reported, never added to measured times):
// - pds_adminq_command_ns = 20000: the firmware's service time per admin command. No public
//   measurement was found; assumed (an admin/mailbox command to NIC firmware, tens of µs).
// - pcie_doorbell_write_ns = 200, msix_interrupt_delivery_ns = 1000 (Neugebauer et al., SIGCOMM 2018).

import Doorbell
import Virtqueue
import VirtioMemory

public final class PDSVDPA: VDPAConfigOps, @unchecked Sendable {
    public let core: VDPADeviceCore
    public let counters = NetDeviceCounters()
    public let deviceCPU: Int32?
    public let firmware: FirmwareChannel
    private let datapath = ParentDatapath<GuestMemory>()

    public static var parentName: String { "pds_vdpa" }
    public static var strategy: String {
        "AMD Pensando: admin-queue commands to firmware, notify area passed through, a vector per queue with bypass, "
            + "queue state only while a queue is disabled"
    }
    public static var dmaModel: DMAModel { .platformIOMMU }
    public static var supportedOps: Set<ConfigOp> {
        ConfigOp.mandatory.union([.getVQNotification, .getVQIRQ, .getVQState, .setVQState])
    }
    static let adminCommand = ModelParameter(name: "pds_adminq_command_ns", value: 20_000, unit: "ns",
                                             source: "assumed: no public measurement of the DSC firmware's admin-queue service time")
    public static var modelParameters: [ModelParameter] {
        [adminCommand,
         .pcieDoorbellWrite,
         .msixInterruptDelivery]
    }
    public static var offeredFeatures: VirtioFeatures {
        VirtioFeatures([.version1, .indirectDescriptors, .eventIndex, .ringPacked, .accessPlatform]).union(NetConfig.netFeatures)
    }

    public init(_ c: ParentConfiguration) throws(MediationError) {
        core = try VDPADeviceCore(net: c, vendorID: 0x1DD8, offered: Self.offeredFeatures)
        deviceCPU = c.deviceCPU
        firmware = try FirmwareChannel(parent: Self.parentName, serviceTime: Self.adminCommand,
                                       timeoutNanoseconds: c.firmwareTimeoutNanoseconds, cpu: c.deviceCPU)
    }

    /// The admin command each op becomes (pds_vdpa_cmd_*).
    public func deliver(_ access: ControlAccess) throws(MediationError) {
        let name: String
        switch access {
        case .setVQNum, .setVQAddress: name = "VDPA_VQ_INIT"
        case let .setVQReady(_, on): name = on ? "VDPA_VQ_ENABLE" : "VDPA_VQ_RESET"
        case .setStatus: name = "VDPA_SET_STATUS"
        case .setDriverFeatures: name = "VDPA_SET_FEATURES"
        case .setConfig: name = "VDPA_SET_ATTR"
        }
        try firmware.executeAll([FirmwareCommand(name)], failing: core)
    }

    public func startDevice() throws(MediationError) {
        let memory = try core.platformMemory(parent: Self.parentName)
        try datapath.start(core, memory: memory, behaviour: NetDeviceBehaviour(copiesPayload: false), delivery: .bypass,
                           cpu: deviceCPU, counters: counters)
    }

    public func stopDevice() {
        datapath.stop(core)
        firmware.reset()
    }

    public var deviceErrors: [String] { datapath.errors }

    public func kickVQ(_ queue: UInt16) throws(MediationError) { try core.ringKick(queue: queue) }

    public func getVQNotification(_ queue: UInt16) throws(MediationError) -> DoorbellEndpoint {
        try core.mapNotifyArea(queue: queue)
    }

    public func getVQIRQ(_ queue: UInt16) throws(MediationError) -> Int {
        try core.perQueueVector(queue)
    }

    private func requireDisabled(_ queue: UInt16) throws(MediationError) {
        let ready = try core.withState { (s) throws(MediationError) -> Bool in
            guard Int(queue) < s.queues.count else { throw .queueOutOfRange(queue: queue, queues: s.queues.count) }
            return s.queues[Int(queue)].ready
        }
        if ready {
            throw .invalidQueueState(queue: queue, reason: "pds_vdpa reads and writes queue state only while the queue is disabled")
        }
    }

    public func getVQState(_ queue: UInt16) throws(MediationError) -> VDPAQueueState {
        try requireDisabled(queue)
        _ = try firmware.execute(FirmwareCommand("VDPA_VQ_GET_STATE"))
        return core.withState { s in
            s.queues[Int(queue)].state
                ?? (s.machine.driverFeatures.contains(.ringPacked) ? .packed(PackedQueueState()) : .split(SplitQueueState()))
        }
    }

    public func setVQState(_ queue: UInt16, _ state: VDPAQueueState) throws(MediationError) {
        try requireDisabled(queue)
        _ = try firmware.execute(FirmwareCommand("VDPA_VQ_SET_STATE"))
        try core.setQueueStateWhileStopped(queue, state)
    }

    public var modelledControlNanoseconds: Double { firmware.counters.modelledNanoseconds }
}
