// ifcvf: Intel's IFC VF, a virtio-net virtual function mediated at VF level. Control ops
// are writes to the virtio common config registers (as vp_vdpa), the notify area is passed
// through, and every queue asks for its own MSI-X vector with interrupt bypass; when the
// platform grants fewer vectors than queues plus config, all queues share one vector whose
// handler rings every pending queue (get_vq_irq then has nothing to give). Queue state goes
// through the vendor's live-migration registers: the device keeps each queue's last
// available index there, so it can be read while the queue runs (split) and written before
// DRIVER_OK.
//
// Modelled (reported, never added to measured times):
// - pcie_doorbell_write_ns = 200, msix_interrupt_delivery_ns = 1000, common_cfg_write_ns = 200:
//   as vp_vdpa (Neugebauer et al., SIGCOMM 2018, "Understanding PCIe performance for
//   end host networking").
// - lm_register_access_ns = 900: a live-migration register read is a non-posted PCIe read
//   (round trip ~ 800–1000 ns in the same paper's measurements).

import Doorbell
import Virtqueue
import VirtioMemory

public final class IFCVF: VDPAConfigOps, @unchecked Sendable {
    public let core: VDPADeviceCore
    public let counters = NetDeviceCounters()
    public let deviceCPU: Int32?
    private let datapath = ParentDatapath<GuestMemory>()
    private var positions: QueuePositions?
    /// Each ready queue's position when the device thread started (its LM register's base).
    private var startStates: [UInt16: VDPAQueueState] = [:]
    private var readyOrder: [UInt16] = []
    /// Vectors granted and whether the queues share one.
    public let vectorsGranted: Int
    public let sharedVector: Bool
    public private(set) var commonConfigWrites = 0
    public private(set) var lmRegisterReads = 0
    public private(set) var lmRegisterWrites = 0

    public static var parentName: String { "ifcvf" }
    public static var strategy: String {
        "Intel IFC VF: common-config registers, notify area passed through, a vector per queue with bypass "
            + "(one shared vector when vectors run short), queue state through vendor live-migration registers"
    }
    public static var dmaModel: DMAModel { .platformIOMMU }
    public static var supportedOps: Set<ConfigOp> {
        ConfigOp.mandatory.union([.getVQNotification, .getVQIRQ, .getVQState, .setVQState])
    }
    public static var modelParameters: [ModelParameter] {
        [.pcieDoorbellWrite,
         .msixInterruptDelivery,
         .commonConfigWrite,
         ModelParameter(name: "lm_register_access_ns", value: 900, unit: "ns",
                        source: "non-posted PCIe register read round trip; Neugebauer et al., SIGCOMM 2018")]
    }
    public static var offeredFeatures: VirtioFeatures {
        VirtioFeatures([.version1, .indirectDescriptors, .eventIndex, .ringPacked, .accessPlatform]).union(NetConfig.netFeatures)
    }

    public init(_ c: ParentConfiguration) throws(MediationError) {
        core = try VDPADeviceCore(net: c, vendorID: 0x8086, offered: Self.offeredFeatures)
        deviceCPU = c.deviceCPU
        // ifcvf asks for one vector per queue plus one for config changes.
        let queues = core.identity.queueCount
        vectorsGranted = min(c.interruptVectors ?? queues + 1, queues + 1)
        sharedVector = vectorsGranted < queues + 1
    }

    /// Register writes: queue_select + the value for each queue op, one per status or feature write.
    public func deliver(_ access: ControlAccess) throws(MediationError) {
        commonConfigWrites += access.queue == nil ? 1 : 2
    }

    public func startDevice() throws(MediationError) {
        let memory = try core.platformMemory(parent: Self.parentName)
        let (order, states) = core.withState { s -> ([UInt16], [UInt16: VDPAQueueState]) in
            var order: [UInt16] = []
            var states: [UInt16: VDPAQueueState] = [:]
            for (i, q) in s.queues.enumerated() where q.ready {
                order.append(UInt16(i))
                states[UInt16(i)] = q.state
            }
            return (order, states)
        }
        readyOrder = order
        startStates = states
        let p = QueuePositions(queues: order.count)
        positions = p
        try datapath.start(core, memory: memory, behaviour: NetDeviceBehaviour(copiesPayload: false, positions: p),
                           delivery: sharedVector ? .relayed(.sharedVectorScan) : .bypass, cpu: deviceCPU, counters: counters)
    }

    public func stopDevice() {
        datapath.stop(core)
        positions = nil
    }

    public var deviceErrors: [String] { datapath.errors }
    public var interruptHandler: InterruptHandlerCounters { datapath.handled.counters }

    public func kickVQ(_ queue: UInt16) throws(MediationError) { try core.ringKick(queue: queue) }

    public func getVQNotification(_ queue: UInt16) throws(MediationError) -> DoorbellEndpoint {
        try core.mapNotifyArea(queue: queue)
    }

    /// A vector of its own per queue (vector 0 is config), unless the queues share one.
    public func getVQIRQ(_ queue: UInt16) throws(MediationError) -> Int {
        guard !sharedVector else { throw .unsupportedOp(.getVQIRQ, parent: Self.parentName + " (queues share one vector)") }
        return try core.perQueueVector(queue)
    }

    /// The live-migration register: while a split queue runs, the last available index the
    /// device keeps there; otherwise the position the queue stopped at.
    public func getVQState(_ queue: UInt16) throws(MediationError) -> VDPAQueueState {
        guard Int(queue) < core.identity.queueCount else { throw .queueOutOfRange(queue: queue, queues: core.identity.queueCount) }
        lmRegisterReads += 1
        let (running, saved, packed) = core.withState { s in
            (s.running, s.queues[Int(queue)].state, s.machine.driverFeatures.contains(.ringPacked))
        }
        if running, let p = positions, let slot = readyOrder.firstIndex(of: queue) {
            guard !packed else { throw .queueStateWhileRunning(queue: queue) }
            var base = SplitQueueState()
            if case let .split(st)? = startStates[queue] { base = st }
            let done = UInt16(truncatingIfNeeded: p.completed(slot))
            return .split(SplitQueueState(lastAvailableIndex: base.lastAvailableIndex &+ done, usedIndex: base.usedIndex &+ done))
        }
        if let saved { return saved }
        return packed ? .packed(PackedQueueState()) : .split(SplitQueueState())
    }

    /// Written into the live-migration register before the queue runs.
    public func setVQState(_ queue: UInt16, _ state: VDPAQueueState) throws(MediationError) {
        try core.setQueueStateWhileStopped(queue, state)
        lmRegisterWrites += 1
    }

    public var modelledControlNanoseconds: Double { Double(commonConfigWrites) * 200 + Double(lmRegisterReads + lmRegisterWrites) * 900 }
}
