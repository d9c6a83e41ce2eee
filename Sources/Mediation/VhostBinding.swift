// The `vhost` bus driver: the device is handed to a consumer on another thread (a VMM or
// a userspace dataplane), which drives it with vhost messages — features, status, the
// memory table and IOTLB updates, vring num/addr/base, kick and call descriptors — that
// this binding translates into config ops, as vhost-vdpa does for its ioctls. Each message
// runs on the consumer's thread, as an ioctl does.
//
// Ring memory is the consumer's: it hands over memfds in SET_MEM_TABLE and the binding maps
// them itself (a second mapping of the same pages). Kicks reach the device through the
// parent's notify area when it offers one (the consumer maps the doorbell, as
// VHOST_VDPA's mmap of the notify page does), else through the queue's kick eventfd, which
// no thread of ours waits on: SET_VRING_KICK puts a wake-up entry (`VhostKickPoll`) on the
// eventfd's wait queue, and the consumer's write(2) to the fd runs it inline — kick_vq in
// the writer's context, as vhost-vdpa's poll does (it has no worker: the wake-up calls
// handle_vq_kick → kick_vq directly; the eventfd's counter is never read). Calls are the
// consumer's doorbell, which the device rings itself (vhost-vdpa's callback signalling the
// call eventfd, or interrupt bypass).

import Atomics
import CPlatform
import Doorbell
import Virtqueue
import VirtioMemory

/// One region of the consumer's memory table (vhost-user's memory region): the guest
/// address range and the memfd, at an offset, behind it.
public struct VhostMemoryRegion: Sendable, Equatable {
    public var guestAddress: UInt64
    public var size: UInt64
    public var fd: Int32
    public var offset: UInt64
    public init(guestAddress: UInt64, size: UInt64, fd: Int32, offset: UInt64 = 0) {
        self.guestAddress = guestAddress
        self.size = size
        self.fd = fd
        self.offset = offset
    }
}

/// `VHOST_SET_VRING_KICK` with this fd stops polling the queue's kick fd (VHOST_FILE_UNBIND).
public let vhostFileUnbind: Int32 = -1

/// The messages a vhost consumer sends (vhost and vhost-vdpa ioctls, vhost-user requests).
/// A kick fd travels as its descriptor number (as `struct vhost_vring_file` carries it), a
/// call fd as the consumer's interrupt doorbell's endpoint (an eventfd's, as vhost has it,
/// or a shared word's).
public enum VhostMessage: Sendable {
    case setOwner
    case resetOwner
    case getFeatures
    case setFeatures(VirtioFeatures)
    case getStatus
    case setStatus(DeviceStatus)
    case getDeviceID
    case getVringNumMax
    case getConfig(offset: Int, length: Int)
    case setConfig(offset: Int, bytes: [UInt8])
    case setMemTable([VhostMemoryRegion])
    /// Device address `iova` now reaches guest address `guestAddress` (VHOST_IOTLB_UPDATE).
    case iotlbUpdate(iova: UInt64, size: UInt64, guestAddress: UInt64, access: IOTLB.Access)
    case iotlbInvalidate(iova: UInt64, size: UInt64)
    case setVringNum(queue: UInt16, size: Int)
    case setVringAddr(queue: UInt16, RingAddresses)
    case setVringBase(queue: UInt16, VDPAQueueState)
    case getVringBase(queue: UInt16)
    /// The queue's kick eventfd (made by ``WakeupEventfd``), or ``vhostFileUnbind``.
    case setVringKick(queue: UInt16, fd: Int32)
    case setVringCall(queue: UInt16, DoorbellEndpoint?)
    case setVringEnable(queue: UInt16, Bool)
    /// The notify area to map (the mmap of vhost-vdpa's notify page).
    case getVringNotification(queue: UInt16)
    case suspend
    case resume
    /// VHOST_SET_LOG_BASE (with VHOST_F_LOG_ALL): the front end's dirty log, or nil to stop logging.
    case setLogBase(DirtyLog?)

    /// The request's name as vhost spells it.
    public var name: String {
        switch self {
        case .setOwner: "VHOST_SET_OWNER"
        case .resetOwner: "VHOST_RESET_OWNER"
        case .getFeatures: "VHOST_GET_FEATURES"
        case .setFeatures: "VHOST_SET_FEATURES"
        case .getStatus: "VHOST_VDPA_GET_STATUS"
        case .setStatus: "VHOST_VDPA_SET_STATUS"
        case .getDeviceID: "VHOST_VDPA_GET_DEVICE_ID"
        case .getVringNumMax: "VHOST_VDPA_GET_VRING_NUM"
        case .getConfig: "VHOST_VDPA_GET_CONFIG"
        case .setConfig: "VHOST_VDPA_SET_CONFIG"
        case .setMemTable: "VHOST_SET_MEM_TABLE"
        case .iotlbUpdate: "VHOST_IOTLB_UPDATE"
        case .iotlbInvalidate: "VHOST_IOTLB_INVALIDATE"
        case .setVringNum: "VHOST_SET_VRING_NUM"
        case .setVringAddr: "VHOST_SET_VRING_ADDR"
        case .setVringBase: "VHOST_SET_VRING_BASE"
        case .getVringBase: "VHOST_GET_VRING_BASE"
        case .setVringKick: "VHOST_SET_VRING_KICK"
        case .setVringCall: "VHOST_SET_VRING_CALL"
        case .setVringEnable: "VHOST_VDPA_SET_VRING_ENABLE"
        case .getVringNotification: "VHOST_VDPA_GET_VRING_NOTIFICATION"
        case .suspend: "VHOST_VDPA_SUSPEND"
        case .resume: "VHOST_VDPA_RESUME"
        case .setLogBase: "VHOST_SET_LOG_BASE"
        }
    }
}

/// What a message answers.
public enum VhostReply: Sendable {
    case done
    case features(VirtioFeatures)
    case status(DeviceStatus)
    case value(UInt64)
    case bytes([UInt8])
    case vringBase(VDPAQueueState)
    case notification(DoorbellEndpoint)
}

/// vhost's poll on a kick fd, as vhost-vdpa runs it (no worker): a wait entry on the kick
/// eventfd whose wake-up calls kick_vq on the thread whose write signalled the fd, before
/// that write's notify returns. No thread of ours is involved and the fd's counter is never
/// read; a kick_vq that fails is recorded, as the writer's write(2) succeeded regardless.
final class VhostKickPoll: WakeupEventfd.WaitEntry, @unchecked Sendable {
    let device: any VDPAConfigOps
    let queue: UInt16
    let file: WakeupEventfd.File
    /// kick_vq calls this poll made.
    let delivered = ManagedAtomic<UInt64>(0)
    private let failureLock = ControlLock()
    private var failures: [String] = []

    init(device: any VDPAConfigOps, queue: UInt16, file: WakeupEventfd.File) {
        self.device = device
        self.queue = queue
        self.file = file
    }

    /// handle_vq_kick: runs on the writer's thread (several writers may run it at once).
    override func wakeup() {
        do throws(MediationError) {
            try device.kickVQ(queue)
            // relaxed: a tally; a reader after stop() is ordered by stop's wait for the
            // writers (acquire), a reader while writers run sees a recent value.
            delivered.wrappingIncrement(ordering: .relaxed)
        } catch {
            failureLock.withLock { failures.append("queue \(queue) kick fd \(file.fd): kick_vq: \(error)") }
        }
    }

    /// vhost_poll_start: on the eventfd's wait queue from now on; an fd that is already
    /// readable (kicked before anyone polled it) gets one wake-up at once, so that kick is
    /// not lost.
    func start() throws(DoorbellError) {
        try file.add(self)
        if file.isReadable { wakeup() }
    }

    /// vhost_poll_stop: off the wait queue, once no writer is still inside the wake-up.
    func stop() { file.remove(self) }

    var failed: [String] { failureLock.withLock { failures } }
}

/// A device bound to the vhost bus driver, answering one consumer's messages.
public final class VhostBinding: @unchecked Sendable {
    public let device: any VDPAConfigOps
    public let bus: VDPABus
    private let lock = ControlLock()
    private var owned = false
    private var peers: [PeerMapping] = []
    /// The guest address space as this side maps it (nil before SET_MEM_TABLE).
    private var guestSpace: GuestMemory?
    /// Platform-IOMMU parents: IOTLB entries beyond the identity map of the memory table.
    private var platformDomain: [GuestRegion] = []
    /// The poll on each queue's kick fd.
    private var kickPolls: [UInt16: VhostKickPoll] = [:]
    /// What polls that have stopped delivered, and why any kick_vq of theirs failed.
    private var stoppedPollKicks: UInt64 = 0
    private var stoppedPollFailures: [String] = []
    private var timingLog: [LifecycleTiming] = []

    /// Where an on-chip parent's "physical" addresses of guest memory start: deliberately
    /// not the guest address, so a missed translation cannot pass unnoticed.
    public static var physicalOffset: UInt64 { 0x100_0000_0000 }

    /// Whether SET_MEM_TABLE pins every page of the consumer's memory (mlock), as vhost-vdpa
    /// pins guest memory before a device may DMA into it (its IOTLB or IOMMU map of pinned
    /// pages); false maps without pinning, as for a parent that works on virtual addresses
    /// (vdpa_sim's use_va, VDUSE).
    public let pinsGuestMemory: Bool

    /// Claims `device` for the vhost bus driver (its class must match).
    public init(device: any VDPAConfigOps, bus: VDPABus, pinsGuestMemory: Bool = false) throws(MediationError) {
        self.device = device
        self.bus = bus
        self.pinsGuestMemory = pinsGuestMemory
        try timed("bind", into: &timingLog) { () throws(MediationError) in try bus.claim(device, driver: BusDriver.vhost.name) }
    }

    /// Every handled message's time, in order (`bind` and `unbind` too).
    public var timings: [LifecycleTiming] { lock.withLock { timingLog } }

    /// kick_vq calls made by kick fds' wake-ups (each on the thread whose write signalled the
    /// fd), over the binding's life and every queue; none when kicks go to a mapped notify area.
    public var kicksThroughKickFd: UInt64 {
        lock.withLock {
            var sum = stoppedPollKicks
            // relaxed: pairs with nothing; a live poll's tally may be a write or two behind.
            for p in kickPolls.values { sum &+= p.delivered.load(ordering: .relaxed) }
            return sum
        }
    }

    /// Why a kick_vq run by a kick fd's wake-up failed, if one did.
    public var kickFdFailures: [String] {
        lock.withLock { stoppedPollFailures + kickPolls.values.flatMap(\.failed) }
    }

    /// Handles one message on the caller's thread; a wrong one is a typed error and leaves
    /// the device as it was.
    @discardableResult
    public func handle(_ message: VhostMessage) throws(MediationError) -> VhostReply {
        try lock.withLock { () throws(MediationError) -> VhostReply in
            let t0 = cplatform_monotonic_ns()
            let reply = try dispatch(message)
            timingLog.append(LifecycleTiming(operation: message.name, nanoseconds: cplatform_monotonic_ns() &- t0))
            return reply
        }
    }

    private func dispatch(_ message: VhostMessage) throws(MediationError) -> VhostReply {
        if case .setOwner = message {
            guard !owned else { throw .vhostMessageOutOfOrder(message: message.name, requires: "no owner (the device already has one)") }
            owned = true
            return .done
        }
        guard owned else { throw .vhostMessageOutOfOrder(message: message.name, requires: "VHOST_SET_OWNER") }
        switch message {
        case .setOwner:
            return .done
        case .resetOwner:
            resetOwner()
            return .done
        case .getFeatures:
            return .features(device.getDeviceFeatures())
        case let .setFeatures(f):
            try device.setDriverFeatures(f)
            return .done
        case .getStatus:
            return .status(device.getStatus())
        case let .setStatus(status):
            if status.contains(.driverOK) && !device.getStatus().contains(.driverOK) && guestSpace == nil {
                throw .vhostMessageOutOfOrder(message: "\(message.name)(DRIVER_OK)", requires: "VHOST_SET_MEM_TABLE")
            }
            return .status(try device.setStatus(status))
        case .getDeviceID:
            return .value(UInt64(device.getDeviceID()))
        case .getVringNumMax:
            return .value(UInt64(device.getVQNumMax()))
        case let .getConfig(offset, length):
            return .bytes(try device.getConfig(offset: offset, length: length))
        case let .setConfig(offset, bytes):
            try device.setConfig(offset: offset, bytes: bytes)
            return .done
        case let .setMemTable(regions):
            try setMemTable(regions)
            return .done
        case let .iotlbUpdate(iova, size, guestAddress, access):
            try iotlbUpdate(iova: iova, size: size, guestAddress: guestAddress, access: access)
            return .done
        case let .iotlbInvalidate(iova, size):
            try iotlbInvalidate(iova: iova, size: size)
            return .done
        case let .setVringNum(queue, size):
            try device.setVQNum(queue, size)
            return .done
        case let .setVringAddr(queue, addresses):
            try checkRingMapped(queue, addresses, message: message.name)
            try device.setVQAddress(queue, addresses)
            return .done
        case let .setVringBase(queue, state):
            try device.setVQState(queue, state)
            return .done
        case let .getVringBase(queue):
            return .vringBase(try device.getVQState(queue))
        case let .setVringKick(queue, fd):
            guard Int(queue) < device.identity.queueCount else {
                throw .queueOutOfRange(queue: queue, queues: device.identity.queueCount)
            }
            try setVringKick(queue, fd)
            return .done
        case let .setVringCall(queue, notifier):
            try device.setVQCallback(queue, notifier)
            return .done
        case let .setVringEnable(queue, enable):
            try device.setVQReady(queue, enable)
            return .done
        case let .getVringNotification(queue):
            return .notification(try device.getVQNotification(queue))
        case .suspend:
            try device.suspend()
            return .done
        case .resume:
            try device.resume()
            return .done
        case let .setLogBase(log):
            try device.setDirtyLog(log)
            return .done
        }
    }

    /// Maps every region's memfd on this side and gives the parent its address space:
    /// the platform IOMMU domain (device address = guest address) or, for an on-chip
    /// IOMMU, a physical space and set_map of guest → physical.
    private func setMemTable(_ regions: [VhostMemoryRegion]) throws(MediationError) {
        guard !device.core.withState({ $0.running }) else { throw .mappingChangeWhileRunning(op: .setMap) }
        guard !regions.isEmpty else {
            throw .vhostMessageOutOfOrder(message: "VHOST_SET_MEM_TABLE with no region", requires: "at least one region")
        }
        var mapped: [PeerMapping] = []
        var guest: [GuestRegion] = []
        var physical: [GuestRegion] = []
        var mappings: [IOTLB.Mapping] = []
        let spaces: (guest: GuestMemory, physical: GuestMemory)
        do throws(MemoryError) {
            for r in regions {
                guard r.size > 0, r.size <= UInt64(Int.max), r.offset <= UInt64(Int.max) else {
                    throw .invalidRegionSize(bytes: Int(truncatingIfNeeded: r.size))
                }
                guard r.guestAddress <= UInt64.max - Self.physicalOffset - r.size else {
                    throw .addressOverflow(gpa: r.guestAddress, length: r.size)
                }
                let m = try PeerMapping(fd: r.fd, offset: Int(r.offset), size: Int(r.size), pinned: pinsGuestMemory)
                mapped.append(m)
                let physicalAddress = r.guestAddress &+ Self.physicalOffset
                guest.append(GuestRegion(gpa: r.guestAddress, size: r.size, host: m.base))
                physical.append(GuestRegion(gpa: physicalAddress, size: r.size, host: m.base))
                mappings.append(IOTLB.Mapping(iova: r.guestAddress, size: r.size, gpa: physicalAddress))
            }
            spaces = (try GuestMemory(regions: guest), try GuestMemory(regions: physical))
        } catch {
            throw .mapping(error)
        }
        switch type(of: device).dmaModel {
        case .platformIOMMU:
            device.core.attachPlatformIOMMU(spaces.guest)
        case .onChip:
            try device.setMap(mappings)
            device.core.attachPhysicalMemory(spaces.physical)
        }
        guestSpace = spaces.guest
        peers = mapped
        platformDomain = []
    }

    /// VHOST_IOTLB_UPDATE: on-chip parents get dma_map (device address → the physical
    /// address of the guest range); platform-IOMMU parents get their domain extended.
    private func iotlbUpdate(iova: UInt64, size: UInt64, guestAddress: UInt64, access: IOTLB.Access) throws(MediationError) {
        guard let space = guestSpace else { throw .vhostMessageOutOfOrder(message: "VHOST_IOTLB_UPDATE", requires: "VHOST_SET_MEM_TABLE") }
        let host: UnsafeMutableRawPointer
        do throws(MemoryError) {
            host = try space.translate(guestAddress, length: size)
        } catch {
            throw .vhostAddressUnmapped(address: guestAddress, length: size)
        }
        switch type(of: device).dmaModel {
        case .onChip:
            try device.dmaMap(IOTLB.Mapping(iova: iova, size: size, gpa: guestAddress &+ Self.physicalOffset, access: access))
        case .platformIOMMU:
            let domain = platformDomain + [GuestRegion(gpa: iova, size: size, host: host)]
            try attachPlatformDomain(space, domain, op: .dmaMap)
            platformDomain = domain
        }
    }

    /// VHOST_IOTLB_INVALIDATE: dma_unmap, or the entry removed from the platform domain.
    private func iotlbInvalidate(iova: UInt64, size: UInt64) throws(MediationError) {
        guard let space = guestSpace else { throw .vhostMessageOutOfOrder(message: "VHOST_IOTLB_INVALIDATE", requires: "VHOST_SET_MEM_TABLE") }
        switch type(of: device).dmaModel {
        case .onChip:
            try device.dmaUnmap(iova: iova, size: size)
        case .platformIOMMU:
            guard let i = platformDomain.firstIndex(where: { $0.gpa == iova && $0.size == size }) else {
                throw .mapping(.unmapOfUnmappedRange(iova: iova, size: size))
            }
            var domain = platformDomain
            domain.remove(at: i)
            try attachPlatformDomain(space, domain, op: .dmaUnmap)
            platformDomain = domain
        }
    }

    /// The platform IOMMU domain: the memory table's identity map plus the IOTLB entries.
    /// While the device runs, the parent takes it live or refuses (keeping the old one).
    private func attachPlatformDomain(_ space: GuestMemory, _ domain: [GuestRegion], op: ConfigOp) throws(MediationError) {
        let memory: GuestMemory
        do throws(MemoryError) { memory = try GuestMemory(regions: space.allRegions + domain) } catch { throw .mapping(error) }
        if device.core.withState({ $0.running }) {
            try device.replacePlatformDomainWhileRunning(memory, op: op)
        } else {
            device.core.attachPlatformIOMMU(memory)
        }
    }

    /// SET_VRING_ADDR: every ring area must lie in the memory table (vhost-user refuses an
    /// unmapped ring here rather than at DRIVER_OK).
    private func checkRingMapped(_ queue: UInt16, _ a: RingAddresses, message: String) throws(MediationError) {
        guard let space = guestSpace else { throw .vhostMessageOutOfOrder(message: message, requires: "VHOST_SET_MEM_TABLE") }
        let size: Int? = device.core.withState { s in Int(queue) < s.queues.count ? s.queues[Int(queue)].size : nil }
        var areas: [(address: UInt64, bytes: Int)] = [(a.descriptorArea, 1), (a.driverArea, 1), (a.deviceArea, 1)]
        if let n = size {
            if device.getDriverFeatures().contains(.ringPacked), let l = try? PackedLayout(queueSize: n) {
                areas = [(a.descriptorArea, l.descriptorRingSize), (a.driverArea, PackedLayout.eventSuppressionSize),
                         (a.deviceArea, PackedLayout.eventSuppressionSize)]
            } else if let l = try? SplitLayout(queueSize: n) {
                areas = [(a.descriptorArea, l.descriptorTableSize), (a.driverArea, l.availableRingSize),
                         (a.deviceArea, l.usedRingSize)]
            }
        }
        for area in areas {
            do throws(MemoryError) {
                _ = try space.translate(area.address, length: UInt64(area.bytes))
            } catch {
                throw .vhostAddressUnmapped(address: area.address, length: UInt64(area.bytes))
            }
        }
    }

    /// VHOST_SET_VRING_KICK: the new fd is looked up first (a closed or wrong one is a typed
    /// error and the queue keeps its poll); the same fd again changes nothing; else the new
    /// fd is polled and the old one no longer is.
    private func setVringKick(_ queue: UInt16, _ fd: Int32) throws(MediationError) {
        var file: WakeupEventfd.File?
        if fd != vhostFileUnbind {
            do throws(DoorbellError) { file = try WakeupEventfd.fget(fd) } catch { throw .kickFdRejected(queue: queue, fd: fd, error) }
        }
        if let f = file, let current = kickPolls[queue], current.file.isSame(as: f) { return }
        var poll: VhostKickPoll?
        if let f = file {
            let p = VhostKickPoll(device: device, queue: queue, file: f)
            do throws(DoorbellError) { try p.start() } catch { throw .kickFdRejected(queue: queue, fd: fd, error) }
            poll = p
        }
        if let old = kickPolls.removeValue(forKey: queue) { retire(old) }
        kickPolls[queue] = poll
    }

    /// Stops a poll and keeps what it delivered.
    private func retire(_ poll: VhostKickPoll) {
        poll.stop()
        // relaxed is enough: stop()'s acquire wait for the writers ordered their increments before it.
        stoppedPollKicks &+= poll.delivered.load(ordering: .relaxed)
        stoppedPollFailures += poll.failed
    }

    private func resetOwner() {
        for p in kickPolls.values { retire(p) }
        kickPolls = [:]
        device.reset()
        peers = []
        guestSpace = nil
        platformDomain = []
        owned = false
    }

    /// Stops polling the kick fds, resets the device, unmaps the consumer's memory and
    /// releases the device from the bus (the consumer has gone).
    private var unbound = false

    /// A binding dropped without unbind() still stops the device before the consumer's
    /// memory it mapped is unmapped.
    deinit { unbind() }

    public func unbind() {
        lock.withLock {
            guard !unbound else { return }
            unbound = true
            let t0 = cplatform_monotonic_ns()
            resetOwner()
            bus.release(device)
            timingLog.append(LifecycleTiming(operation: "unbind", nanoseconds: cplatform_monotonic_ns() &- t0))
        }
    }
}
