// octeon_ep: Marvell's OCTEON DPU endpoint. Its virtio registers are emulated by the DPU's
// firmware: every queue-select write posts to the firmware and the driver polls for the
// firmware's acknowledgement every 10 µs before writing the value (here: a command to the
// firmware thread, and a real 10 µs polling loop). The doorbell is passed through and takes
// notification data (kick_vq_with_data only). All queues share one interrupt vector; its
// handler scans every queue and rings each one that is pending.
//
// Modelled (reported, never added to measured times):
// - octeon_register_emulation_ns = 10000: the firmware's time to emulate one register
//   write. No public measurement was found; assumed at the driver's polling period.
// - pcie_doorbell_write_ns = 200, msix_interrupt_delivery_ns = 1000 (Neugebauer et al., SIGCOMM 2018).

import CPlatform
import Doorbell
import Glibc
import Virtqueue
import VirtioMemory

public final class OcteonEP: VDPAConfigOps, @unchecked Sendable {
    public let core: VDPADeviceCore
    public let counters = NetDeviceCounters()
    public let deviceCPU: Int32?
    public let firmware: FirmwareChannel
    private let datapath = ParentDatapath<GuestMemory>()
    /// The driver's polling period for the firmware's acknowledgement (octep_vdpa's 10 µs).
    public static let ackPollMicroseconds: UInt32 = 10
    /// Queue-select writes made, and acknowledgement polls they took in total.
    public private(set) var selectWrites = 0
    public private(set) var ackPolls = 0
    public private(set) var valueWrites = 0
    private let timeoutNanoseconds: UInt64

    public static var parentName: String { "octeon_ep" }
    public static var strategy: String {
        "Marvell OCTEON: registers emulated by DPU firmware (each select write waits for an acknowledgement polled every 10 µs), "
            + "doorbell passed through with notification data, one shared vector whose handler scans every queue"
    }
    public static var dmaModel: DMAModel { .platformIOMMU }
    /// set_vq_state accepts only a queue's initial state.
    public static var restoresQueueState: Bool { false }
    public static var supportedOps: Set<ConfigOp> {
        ConfigOp.mandatory.subtracting([.kickVQ]).union([.kickVQWithData, .getVQNotification, .setVQState])
    }
    static let emulation = ModelParameter(name: "octeon_register_emulation_ns", value: 10_000, unit: "ns",
                                          source: "assumed: no public measurement; set at the driver's 10 µs acknowledgement polling period")
    public static var modelParameters: [ModelParameter] {
        [emulation,
         .pcieDoorbellWrite,
         .msixInterruptDelivery]
    }
    public static var offeredFeatures: VirtioFeatures {
        VirtioFeatures([.version1, .indirectDescriptors, .eventIndex, .ringPacked, .accessPlatform, .notificationData])
            .union(NetConfig.netFeatures)
    }

    public init(_ c: ParentConfiguration) throws(MediationError) {
        core = try VDPADeviceCore(net: c, vendorID: 0x177D, offered: Self.offeredFeatures)
        deviceCPU = c.deviceCPU
        timeoutNanoseconds = c.firmwareTimeoutNanoseconds
        firmware = try FirmwareChannel(parent: Self.parentName, serviceTime: Self.emulation,
                                       timeoutNanoseconds: c.firmwareTimeoutNanoseconds, cpu: c.deviceCPU)
    }

    /// A queue op: the select write, polled until the firmware acknowledges it, then the
    /// value write. Device-wide ops are a value write alone.
    public func deliver(_ access: ControlAccess) throws(MediationError) {
        if let q = access.queue { try selectQueue(q) }
        valueWrites += 1
    }

    private func selectQueue(_ queue: UInt16) throws(MediationError) {
        selectWrites += 1
        let ticket = firmware.post(FirmwareCommand("QUEUE_SELECT") { .value(UInt64(queue)) })
        let deadline = cplatform_monotonic_ns() &+ timeoutNanoseconds
        while true {
            if let answer = firmware.poll(ticket) {
                firmware.finish(ticket, timedOut: false)
                if case let .failure(e) = answer { throw e }
                return
            }
            if cplatform_monotonic_ns() >= deadline {
                firmware.finish(ticket, timedOut: true)
                core.withState { $0.machine.deviceNeedsReset() }
                throw .firmwareTimeout(command: "QUEUE_SELECT", parent: Self.parentName, nanoseconds: timeoutNanoseconds)
            }
            ackPolls += 1
            usleep(Self.ackPollMicroseconds)
        }
    }

    public func startDevice() throws(MediationError) {
        let memory = try core.platformMemory(parent: Self.parentName)
        try datapath.start(core, memory: memory, behaviour: NetDeviceBehaviour(copiesPayload: false),
                           delivery: .relayed(.sharedVectorScan), cpu: deviceCPU, counters: counters)
    }

    public func stopDevice() {
        datapath.stop(core)
        firmware.reset()
    }

    public var deviceErrors: [String] { datapath.errors }
    public var interruptHandler: InterruptHandlerCounters { datapath.handled.counters }

    /// Host-side kicks carry notification data; a kick without it is refused.
    public func kickVQ(_ queue: UInt16) throws(MediationError) {
        throw .unsupportedOp(.kickVQ, parent: Self.parentName + " (kick_vq_with_data only)")
    }

    public func kickVQWithData(_ data: NotificationData) throws(MediationError) { try core.ringKick(queue: data.queue) }

    public func getVQNotification(_ queue: UInt16) throws(MediationError) -> DoorbellEndpoint {
        try core.mapNotifyArea(queue: queue)
    }

    /// Queue state goes through a mailbox the device reads at start: only the initial
    /// position is accepted (nothing to restore into a running ring).
    public func setVQState(_ queue: UInt16, _ state: VDPAQueueState) throws(MediationError) {
        guard Int(queue) < core.identity.queueCount else { throw .queueOutOfRange(queue: queue, queues: core.identity.queueCount) }
        guard state == .split(SplitQueueState()) || state == .packed(PackedQueueState()) else {
            throw .invalidQueueState(queue: queue, reason: "octeon_ep accepts only the initial state")
        }
    }

    public var modelledControlNanoseconds: Double { firmware.counters.modelledNanoseconds }
}
