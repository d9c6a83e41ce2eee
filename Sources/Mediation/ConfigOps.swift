// The config-ops interface a vDPA parent implements, after Linux's `struct vdpa_config_ops`
// (include/linux/vdpa.h): queue setup, doorbells, interrupts, queue state, suspend/resume,
// features/status/identity, config space and DMA. Control path only: the datapath never
// calls through it per descriptor.

import Doorbell
import Virtqueue
import VirtioMemory

/// Every op of the interface, so a parent can declare which it implements and an
/// unsupported call can say which one it was.
public enum ConfigOp: String, CaseIterable, Sendable, Hashable {
    case setVQAddress = "set_vq_address", setVQNum = "set_vq_num", setVQReady = "set_vq_ready", getVQReady = "get_vq_ready"
    case kickVQ = "kick_vq", kickVQWithData = "kick_vq_with_data", getVQNotification = "get_vq_notification"
    case setVQCallback = "set_vq_cb", setConfigCallback = "set_config_cb", getVQIRQ = "get_vq_irq"
    case getVQState = "get_vq_state", setVQState = "set_vq_state", suspend, resume
    case getDeviceFeatures = "get_device_features", setDriverFeatures = "set_driver_features", getDriverFeatures = "get_driver_features"
    case getStatus = "get_status", setStatus = "set_status", reset
    case getDeviceID = "get_device_id", getVendorID = "get_vendor_id", getGeneration = "get_generation"
    case getConfig = "get_config", setConfig = "set_config", getVQNumMax = "get_vq_num_max"
    case setMap = "set_map", dmaMap = "dma_map", dmaUnmap = "dma_unmap"

    /// Ops every parent must implement (vdpa.h marks the rest optional).
    public static let mandatory: Set<ConfigOp> = [
        .setVQAddress, .setVQNum, .setVQReady, .getVQReady, .kickVQ, .setVQCallback, .setConfigCallback,
        .getDeviceFeatures, .setDriverFeatures, .getDriverFeatures, .getStatus, .setStatus, .reset,
        .getDeviceID, .getVendorID, .getGeneration, .getConfig, .setConfig, .getVQNumMax,
    ]
}

/// The device class a bus driver matches on (virtio device ids, §5).
public enum ClassID: UInt32, Sendable, Hashable, CustomStringConvertible, CaseIterable {
    case net = 1
    case block = 2
    public var description: String { self == .net ? "net" : "blk" }
}

/// How a parent reaches memory the driver gave it (vdpa.h's three DMA models).
public enum DMAModel: String, Sendable {
    /// No set_map / dma_map: DMA goes through the platform IOMMU the bus sets up.
    case platformIOMMU = "platform-iommu"
    /// `set_map` replaces the whole translation (on-chip IOMMU) and `dma_map` / `dma_unmap`
    /// edit it; the parent translates in software.
    case onChip = "on-chip"
}

/// A queue's device-side position (vdpa.h `struct vdpa_vq_state`).
public enum VDPAQueueState: Sendable, Equatable {
    case split(SplitQueueState)
    case packed(PackedQueueState)
}

/// A shared control op as it reaches a parent's ``VDPAConfigOps/deliver(_:)``.
public enum ControlAccess: Sendable, Equatable {
    case setVQNum(UInt16, Int)
    case setVQAddress(UInt16, RingAddresses)
    case setVQReady(UInt16, Bool)
    case setStatus(DeviceStatus)
    case setDriverFeatures(VirtioFeatures)
    case setConfig(offset: Int, bytes: [UInt8])

    /// The queue the op is about, if any.
    public var queue: UInt16? {
        switch self {
        case let .setVQNum(q, _), let .setVQAddress(q, _), let .setVQReady(q, _): q
        default: nil
        }
    }
}

/// What a parent instance is made with.
public struct ParentConfiguration: Sendable {
    /// The vDPA device's name ("vdpa0").
    public var name: String
    public var config: NetConfig
    /// The device features to offer (nil: the parent's own offer).
    public var features: VirtioFeatures?
    /// The transport of the device's kick doorbell and of the callbacks it rings.
    public var kick: DeviceDoorbell
    /// The CPU the device thread is pinned to (nil: not pinned).
    public var deviceCPU: Int32?
    public var maxQueueSize: Int
    public var probe: DoorbellProbe
    /// MSI-X vectors the platform grants the device (nil: as many as it asks for); a
    /// parent that gets fewer than one per queue plus config falls back to a shared vector.
    public var interruptVectors: Int?
    /// How interrupts leave the device, for parents that can do either (nil: the parent's default).
    public var interrupts: InterruptDelivery?
    /// Firmware commands for many queues (suspend, resume) issued in parallel rather than one by one.
    public var parallelFirmwareCommands: Bool = true
    /// How long the driver waits for a firmware command before it is a timeout.
    public var firmwareTimeoutNanoseconds: UInt64 = 1_000_000_000
    public init(name: String, config: NetConfig = NetConfig(), features: VirtioFeatures? = nil, kick: DeviceDoorbell = .eventfd,
                deviceCPU: Int32? = nil, maxQueueSize: Int = 1024, probe: DoorbellProbe = .current) {
        self.name = name
        self.config = config
        self.features = features
        self.kick = kick
        self.deviceCPU = deviceCPU
        self.maxQueueSize = maxQueueSize
        self.probe = probe
    }
}

/// What one parent instance is: identity and the limits `vdpa mgmtdev show` prints.
public struct DeviceIdentity: Sendable, Equatable {
    public var name: String
    public var classID: ClassID
    public var vendorID: UInt32
    public var queueCount: Int
    public var maxQueueSize: Int
    public init(name: String, classID: ClassID, vendorID: UInt32, queueCount: Int, maxQueueSize: Int) {
        self.name = name
        self.classID = classID
        self.vendorID = vendorID
        self.queueCount = queueCount
        self.maxQueueSize = maxQueueSize
    }
}

/// The interface a parent implements. The ops every parent shares (status, features,
/// queue setup, identity, config space) are implemented once over ``VDPADeviceCore``;
/// a parent implements its strategy: how it starts and stops its device, how a kick
/// reaches it, how interrupts leave it, how addresses are translated, and queue state.
///
/// The control plane is a plain object: doorbells cross it as ``DoorbellEndpoint``s (the
/// notify area handed out, the callbacks installed), never as typed ends, and the datapath
/// starts through one dispatch point (``VDPADeviceCore``'s device-thread start) that
/// specialises the device loop. A new parent is one file under Parents/ plus one line in
/// ``ParentRegistry``.
public protocol VDPAConfigOps: AnyObject, Sendable {
    var core: VDPADeviceCore { get }
    /// Makes a parent instance (what a management device's `dev add` or a scenario does).
    init(_ configuration: ParentConfiguration) throws(MediationError)
    /// The parent driver's name ("vp_vdpa", "vdpa_sim").
    static var parentName: String { get }
    /// The strategy in one line, for `mgmtdev show`, suites and reports.
    static var strategy: String { get }
    /// The ring layouts its devices can run (a legacy device: split only).
    static var supportedLayouts: [RingLayoutKind] { get }
    /// get_vq_align: the split used ring's alignment the device needs (4096 for legacy).
    static var vqAlignment: Int { get }
    /// Whether set_vq_state takes any valid position (what a migration's destination needs);
    /// false for parents that accept only a queue's initial state, as virtio-pci based ones.
    static var restoresQueueState: Bool { get }
    /// The parent's own way of carrying a shared control op to its device — register
    /// writes, a firmware command, a cached value — called before the core applies the op,
    /// so a refusal leaves the device as it was.
    func deliver(_ access: ControlAccess) throws(MediationError)
    /// The modelled part of the control path so far (register flight times, firmware service
    /// times; the parent's model parameters × what it did), kept apart from measured time.
    var modelledControlNanoseconds: Double { get }
    /// Whether a driver's kicks of `queue` go straight to the device through the notify area
    /// (false: they trap to kick_vq, as mlx5's software control queue's do).
    func kicksPassThrough(queue: UInt16) -> Bool
    /// The ops this parent implements; calling any other one is ``MediationError/unsupportedOp(_:parent:)``.
    static var supportedOps: Set<ConfigOp> { get }
    static var dmaModel: DMAModel { get }
    /// The device features this parent's devices offer unless told otherwise.
    static var offeredFeatures: VirtioFeatures { get }
    /// What the parent's device thread did (packets, bytes, interrupts, its system calls and CPU).
    var counters: NetDeviceCounters { get }
    /// Model parameters of this parent (what cannot be real here), for reports.
    static var modelParameters: [ModelParameter] { get }
    /// What a shadow virtqueue's relay thread did (nil: the driver's rings go to the device itself).
    var shadowRelay: ShadowRelayCounters? { get }

    /// DRIVER_OK was accepted: start the device's datapath on its own thread.
    func startDevice() throws(MediationError)
    /// Reset or removal: stop the device thread (its queue positions are kept in the core).
    func stopDevice()

    func kickVQ(_ queue: UInt16) throws(MediationError)
    func kickVQWithData(_ data: NotificationData) throws(MediationError)
    /// The doorbell the driver may ring directly (a passthrough notify area), handed out once.
    func getVQNotification(_ queue: UInt16) throws(MediationError) -> DoorbellEndpoint
    /// The interrupt vector of a queue: present when interrupt bypass is possible.
    func getVQIRQ(_ queue: UInt16) throws(MediationError) -> Int
    func getVQState(_ queue: UInt16) throws(MediationError) -> VDPAQueueState
    func setVQState(_ queue: UInt16, _ state: VDPAQueueState) throws(MediationError)
    func suspend() throws(MediationError)
    func resume() throws(MediationError)
    func setMap(_ mappings: [IOTLB.Mapping]) throws(MediationError)
    func dmaMap(_ mapping: IOTLB.Mapping) throws(MediationError)
    func dmaUnmap(iova: UInt64, size: UInt64) throws(MediationError)
    /// A platform-IOMMU parent's domain changed while its device runs (IOTLB updates from a
    /// front end with a vIOMMU, `op` being the one that changed it): a parent that can take
    /// the new domain live does; the default refuses with
    /// ``MediationError/mappingChangeWhileRunning(op:)`` and keeps the old one.
    func replacePlatformDomainWhileRunning(_ memory: GuestMemory, op: ConfigOp) throws(MediationError)
    /// VHOST_SET_LOG_BASE with VHOST_F_LOG_ALL: from now on every page the device writes into
    /// the driver's memory is marked in `log` (the front end's, which it harvests); nil stops
    /// logging. The default: this parent keeps no log (``MediationError/dirtyLogUnsupported(parent:)``).
    func setDirtyLog(_ log: DirtyLog?) throws(MediationError)
}

extension VDPAConfigOps {
    /// An instance with the configuration's fields spelled out.
    public init(name: String, config: NetConfig = NetConfig(), features: VirtioFeatures? = nil, kick: DeviceDoorbell = .eventfd,
                deviceCPU: Int32? = nil, maxQueueSize: Int = 1024) throws(MediationError) {
        try self.init(ParentConfiguration(name: name, config: config, features: features, kick: kick, deviceCPU: deviceCPU,
                                          maxQueueSize: maxQueueSize))
    }
}

// Optional ops a parent does not implement answer with a typed error naming the op.
extension VDPAConfigOps {
    public func require(_ op: ConfigOp) throws(MediationError) {
        guard Self.supportedOps.contains(op) else { throw .unsupportedOp(op, parent: Self.parentName) }
    }
    public func kickVQWithData(_ data: NotificationData) throws(MediationError) { throw .unsupportedOp(.kickVQWithData, parent: Self.parentName) }
    public func getVQNotification(_ queue: UInt16) throws(MediationError) -> DoorbellEndpoint { throw .unsupportedOp(.getVQNotification, parent: Self.parentName) }
    public static var supportedLayouts: [RingLayoutKind] { [.split, .packed] }
    public static var vqAlignment: Int { 64 }
    public static var restoresQueueState: Bool { supportedOps.contains(.setVQState) }
    public func deliver(_ access: ControlAccess) throws(MediationError) {}
    public var modelledControlNanoseconds: Double { 0 }
    public var shadowRelay: ShadowRelayCounters? { nil }
    public func kicksPassThrough(queue: UInt16) -> Bool { Self.supportedOps.contains(.getVQNotification) }
    public func getVQIRQ(_ queue: UInt16) throws(MediationError) -> Int { throw .unsupportedOp(.getVQIRQ, parent: Self.parentName) }
    public func getVQState(_ queue: UInt16) throws(MediationError) -> VDPAQueueState { throw .unsupportedOp(.getVQState, parent: Self.parentName) }
    public func setVQState(_ queue: UInt16, _ state: VDPAQueueState) throws(MediationError) { throw .unsupportedOp(.setVQState, parent: Self.parentName) }
    public func suspend() throws(MediationError) { throw .unsupportedOp(.suspend, parent: Self.parentName) }
    public func resume() throws(MediationError) { throw .unsupportedOp(.resume, parent: Self.parentName) }
    public func setMap(_ mappings: [IOTLB.Mapping]) throws(MediationError) { throw .unsupportedOp(.setMap, parent: Self.parentName) }
    public func dmaMap(_ mapping: IOTLB.Mapping) throws(MediationError) { throw .unsupportedOp(.dmaMap, parent: Self.parentName) }
    public func dmaUnmap(iova: UInt64, size: UInt64) throws(MediationError) { throw .unsupportedOp(.dmaUnmap, parent: Self.parentName) }
    public func replacePlatformDomainWhileRunning(_ memory: GuestMemory, op: ConfigOp) throws(MediationError) {
        throw .mappingChangeWhileRunning(op: op)
    }
    public func setDirtyLog(_ log: DirtyLog?) throws(MediationError) { throw .dirtyLogUnsupported(parent: Self.parentName) }
}

// The shared ops, implemented once over the core's state machine.
extension VDPAConfigOps {
    public var identity: DeviceIdentity { core.identity }
    public func getDeviceFeatures() -> VirtioFeatures { core.withState { $0.machine.deviceFeatures } }
    public func getDriverFeatures() -> VirtioFeatures { core.withState { $0.machine.driverFeatures } }
    public func setDriverFeatures(_ f: VirtioFeatures) throws(MediationError) {
        try deliver(.setDriverFeatures(f))
        try core.setDriverFeatures(f)
    }
    public func getStatus() -> DeviceStatus { core.withState { $0.machine.status } }
    public func getDeviceID() -> UInt32 { core.identity.classID.rawValue }
    public func getVendorID() -> UInt32 { core.identity.vendorID }
    public func getGeneration() -> UInt32 { core.withState { $0.configGeneration } }
    public func getVQNumMax() -> Int { core.identity.maxQueueSize }
    public func setVQAddress(_ queue: UInt16, _ addresses: RingAddresses) throws(MediationError) {
        try deliver(.setVQAddress(queue, addresses))
        try core.setVQAddress(queue, addresses)
    }
    public func setVQNum(_ queue: UInt16, _ size: Int) throws(MediationError) {
        try deliver(.setVQNum(queue, size))
        try core.setVQNum(queue, size)
    }
    public func setVQReady(_ queue: UInt16, _ ready: Bool) throws(MediationError) {
        try deliver(.setVQReady(queue, ready))
        try core.setVQReady(queue, ready)
    }
    public func getVQReady(_ queue: UInt16) throws(MediationError) -> Bool { try core.getVQReady(queue) }
    /// The used-buffer callback: the notifier the device rings when a queue has used buffers.
    public func setVQCallback(_ queue: UInt16, _ callback: DoorbellEndpoint?) throws(MediationError) {
        try core.setVQCallback(queue, callback)
    }
    public func setConfigCallback(_ callback: (@Sendable () -> Void)?) { core.withState { $0.configCallback = callback } }
    public func getConfig(offset: Int, length: Int) throws(MediationError) -> [UInt8] { try core.getConfig(offset: offset, length: length) }
    public func setConfig(offset: Int, bytes: [UInt8]) throws(MediationError) {
        try deliver(.setConfig(offset: offset, bytes: bytes))
        try core.setConfig(offset: offset, bytes: bytes)
    }

    /// set_status: runs the state machine, starts the device at DRIVER_OK, stops it on reset.
    @discardableResult
    public func setStatus(_ status: DeviceStatus) throws(MediationError) -> DeviceStatus {
        if status.isEmpty {
            reset()
            return []
        }
        try deliver(.setStatus(status))
        let (before, after) = try core.applyStatus(status)
        if !before.contains(.driverOK) && after.contains(.driverOK) {
            do {
                try startDevice()
            } catch {
                core.withState { $0.machine.deviceNeedsReset() }
                throw error
            }
        }
        return after
    }

    /// reset: stops the device and returns every queue and the status to their initial state.
    public func reset() {
        stopDevice()
        core.resetState()
    }
}

// Suspend and queue state for a parent whose positions live in the core while it is stopped
// (vdpa_sim, the shadow virtqueue): suspend stops the device thread, resume starts it again
// from where each queue left off, and the state is the core's.
extension VDPAConfigOps {
    public func suspendByStopping() throws(MediationError) {
        guard core.withState({ $0.running }) else { return }
        stopDevice()
        core.withState { $0.suspended = true }
    }

    public func resumeByRestarting() throws(MediationError) {
        guard core.withState({ $0.suspended && $0.machine.isLive }) else { return }
        core.withState { $0.suspended = false }
        try startDevice()
    }

    /// get_vq_state of a stopped queue: where it left off (its initial state if it never ran).
    public func stoppedQueueState(_ queue: UInt16) throws(MediationError) -> VDPAQueueState {
        try core.withState { (s) throws(MediationError) -> VDPAQueueState in
            guard Int(queue) < s.queues.count else { throw .queueOutOfRange(queue: queue, queues: s.queues.count) }
            guard !s.running else { throw .queueStateWhileRunning(queue: queue) }
            if let st = s.queues[Int(queue)].state { return st }
            return s.machine.driverFeatures.contains(.ringPacked) ? .packed(PackedQueueState()) : .split(SplitQueueState())
        }
    }
}

// Faults every parent can show (virtio 1.2 §2.1.2): the device stops its queues and sets
// DEVICE_NEEDS_RESET; the config-change callback tells the driver, which must reset.
extension VDPAConfigOps {
    /// Fault injection: the device fails mid-traffic. Its thread stops (every chain it had
    /// completed stays completed and published), NEEDS_RESET is set, the driver is told.
    public func injectNeedsReset(reason: String) {
        stopDevice()
        let callback = core.withState { s -> (@Sendable () -> Void)? in
            s.machine.deviceNeedsReset()
            s.lastDeviceFault = reason
            return s.configCallback
        }
        callback?()
    }

    /// The typed error a driver sees for a device that set NEEDS_RESET, or nil.
    public func needsResetError() -> MediationError? {
        core.withState { s in
            s.machine.status.contains(.needsReset)
                ? .deviceSetNeedsReset(device: core.identity.name, reason: s.lastDeviceFault ?? "the device failed")
                : nil
        }
    }
}
