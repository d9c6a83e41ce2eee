// eni_vdpa: Alibaba's ENI, a legacy virtio-net device mediated at PF level. Control ops
// are legacy virtio I/O-port register accesses; a legacy device has one queue address
// register (the descriptor table's page frame) and computes the available and used rings
// from it in the legacy layout (used ring aligned to 4096), so the driver must lay its
// rings out that way; its ring size is fixed by the device; there is no notify area: every
// kick traps into the mediator, which relays it to the legacy notify port; each queue has
// its own vector with bypass; no packed ring, and no queue state to read back.
//
// Modelled (reported, never added to measured times):
// - legacy_pio_access_ns = 1000: an I/O-port access is a non-posted PCIe transaction
//   (round trip ~ 800–1000 ns; Neugebauer et al., SIGCOMM 2018), paid by every register
//   access and by every relayed kick.
// - msix_interrupt_delivery_ns = 1000: as vp_vdpa (same source).
// - eni_queue_size = 256: the size this simulated ENI's QUEUE_NUM register reports (the
//   real value is the hardware's; 256 is the suite's queue size).

import Doorbell
import Virtqueue
import VirtioMemory

public final class ENIVDPA: VDPAConfigOps, @unchecked Sendable {
    public let core: VDPADeviceCore
    public let counters = NetDeviceCounters()
    public let deviceCPU: Int32?
    private let datapath = ParentDatapath<GuestMemory>()
    /// The ring size the device reports and accepts, and nothing else.
    public static let queueSize = 256
    public private(set) var ioRegisterAccesses = 0
    /// Kicks the mediator relayed to the legacy notify port.
    public private(set) var notifyPortWrites = 0
    private var everStarted = false

    public static var parentName: String { "eni_vdpa" }
    public static var strategy: String {
        "Alibaba ENI (PF, legacy virtio): I/O-port registers, fixed ring size and legacy 4096 layout, "
            + "every kick trapped and relayed to the notify port, a vector per queue with bypass, split only"
    }
    public static var dmaModel: DMAModel { .platformIOMMU }
    /// set_vq_state accepts only a queue's initial state.
    public static var restoresQueueState: Bool { false }
    public static var supportedOps: Set<ConfigOp> { ConfigOp.mandatory.union([.getVQIRQ, .setVQState]) }
    public static var supportedLayouts: [RingLayoutKind] { [.split] }
    public static var vqAlignment: Int { 4096 }
    public static var modelParameters: [ModelParameter] {
        [ModelParameter(name: "legacy_pio_access_ns", value: 1000, unit: "ns",
                        source: "non-posted PCIe I/O transaction round trip; Neugebauer et al., SIGCOMM 2018"),
         .msixInterruptDelivery,
         ModelParameter(name: "eni_queue_size", value: Double(queueSize), unit: "descriptors",
                        source: "the simulated device's QUEUE_NUM register (the hardware's own value is not public; 256 is the suite's queue size)")]
    }
    /// A legacy device: no packed ring, no notification data; the vDPA bus sees ACCESS_PLATFORM.
    public static var offeredFeatures: VirtioFeatures {
        VirtioFeatures([.version1, .indirectDescriptors, .eventIndex, .accessPlatform]).union(NetConfig.netFeatures)
    }

    public init(_ c: ParentConfiguration) throws(MediationError) {
        var c = c
        c.features = (c.features ?? Self.offeredFeatures).subtracting(.ringPacked)
        core = try VDPADeviceCore(net: c, vendorID: 0x1DED, offered: Self.offeredFeatures, maxQueueSize: Self.queueSize)
        deviceCPU = c.deviceCPU
    }

    /// Every op is a legacy register access; the ring must be the device's size and layout.
    public func deliver(_ access: ControlAccess) throws(MediationError) {
        switch access {
        case let .setVQNum(q, size) where size != Self.queueSize:
            throw .invalidQueueSize(queue: q, size: size, max: Self.queueSize)
        case let .setVQAddress(q, a):
            let layout = try? SplitLayout(queueSize: Self.queueSize, usedAlignment: Self.vqAlignment)
            guard let expected = layout?.addresses(at: a.descriptorArea), a.descriptorArea % 4096 == 0,
                  expected.driverArea == a.driverArea, expected.deviceArea == a.deviceArea else {
                throw .ringLayoutRefused(queue: q, parent: Self.parentName,
                                         reason: "a legacy device takes one page-aligned queue address and computes the rest "
                                             + "(available ring right after \(Self.queueSize) descriptors, used ring aligned to 4096)")
            }
            ioRegisterAccesses += 2
        default:
            ioRegisterAccesses += access.queue == nil ? 1 : 2
        }
    }

    public func startDevice() throws(MediationError) {
        let memory = try core.platformMemory(parent: Self.parentName)
        try datapath.start(core, memory: memory, behaviour: NetDeviceBehaviour(copiesPayload: false), delivery: .bypass,
                           cpu: deviceCPU, counters: counters)
        everStarted = true
    }

    public func stopDevice() {
        datapath.stop(core)
        everStarted = false
    }

    public var deviceErrors: [String] { datapath.errors }

    /// The trap: the driver's kick reaches the mediator, which writes the queue index to the
    /// legacy notify port (the device's doorbell).
    public func kickVQ(_ queue: UInt16) throws(MediationError) {
        try core.ringKick(queue: queue)
        notifyPortWrites += 1
    }

    public func getVQIRQ(_ queue: UInt16) throws(MediationError) -> Int {
        try core.perQueueVector(queue)
    }

    /// A legacy device has no queue state registers: only the initial state, before it ran.
    public func setVQState(_ queue: UInt16, _ state: VDPAQueueState) throws(MediationError) {
        guard state == .split(SplitQueueState()), !everStarted else {
            throw .invalidQueueState(queue: queue, reason: "eni_vdpa accepts only the initial split state")
        }
    }

    public var modelledControlNanoseconds: Double { Double(ioRegisterAccesses) * 1000 }
}
