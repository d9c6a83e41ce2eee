// snet: SolidRun's SNET DPU. The driver caches the whole configuration (queue sizes,
// addresses, features) and writes it to the DPU as one blob when DRIVER_OK is set, then
// waits for the DPU's handshake; until then no control op reaches the device. There is no
// notify area: every kick traps to the mediator, which writes the queue's kick register;
// each queue has its own vector; suspend is a DPU message, and there is no resume.
//
// Modelled (reported, never added to measured times):
// - snet_config_handshake_ns = 100000: the DPU's time to take the blob and answer. No
//   public measurement was found; assumed (a mailbox message to DPU firmware).
// - kick_register_write_ns = 200: the relayed kick's posted MMIO write (Neugebauer et al., SIGCOMM 2018).
// - msix_interrupt_delivery_ns = 1000 (same source).

import Doorbell
import Virtqueue
import VirtioMemory

public final class SNET: VDPAConfigOps, @unchecked Sendable {
    public let core: VDPADeviceCore
    public let counters = NetDeviceCounters()
    public let deviceCPU: Int32?
    public let firmware: FirmwareChannel
    private let datapath = ParentDatapath<GuestMemory>()
    /// Control ops that only updated the driver's cache.
    public private(set) var cachedWrites = 0
    /// Kicks relayed to the kick register.
    public private(set) var kickRegisterWrites = 0
    /// The last configuration blob the DPU took (what it runs with).
    public private(set) var lastBlob: [UInt8] = []

    public static var parentName: String { "snet" }
    public static var strategy: String {
        "SolidRun DPU: configuration cached and written as one blob at DRIVER_OK with a handshake, "
            + "every kick trapped to a kick register, a vector per queue, suspend without resume"
    }
    public static var dmaModel: DMAModel { .platformIOMMU }
    /// set_vq_state accepts only a queue's initial state.
    public static var restoresQueueState: Bool { false }
    public static var supportedOps: Set<ConfigOp> { ConfigOp.mandatory.union([.getVQIRQ, .suspend, .setVQState]) }
    static let handshake = ModelParameter(name: "snet_config_handshake_ns", value: 100_000, unit: "ns",
                                          source: "assumed: no public measurement of the DPU's configuration handshake")
    public static var modelParameters: [ModelParameter] {
        [handshake,
         ModelParameter(name: "kick_register_write_ns", value: 200, unit: "ns",
                        source: "posted MMIO write flight time; Neugebauer et al., SIGCOMM 2018"),
         .msixInterruptDelivery]
    }
    public static var offeredFeatures: VirtioFeatures {
        VirtioFeatures([.version1, .indirectDescriptors, .eventIndex, .ringPacked, .accessPlatform]).union(NetConfig.netFeatures)
    }

    public init(_ c: ParentConfiguration) throws(MediationError) {
        core = try VDPADeviceCore(net: c, vendorID: 0xD063, offered: Self.offeredFeatures)
        deviceCPU = c.deviceCPU
        firmware = try FirmwareChannel(parent: Self.parentName, serviceTime: Self.handshake,
                                       timeoutNanoseconds: c.firmwareTimeoutNanoseconds, cpu: c.deviceCPU)
    }

    /// Everything is cached, except DRIVER_OK: then the whole configuration goes to the DPU
    /// as one blob and the op waits for the handshake.
    public func deliver(_ access: ControlAccess) throws(MediationError) {
        guard case let .setStatus(status) = access, status.contains(.driverOK),
              !core.withState({ $0.machine.status.contains(.driverOK) }) else {
            cachedWrites += 1
            return
        }
        let blob = configurationBlob()
        try firmware.executeAll([FirmwareCommand("SNET_WRITE_CONFIG") { .value(UInt64(blob.count)) }], failing: core)
        lastBlob = blob
    }

    /// The blob: features, then per ready queue its index, size and three ring addresses
    /// (little-endian), as the driver's cache holds them.
    func configurationBlob() -> [UInt8] {
        core.withState { s in
            var b: [UInt8] = []
            func put(_ v: UInt64, _ bytes: Int) { for i in 0..<bytes { b.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
            put(s.machine.driverFeatures.rawValue, 8)
            let ready = s.queues.enumerated().filter { $0.element.ready }
            put(UInt64(ready.count), 2)
            for (i, q) in ready {
                put(UInt64(i), 2)
                put(UInt64(q.size ?? 0), 2)
                put(q.addresses?.descriptorArea ?? 0, 8)
                put(q.addresses?.driverArea ?? 0, 8)
                put(q.addresses?.deviceArea ?? 0, 8)
            }
            return b
        }
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

    /// The trap: the kick reaches the mediator, which writes the queue's kick register.
    public func kickVQ(_ queue: UInt16) throws(MediationError) {
        try core.ringKick(queue: queue)
        kickRegisterWrites += 1
    }

    public func getVQIRQ(_ queue: UInt16) throws(MediationError) -> Int {
        try core.perQueueVector(queue)
    }

    /// A DPU message; the queues stop where they are. There is no resume: only a reset
    /// brings the device back.
    public func suspend() throws(MediationError) {
        guard core.withState({ $0.running }) else { return }
        _ = try firmware.execute(FirmwareCommand("SNET_SUSPEND"))
        datapath.stop(core)
        core.withState { $0.suspended = true }
    }

    /// Queue state goes through a mailbox the device reads at start: only the initial
    /// position is accepted (nothing to restore into a running ring).
    public func setVQState(_ queue: UInt16, _ state: VDPAQueueState) throws(MediationError) {
        guard Int(queue) < core.identity.queueCount else { throw .queueOutOfRange(queue: queue, queues: core.identity.queueCount) }
        guard state == .split(SplitQueueState()) || state == .packed(PackedQueueState()) else {
            throw .invalidQueueState(queue: queue, reason: "snet accepts only the initial state")
        }
    }

    public var modelledControlNanoseconds: Double { firmware.counters.modelledNanoseconds }
}
