// The shadow virtqueue (QEMU's SVQ, hw/virtio/vhost-shadow-virtqueue.c) as a decorator
// over any parent: the driver's rings are never given to the device. A relay thread reads
// them as their device, translates every buffer address through an IOVA tree, and writes
// shadow rings of its own that the parent's device reads; used entries come back the same
// way. This is how QEMU migrates a vDPA device that cannot report where its queues are, and
// how it intercepts a control queue. What it costs is the relay's CPU, its system calls,
// one more ring hop each way and a translation per buffer: all measured, nothing modelled.
//
// Here the relay shares the device's CPU (a two-core machine has one CPU for the driver and
// one for everything behind it). With a busy-poll doorbell the relay polls both rings with
// notifications suppressed and yields the CPU when idle; with an eventfd it sleeps on one
// eventfd that the driver's kicks and the device's interrupts both ring, as QEMU's event
// loop waits on the guest's kick fd and the device's call fd. The parent's device is always
// brought up on an eventfd kick, as vhost-vdpa's kick fds are.
//
// Every queue the driver makes ready is shadowed (data and control queues alike).

import Atomics
import CPlatform
import Doorbell
import Virtqueue
import VirtioMemory

public final class ShadowVirtqueue<Inner: VDPAConfigOps>: VDPAConfigOps, @unchecked Sendable {
    public let core: VDPADeviceCore
    /// The parent behind the shadow rings.
    public let inner: Inner
    /// What the relay thread did, over every run.
    public let relayCounters = ShadowRelayCounters()
    public let deviceCPU: Int32?
    public let waiting: ShadowRelayWaiting
    public let options: ShadowRelayOptions
    private var relay: RelayThread?
    /// The shadow rings of the running start: kept until the parent's device has stopped reading them.
    private var plan: ShadowPlan?
    /// Why a relay stopped by itself (a hostile ring, a buffer outside the IOVA tree), one entry per stop.
    public private(set) var relayErrors: [String] = []
    /// Whether the relay logs the pages it and the device write into the driver's memory
    /// (vhost's VHOST_F_LOG_ALL, as during a migration).
    public private(set) var logsDirtyPages = false
    /// The dirty log of the running start (nil while logging is off or before DRIVER_OK):
    /// covers the driver's whole address space; a migration harvests it.
    public private(set) var dirtyLog: DirtyLog?

    /// Where the shadow IOVA space starts.
    public static var shadowIOVABase: UInt64 { shadowIOVASpaceBase }
    /// The physical space behind the shadow IOVAs of an on-chip-IOMMU parent: again a
    /// different number, so a missed set_map shows.
    static var physicalOffset: UInt64 { 0x100_0000_0000 }

    public static var parentName: String { ParentRegistry.shadowedName(Inner.parentName) }
    public static var strategy: String {
        "\(Inner.parentName) behind a shadow virtqueue: a relay thread on the device CPU pops the driver's rings, translates "
            + "each buffer through an IOVA tree onto shadow rings the device reads, and copies used entries back"
    }
    /// The driver's addresses reach the relay through the platform IOMMU domain; the parent
    /// sees only shadow IOVAs, through its own DMA model.
    public static var dmaModel: DMAModel { .platformIOMMU }
    public static var supportedOps: Set<ConfigOp> {
        ConfigOp.mandatory.union([.getVQNotification, .getVQState, .setVQState, .suspend, .resume])
    }
    public static var supportedLayouts: [RingLayoutKind] { Inner.supportedLayouts }
    public static var vqAlignment: Int { 64 }
    public static var modelParameters: [ModelParameter] { Inner.modelParameters }
    /// What the relay can carry: the parent's offer without the features the relay's own
    /// ring halves do not take across (in-order completion, notification data).
    public static var offeredFeatures: VirtioFeatures {
        Inner.offeredFeatures.intersection(
            VirtioFeatures([.version1, .indirectDescriptors, .eventIndex, .ringPacked, .accessPlatform]).union(NetConfig.netFeatures))
    }

    /// The parent's device counters: packets, bytes and checksums are the device's.
    public var counters: NetDeviceCounters { inner.counters }
    public var shadowRelay: ShadowRelayCounters? { relayCounters }

    /// The doorbell of `c` is the driver's (kicks and interrupts); busy-poll and eventfd are
    /// what the relay can wait on.
    public init(_ c: ParentConfiguration) throws(MediationError) {
        switch c.kick {
        case .busyPoll: waiting = .polling
        case .eventfd: waiting = .sleeping
        default:
            throw .unsupportedDeviceDoorbell(transport: c.kick.description,
                                             supported: [DeviceDoorbell.busyPoll.description, DeviceDoorbell.eventfd.description])
        }
        options = ShadowRelayOptions(waiting: waiting)
        var innerConfiguration = c
        innerConfiguration.kick = .eventfd
        innerConfiguration.features = nil
        inner = try Inner(innerConfiguration)
        let id = inner.core.identity
        core = try VDPADeviceCore(identity: DeviceIdentity(name: c.name, classID: id.classID, vendorID: id.vendorID,
                                                           queueCount: id.queueCount, maxQueueSize: id.maxQueueSize),
                                  deviceFeatures: c.features ?? Self.offeredFeatures, config: c.config, kick: c.kick, probe: c.probe)
        deviceCPU = c.deviceCPU
    }

    deinit { stopDevice() }

    public func startDevice() throws(MediationError) {
        let guestMemory = try core.platformMemory(parent: Self.parentName)
        let (features, kick) = core.withState { ($0.machine.driverFeatures, $0.kick) }
        let ready = (0..<core.identity.queueCount).compactMap { core.readyQueue(UInt16($0)) }
        let layout: RingLayoutKind = features.contains(.ringPacked) ? .packed : .split
        do {
            let plan = try ShadowPlan(guest: guestMemory, ready: ready, layout: layout, alignment: Inner.vqAlignment)
            self.plan = plan
            let innerFeatures = try bringUpInner(plan, features: features, ready: ready, relayDoorbell: kick)
            // A log that cannot hold the driver's memory (a driver that re-mapped after a
            // reset) is replaced: marks past its span would only be counted.
            let span = guestMemory.allRegions.map { $0.gpa &+ $0.size }.max() ?? 0
            if logsDirtyPages && (dirtyLog?.span ?? 0) < span { dirtyLog = DirtyLog(covering: span) }
            relay = try RelayThread.start(self, plan: plan, ready: ready, guestMemory: guestMemory, features: features,
                                          innerFeatures: innerFeatures, kick: kick, log: logsDirtyPages ? dirtyLog : nil)
            core.withState { $0.running = true }
        } catch {
            inner.reset()
            plan = nil
            throw mediationError(error)
        }
    }

    /// The parent brought up as a driver brings up a device (virtio 1.2 §3.1.1), on the
    /// shadow rings: the driver's features as far as the parent offers them, the shadow IOVA
    /// space through the parent's DMA model, each shadowed queue, DRIVER_OK.
    private func bringUpInner(_ plan: ShadowPlan, features: VirtioFeatures, ready: [ReadyQueue],
                              relayDoorbell: DoorbellEndpoint) throws(MediationError) -> VirtioFeatures {
        inner.reset()
        inner.setConfigCallback { [weak self] in self?.innerChanged() }
        try inner.setStatus(.acknowledge)
        try inner.setStatus([.acknowledge, .driver])
        let negotiated = features.union(.accessPlatform).intersection(inner.getDeviceFeatures())
        if features.contains(.ringPacked) && !negotiated.contains(.ringPacked) {
            throw .featureNotOffered(unoffered: VirtioFeatures.ringPacked.rawValue)
        }
        try inner.setDriverFeatures(negotiated)
        try inner.setStatus([.acknowledge, .driver, .featuresOK])
        guard inner.getStatus().contains(.featuresOK) else { throw .featuresRefused(driverFeatures: negotiated.rawValue) }
        switch Inner.dmaModel {
        case .platformIOMMU:
            inner.core.attachPlatformIOMMU(try plan.deviceSpace(offset: 0))
        case .onChip:
            inner.core.attachPhysicalMemory(try plan.deviceSpace(offset: Self.physicalOffset))
            try inner.setMap(plan.regions.map { IOTLB.Mapping(iova: $0.gpa, size: $0.size, gpa: $0.gpa &+ Self.physicalOffset) })
        }
        for (i, q) in ready.enumerated() {
            try inner.setVQNum(q.index, q.size)
            try inner.setVQAddress(q.index, plan.shadows[i].window.addresses)
            // Sleeping: the parent's interrupts ring the relay's own doorbell. Polling: none.
            try inner.setVQCallback(q.index, waiting == .sleeping ? relayDoorbell : nil)
            try inner.setVQReady(q.index, true)
        }
        try inner.setStatus([.acknowledge, .driver, .featuresOK, .driverOK])
        return negotiated
    }

    /// The parent set NEEDS_RESET (a firmware timeout, an injected fault): so does this device.
    private func innerChanged() {
        guard let e = inner.needsResetError() else { return }
        let callback = core.withState { s -> (@Sendable () -> Void)? in
            s.machine.deviceNeedsReset()
            s.lastDeviceFault = "\(Inner.parentName) behind the shadow virtqueue: \(e)"
            return s.configCallback
        }
        callback?()
    }

    /// The relay stopped by itself: the device needs a reset (§2.1.2).
    fileprivate func relayFailed(_ reason: String) {
        let callback = core.withState { s -> (@Sendable () -> Void)? in
            s.machine.deviceNeedsReset()
            s.lastDeviceFault = "shadow virtqueue relay: " + reason
            return s.configCallback
        }
        callback?()
    }

    /// Stops the relay (it first hands back everything in flight, so each driver queue's
    /// position is whole), keeps the driver queues' positions, then resets the parent.
    public func stopDevice() {
        if let r = relay {
            let out = r.stop(wake: core.wakeForStop)
            if let e = out.error { relayErrors.append(e) }
            core.absorb(out)
            relay = nil
        }
        inner.reset()
        plan = nil
    }

    /// Turns dirty-page logging on or off (VHOST_SET_FEATURES with VHOST_F_LOG_ALL, then
    /// VHOST_SET_LOG_BASE). A running relay is drained and restarted with the change, as
    /// QEMU restarts the device when it switches logging on; turned on, the log starts
    /// empty (a migration copies everything once anyway) and stays on, across resets, until
    /// turned off.
    public func setDirtyLogging(_ on: Bool) throws(MediationError) {
        guard on != logsDirtyPages else { return }
        let running = core.withState { $0.running }
        if running { stopDevice() }
        logsDirtyPages = on
        if !on { dirtyLog = nil }
        if running { try startDevice() }
    }

    /// VHOST_SET_LOG_BASE: logging into the front end's `log` (it harvests it), or off with
    /// nil; a running relay is drained and restarted with the change. A log that does not
    /// cover the driver's memory is refused, and logging stays as it was.
    public func setDirtyLog(_ log: DirtyLog?) throws(MediationError) {
        if let log, let memory = core.withState({ $0.platformMemory }) {
            let span = memory.allRegions.map { $0.gpa &+ $0.size }.max() ?? 0
            guard log.span >= span else { throw .dirtyLogTooSmall(span: log.span, needs: span) }
        }
        let running = core.withState { $0.running }
        if running { stopDevice() }
        logsDirtyPages = log != nil
        dirtyLog = log
        if running { try startDevice() }
    }

    /// A front end's IOTLB update or invalidation while the relay runs (a guest with a
    /// vIOMMU re-mapping its DMA): the relay translates through the tree it built from the
    /// domain when it started, so it drains and stops, and starts again on the new domain
    /// (every chain it held completes first; nothing is lost, as when logging is switched).
    /// Addresses the new domain no longer maps are refused from the next chain on.
    public func replacePlatformDomainWhileRunning(_ memory: GuestMemory, op: ConfigOp) throws(MediationError) {
        let running = core.withState { $0.running }
        if running { stopDevice() }
        core.attachPlatformIOMMU(memory)
        if running { try startDevice() }
    }

    /// kick_vq: the relay's doorbell (when no driver mapped it as its notify area).
    public func kickVQ(_ queue: UInt16) throws(MediationError) { try core.ringKick(queue: queue) }

    /// The notify area: the relay's doorbell, mapped by the one driver that asks.
    public func getVQNotification(_ queue: UInt16) throws(MediationError) -> DoorbellEndpoint {
        try core.mapNotifyArea(queue: queue)
    }

    /// Where the driver's queue is: the relay's device half knows exactly (QEMU reads it
    /// from the shadow virtqueue, not the device): available once the relay has stopped.
    public func getVQState(_ queue: UInt16) throws(MediationError) -> VDPAQueueState { try stoppedQueueState(queue) }

    public func setVQState(_ queue: UInt16, _ state: VDPAQueueState) throws(MediationError) {
        try core.setQueueStateWhileStopped(queue, state)
    }

    /// Suspend: the relay drains and stops, the parent is reset (it need not suspend at all:
    /// the positions that matter are the relay's).
    public func suspend() throws(MediationError) { try suspendByStopping() }

    /// Resume: the parent is brought up afresh on new shadow rings, the relay continues the
    /// driver's queues from where they stopped.
    public func resume() throws(MediationError) { try resumeByRestarting() }

    public var modelledControlNanoseconds: Double { inner.modelledControlNanoseconds }
}

/// Where every shadow IOVA space starts: away from every address a driver's space here
/// uses, so an address that missed the tree cannot pass as translated.
let shadowIOVASpaceBase: UInt64 = 0x80_0000_0000

/// One shadow ring: its memory and where it sits in the shadow IOVA space.
struct ShadowRing {
    let arena: QueueArena
    let window: QueueWindow
}

/// The shadow IOVA space of one start: the driver's memory re-based region by region (the
/// IOVA tree maps each driver address to its shadow IOVA), then one shadow ring per queue.
struct ShadowPlan {
    /// Driver address → shadow IOVA (an IOTLB keyed by the driver's address).
    var tree = IOTLB()
    /// Every region of the shadow IOVA space, with its host memory.
    var regions: [GuestRegion] = []
    var shadows: [ShadowRing] = []

    init(guest: GuestMemory, ready: [ReadyQueue], layout: RingLayoutKind, alignment: Int) throws {
        let step: UInt64 = 2 << 20
        func aligned(_ n: UInt64) -> UInt64 { (n &+ step &- 1) / step &* step }
        var next = shadowIOVASpaceBase
        for r in guest.allRegions {
            try tree.map(IOTLB.Mapping(iova: r.gpa, size: r.size, gpa: next))
            regions.append(GuestRegion(gpa: next, size: r.size, host: r.host))
            next = aligned(next &+ r.size)
        }
        for q in ready {
            let arena = try QueueArena(kind: layout, queueSize: q.size, bufferSize: 64, bufferCount: 0, indirectEntries: 1,
                                       usedAlignment: alignment)
            let window = try QueueWindow(arena: arena, base: next)
            regions.append(GuestRegion(gpa: next, size: UInt64(arena.region.size), host: arena.region.base))
            shadows.append(ShadowRing(arena: arena, window: window))
            next = aligned(next &+ UInt64(arena.region.size))
        }
    }

    /// The shadow IOVA space as the parent's device reaches it, `offset` above the IOVAs.
    func deviceSpace(offset: UInt64) throws(MediationError) -> GuestMemory {
        do throws(MemoryError) {
            return try GuestMemory(regions: regions.map { GuestRegion(gpa: $0.gpa &+ offset, size: $0.size, host: $0.host) })
        } catch {
            throw .mapping(error)
        }
    }

    /// The driver half of shadow ring `i`: it sees only the ring itself.
    func shadowMemory(_ i: Int) throws(MemoryError) -> GuestMemory {
        let s = shadows[i]
        return try GuestMemory(regions: [GuestRegion(gpa: s.window.base, size: UInt64(s.arena.region.size), host: s.arena.region.base)])
    }
}

/// The running relay thread and the way to stop it.
final class RelayThread: @unchecked Sendable {
    let stopFlag = UnsafeAtomic<Bool>.create(false)
    let result = ResultBox(NetDeviceStop<GuestMemory>())
    private var thread: PinnedThread?
    private var stopped = false

    deinit { stopFlag.destroy() }

    /// Starts the relay over the ready queues: the one place the relay's doorbell transport
    /// becomes a type, so the relay below is specialised for (layout, doorbell).
    static func start<Inner: VDPAConfigOps>(_ svq: ShadowVirtqueue<Inner>, plan: ShadowPlan, ready: [ReadyQueue],
                                             guestMemory: GuestMemory, features: VirtioFeatures, innerFeatures: VirtioFeatures,
                                             kick: DoorbellEndpoint, log: DirtyLog?) throws -> RelayThread {
        let handle = RelayThread()
        // The parent's notify area, when it passes one through: the relay's kicks are stores to it.
        var area: DoorbellEndpoint?
        if Inner.supportedOps.contains(.getVQNotification), let first = ready.first(where: { svq.inner.kicksPassThrough(queue: $0.index) }) {
            area = try svq.inner.getVQNotification(first.index)
        }
        var kicks: [VirtioKick<EventfdDoorbell.Notifier>] = []
        for q in ready {
            var direct: EventfdDoorbell.Notifier?
            if let area, svq.inner.kicksPassThrough(queue: q.index) { direct = try EventfdDoorbell.notifier(on: area) }
            kicks.append(VirtioKick(device: svq.inner, queue: q.index, direct: direct))
        }
        let launch = RelayLaunch(svq: svq, plan: plan, ready: ready, guestMemory: guestMemory, features: features,
                                 innerFeatures: innerFeatures, kick: kick, kicks: kicks, handle: handle, log: log)
        try withDeviceDoorbell(kick.transport, launch)
        return handle
    }

    func attach(_ t: PinnedThread) { thread = t }

    /// Asks the relay to drain and stop, and waits for it.
    func stop(wake: () -> Void) -> NetDeviceStop<GuestMemory> {
        stopFlag.store(true, ordering: .releasing)  // pairs with the relay's acquiring load of it
        wake()
        thread?.join()
        thread = nil
        return result.value
    }
}

/// What one relay thread starts with, before its doorbell's type is known.
struct RelayLaunch<Inner: VDPAConfigOps>: DeviceDoorbellVisitor {
    let svq: ShadowVirtqueue<Inner>
    let plan: ShadowPlan
    let ready: [ReadyQueue]
    let guestMemory: GuestMemory
    let features: VirtioFeatures
    let innerFeatures: VirtioFeatures
    let kick: DoorbellEndpoint
    let kicks: [VirtioKick<EventfdDoorbell.Notifier>]
    let handle: RelayThread
    let log: DirtyLog?

    func visit<B: EndpointDoorbell>(_ bell: B.Type) throws {
        let waiter = try B.waiter(on: kick)
        let calls: [B.Notifier?] = try callNotifiers(B.self, ready, kick: kick)
        let layout: RingLayoutKind = features.contains(.ringPacked) ? .packed : .split
        let links = ready.map { ShadowLink($0, layout: layout) }
        if features.contains(.ringPacked) {
            var guests: [PackedDevice<GuestMemory>] = []
            var shadows: [PackedDriver] = []
            for (i, q) in ready.enumerated() {
                guests.append(try q.packedDevice(guestMemory, features))
                shadows.append(try PackedDriver(queue: q.index, layout: PackedLayout(queueSize: q.size), addresses: plan.shadows[i].window.addresses,
                                                memory: plan.shadowMemory(i), features: innerFeatures))
            }
            try spawn(ShadowRelayQueues(guests: guests, shadows: shadows, links: links, calls: calls, kicks: kicks), waiter)
        } else {
            var guests: [SplitDevice<GuestMemory>] = []
            var shadows: [SplitDriver] = []
            for (i, q) in ready.enumerated() {
                guests.append(try q.splitDevice(guestMemory, features))
                shadows.append(try SplitDriver(queue: q.index,
                                               layout: SplitLayout(queueSize: q.size, usedAlignment: plan.shadows[i].arena.usedAlignment),
                                               addresses: plan.shadows[i].window.addresses, memory: plan.shadowMemory(i),
                                               features: innerFeatures))
            }
            try spawn(ShadowRelayQueues(guests: guests, shadows: shadows, links: links, calls: calls, kicks: kicks), waiter)
        }
    }

    func spawn<Guest: VirtqueueDeviceHalf & VDPAQueueStateReporting, Shadow: VirtqueueDriverHalf, Call: DoorbellNotifier,
               Waiter: DoorbellWaiter>(
        _ queues: ShadowRelayQueues<Guest, Shadow, Call, VirtioKick<EventfdDoorbell.Notifier>>, _ waiter: Waiter
    ) throws {
        let start = ResultBox((queues, waiter, plan))
        let handle = handle
        let counters = svq.relayCounters
        let options = svq.options
        let cpu = svq.deviceCPU
        let name = "svq:" + svq.core.identity.name
        let log = log
        weak let owner = svq
        handle.attach(try PinnedThread(cpu: cpu, name: name) {
            var (q, wait, plan) = start.value
            let words = counters.words
            let cpu0 = cplatform_thread_cpu_time_ns()
            let syscalls0 = wait.counters.syscalls
            let kicks0 = counters.deviceKicks
            // The log outlives the relay (this closure holds it): its writer marks through plain pointers.
            let error = runShadowRelay(&q, wait: &wait, tree: &plan.tree, options: options, counters: words, stop: handle.stopFlag,
                                       log: log?.writer)
            withExtendedLifetime(log) {}
            ShadowRelayCounters.add(words, .cpuNanoseconds, cplatform_thread_cpu_time_ns() &- cpu0)
            // Each kick of the parent is an eventfd write; each interrupt the driver's doorbell's own count.
            let calls = q.calls.reduce(0) { $0 &+ ($1?.counters.syscalls ?? 0) }
            ShadowRelayCounters.add(words, .syscalls, (wait.counters.syscalls &- syscalls0) &+ calls &+ (counters.deviceKicks &- kicks0))
            var out = NetDeviceStop<GuestMemory>()
            out.error = error
            for (i, g) in q.guests.enumerated() { out.states.append((q.links[i].index, g.vdpaState)) }
            for l in q.links { l.deallocate() }
            handle.result.value = out
            // Stopped by itself (not asked to): the driver must be told.
            if let e = error, !handle.stopFlag.load(ordering: .acquiring) { owner?.relayFailed(e) }
        })
    }
}
