// The state every parent keeps the same way: status machine, per-queue configuration,
// config space, address space, the device's doorbell ends. Guarded by one lock: control
// ops come from the binding's thread, the datapath never takes it per descriptor.

import Doorbell
import Glibc
import Virtqueue
import VirtioMemory

/// A pthread mutex: the control path's lock (Linux parents hold a spinlock or mutex here too).
public final class ControlLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    public init() { pthread_mutex_init(mutex, nil) }
    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }
    @inline(__always)
    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// virtio-net config space (virtio 1.2 §5.1.4): mac, status, max_virtqueue_pairs, mtu.
public struct NetConfig: Sendable, Equatable {
    public var mac: [UInt8]
    public var mtu: UInt16
    public var maxQueuePairs: UInt16
    public init(mac: [UInt8] = [0x02, 0, 0, 0, 0, 1], mtu: UInt16 = 1500, maxQueuePairs: UInt16 = 1) {
        self.mac = mac
        self.mtu = mtu
        self.maxQueuePairs = maxQueuePairs
    }
    /// VIRTIO_NET_S_LINK_UP
    static let linkUp: UInt16 = 1
    public var bytes: [UInt8] {
        var b = Array(mac.prefix(6)) + Array(repeating: 0, count: max(0, 6 - mac.count))
        for v in [Self.linkUp, maxQueuePairs, mtu] { b += [UInt8(v & 0xFF), UInt8(v >> 8)] }
        return b
    }
    /// virtio-net feature bits the config carries: VIRTIO_NET_F_MTU (3), _MAC (5), _STATUS (16), _MQ (22).
    public static let netFeatures = VirtioFeatures(rawValue: 1 << 3 | 1 << 5 | 1 << 16 | 1 << 22)
}

/// One queue as the driver configured it.
public struct QueueConfig: Sendable {
    public var size: Int?
    public var addresses: RingAddresses?
    public var ready = false
    /// The used-buffer callback: the doorbell the device rings when the queue has used
    /// buffers (the device thread makes its ringing end from it while it runs).
    public var callback: DoorbellEndpoint?
    /// The position to start from (set_vq_state, or where a stopped device left off).
    public var state: VDPAQueueState?
}

/// The mutable part of a device, behind the core's lock.
public struct DeviceState: @unchecked Sendable {
    public var machine: StatusMachine
    public var queues: [QueueConfig]
    public var configSpace: [UInt8]
    public var configGeneration: UInt32 = 0
    public var configCallback: (@Sendable () -> Void)?
    /// Platform IOMMU domain: the addresses the driver uses, as the platform translates them.
    public var platformMemory: GuestMemory?
    /// On-chip translation (set_map / dma_map): IOVA → the physical space in `physicalMemory`.
    public var iotlb = IOTLB()
    public var physicalMemory: GuestMemory?
    /// The device's own doorbell, which its thread sleeps on; the control path rings it
    /// (kick_vq, a prompt stop) unless a driver mapped it as the notify area, after which
    /// the driver is its one ringer.
    public let kick: DoorbellEndpoint
    public var notifyAreaMapped = false
    public var running = false
    public var suspended = false
    /// The bus driver the device is bound to, if any.
    public var binding: String?
    /// Why the device last set NEEDS_RESET (a firmware timeout, an injected fault).
    public var lastDeviceFault: String?
}

/// Shared state and ops of one parent instance.
public final class VDPADeviceCore: @unchecked Sendable {
    public let identity: DeviceIdentity
    public let lock = ControlLock()
    private var state: DeviceState

    /// A device whose kicks arrive on a new doorbell of transport `kick`.
    public init(identity: DeviceIdentity, deviceFeatures: VirtioFeatures, config: NetConfig,
                kick: DeviceDoorbell, probe: DoorbellProbe = .current) throws(MediationError) {
        self.identity = identity
        state = DeviceState(machine: StatusMachine(deviceFeatures: deviceFeatures),
                            queues: Array(repeating: QueueConfig(), count: identity.queueCount),
                            configSpace: config.bytes, kick: try kick.makeEndpoint(probe: probe))
    }

    /// A virtio-net device as a parent makes one from its configuration: two queues per
    /// queue pair, the configuration's features or the parent's offer.
    /// `controlQueue`: one more queue after the data queues, the control virtqueue.
    public convenience init(net c: ParentConfiguration, vendorID: UInt32, offered: VirtioFeatures,
                            maxQueueSize: Int? = nil, controlQueue: Bool = false) throws(MediationError) {
        let queues = 2 * Int(max(c.config.maxQueuePairs, 1)) + (controlQueue ? 1 : 0)
        try self.init(identity: DeviceIdentity(name: c.name, classID: .net, vendorID: vendorID, queueCount: queues,
                                               maxQueueSize: maxQueueSize ?? c.maxQueueSize),
                      deviceFeatures: c.features ?? offered, config: c.config, kick: c.kick, probe: c.probe)
    }

    /// get_vq_irq of a device with one MSI-X vector per queue (vector 0 is config changes).
    public func perQueueVector(_ queue: UInt16) throws(MediationError) -> Int {
        guard Int(queue) < identity.queueCount else { throw .queueOutOfRange(queue: queue, queues: identity.queueCount) }
        return Int(queue) + 1
    }

    public func withState<T, E: Error>(_ body: (inout DeviceState) throws(E) -> T) throws(E) -> T {
        try lock.withLock { () throws(E) -> T in try body(&state) }
    }

    func checkQueue(_ q: UInt16, _ s: DeviceState) throws(MediationError) {
        guard Int(q) < s.queues.count else { throw .queueOutOfRange(queue: q, queues: s.queues.count) }
    }

    func setDriverFeatures(_ f: VirtioFeatures) throws(MediationError) {
        try withState { (s) throws(MediationError) in try s.machine.setDriverFeatures(f) }
    }

    func applyStatus(_ status: DeviceStatus) throws(MediationError) -> (DeviceStatus, DeviceStatus) {
        try withState { (s) throws(MediationError) -> (DeviceStatus, DeviceStatus) in
            let before = s.machine.status
            if status.contains(.driverOK) && !before.contains(.driverOK) {
                // §3.1.1 step 8 happens only with every ready queue fully described.
                for (i, q) in s.queues.enumerated() where q.ready && (q.size == nil || q.addresses == nil) {
                    throw .queueNotConfigured(queue: UInt16(i), missing: q.size == nil ? "size" : "addresses")
                }
            }
            let after = try s.machine.setStatus(status)
            return (before, after)
        }
    }

    func setVQAddress(_ q: UInt16, _ a: RingAddresses) throws(MediationError) {
        try withState { (s) throws(MediationError) in
            try checkQueue(q, s)
            try s.machine.checkQueueSetup(queue: q, op: .setVQAddress)
            s.queues[Int(q)].addresses = a
        }
    }

    func setVQNum(_ q: UInt16, _ size: Int) throws(MediationError) {
        try withState { (s) throws(MediationError) in
            try checkQueue(q, s)
            try s.machine.checkQueueSetup(queue: q, op: .setVQNum)
            let packed = s.machine.driverFeatures.contains(.ringPacked)
            guard size >= 1, size <= identity.maxQueueSize, packed || size & (size - 1) == 0 else {
                throw .invalidQueueSize(queue: q, size: size, max: identity.maxQueueSize)
            }
            s.queues[Int(q)].size = size
        }
    }

    func setVQReady(_ q: UInt16, _ ready: Bool) throws(MediationError) {
        try withState { (s) throws(MediationError) in
            try checkQueue(q, s)
            try s.machine.checkQueueSetup(queue: q, op: .setVQReady)
            if ready {
                if s.queues[Int(q)].size == nil { throw .queueNotConfigured(queue: q, missing: "size") }
                if s.queues[Int(q)].addresses == nil { throw .queueNotConfigured(queue: q, missing: "addresses") }
            }
            s.queues[Int(q)].ready = ready
        }
    }

    func getVQReady(_ q: UInt16) throws(MediationError) -> Bool {
        try withState { (s) throws(MediationError) -> Bool in
            try checkQueue(q, s)
            return s.queues[Int(q)].ready
        }
    }

    func setVQCallback(_ q: UInt16, _ cb: DoorbellEndpoint?) throws(MediationError) {
        try withState { (s) throws(MediationError) in
            try checkQueue(q, s)
            if s.running { throw .queueSetupAfterDriverOK(queue: q, op: .setVQCallback) }
            s.queues[Int(q)].callback = cb
        }
    }

    func getConfig(offset: Int, length: Int) throws(MediationError) -> [UInt8] {
        try withState { (s) throws(MediationError) -> [UInt8] in
            guard offset >= 0, length >= 0, offset + length <= s.configSpace.count else {
                throw .configSpaceOutOfRange(offset: offset, length: length, size: s.configSpace.count)
            }
            return Array(s.configSpace[offset..<offset + length])
        }
    }

    func setConfig(offset: Int, bytes: [UInt8]) throws(MediationError) {
        let callback = try withState { (s) throws(MediationError) -> (@Sendable () -> Void)? in
            guard offset >= 0, offset + bytes.count <= s.configSpace.count else {
                throw .configSpaceOutOfRange(offset: offset, length: bytes.count, size: s.configSpace.count)
            }
            s.configSpace.replaceSubrange(offset..<offset + bytes.count, with: bytes)
            s.configGeneration &+= 1
            return s.configCallback
        }
        callback?()
    }

    /// Back to the state after creation; the device thread must already be stopped.
    func resetState() {
        withState { s in
            s.machine.reset()
            for i in s.queues.indices {
                let cb = s.queues[i].callback
                s.queues[i] = QueueConfig()
                s.queues[i].callback = cb
            }
            s.suspended = false
            s.lastDeviceFault = nil
            // The driver that mapped the notify area has reset the device: the next one maps it anew.
            s.notifyAreaMapped = false
        }
    }

    /// set_vq_state for a stopped queue: the state must match the negotiated layout and fit
    /// the queue; the device thread starts from it.
    public func setQueueStateWhileStopped(_ queue: UInt16, _ state: VDPAQueueState) throws(MediationError) {
        try withState { (s) throws(MediationError) in
            guard Int(queue) < s.queues.count else { throw .queueOutOfRange(queue: queue, queues: s.queues.count) }
            guard !s.running else { throw .queueStateWhileRunning(queue: queue) }
            let packed = s.machine.driverFeatures.contains(.ringPacked)
            let size = s.queues[Int(queue)].size ?? identity.maxQueueSize
            do throws(VirtqueueError) {
                switch state {
                case let .split(st) where !packed: try st.validate(queue: queue, queueSize: size)
                case let .packed(st) where packed: try st.validate(queue: queue, queueSize: size)
                default: throw VirtqueueError.invalidQueueState(queue: queue, reason: "state layout does not match the negotiated ring")
                }
            } catch {
                throw .invalidQueueState(queue: queue, reason: "\(error)")
            }
            s.queues[Int(queue)].state = state
        }
    }

    /// The memory a device half reaches the driver's addresses through when DMA goes via
    /// the platform IOMMU (vp_vdpa): attached by the bus driver, as vhost-vdpa or the DMA
    /// API program the IOMMU domain.
    public func attachPlatformIOMMU(_ memory: GuestMemory) {
        withState { $0.platformMemory = memory }
    }

    /// The platform IOMMU domain a starting device reaches memory through, or the error that
    /// the bus driver never attached one.
    public func platformMemory(parent: String) throws(MediationError) -> GuestMemory {
        guard let memory = withState({ $0.platformMemory }) else { throw .noAddressSpace(parent: parent) }
        return memory
    }

    /// The physical space IOTLB entries point into (the simulator's "host memory").
    public func attachPhysicalMemory(_ memory: GuestMemory) {
        withState { $0.physicalMemory = memory }
    }
}
