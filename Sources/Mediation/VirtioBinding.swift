// The `virtio` bus driver: an in-process virtio driver (our driver halves) brings the
// device up through the config ops directly, as virtio_vdpa does on bare metal, then
// drives its rings. Kicks go to the notify area when the parent passes one through, else
// through kick_vq; interrupts come back on the per-queue callback the driver installed.

import CPlatform
import Doorbell
import Glibc
import Virtqueue
import VirtioMemory

/// A queue's kick as the driver sees it: a store to the passed-through doorbell, or a
/// kick_vq call into the parent (which may trap to a worker). The doorbell's notifier is
/// held by value, one per queue on the one mapped notify area (a word's notifiers re-read
/// it before they publish, so several on one thread never store a stale sequence), so a
/// kick reaches no object; the trapped path is kept out of line.
public struct VirtioKick<Direct: DoorbellNotifier>: DoorbellNotifier {
    /// The parent, for kick_vq: a control op (it may trap to a worker), reached through the
    /// parent's plain control-plane object.
    @usableFromInline let device: any VDPAConfigOps
    @usableFromInline let queue: UInt16
    @usableFromInline var direct: Direct?
    @usableFromInline var tally = DoorbellCounters()
    public var counters: DoorbellCounters { tally }

    @inlinable
    public mutating func notify() throws(DoorbellError) {
        tally.notificationsSent &+= 1
        if direct != nil {
            try direct!.notify()
            return
        }
        try trap()
    }

    /// kick_vq through the parent: kept out of the driver loop's code.
    @usableFromInline @inline(never)
    func trap() throws(DoorbellError) {
        do throws(MediationError) {
            try device.kickVQ(queue)
        } catch {
            if case let .doorbell(e) = error { throw e }
            throw .systemCall(name: "kick_vq: \(error)", errno: EIO)
        }
    }

    public mutating func recordSuppressed() { tally.notificationsSuppressed &+= 1 }

    /// Whether kicks reach the device's doorbell directly.
    public var isPassthrough: Bool { direct != nil }
}

/// One queue a driver owns after bring-up, whichever binding brought it up: its driver
/// half, how a kick leaves it, and the interrupt it waits on.
public struct DriverQueue<Driver: VirtqueueDriverHalf, Kick: DoorbellNotifier, Call: DoorbellWaiter> {
    public let index: UInt16
    public var driver: Driver
    public var kick: Kick
    public var call: Call
    /// Device-visible (DMA) address and host pointer of each buffer.
    public let bufferAddresses: [UInt64]
    public let bufferHosts: [UnsafeMutableRawPointer]
    public let bufferSize: Int
    /// get_vq_irq answered: the interrupt can bypass the mediator.
    public let interruptBypass: Bool
}

/// A queue brought up by the `virtio` binding over doorbells of transport `B`: kicks through the parent.
public typealias VirtioQueue<Driver: VirtqueueDriverHalf, B: EndpointDoorbell> = DriverQueue<Driver, VirtioKick<B.Notifier>, B.Waiter>

/// A device bound to the virtio bus driver, with its queues set up. `B` is the transport of
/// the driver's ends: the interrupts it waits on, and the notify area when it maps one (it
/// must then be the device's kick transport).
public final class VirtioBinding<B: EndpointDoorbell>: @unchecked Sendable {
    public let device: any VDPAConfigOps
    public let bus: VDPABus
    public let features: VirtioFeatures
    public let layout: RingLayoutKind
    public private(set) var timings: [LifecycleTiming] = []
    /// Memory behind each queue (kept alive while bound).
    public let arenas: [UInt16: QueueArena]
    private var splitQueues: [UInt16: VirtioQueue<SplitDriver, B>] = [:]
    private var packedQueues: [UInt16: VirtioQueue<PackedDriver, B>] = [:]

    /// IOVA of queue `q`'s arena: queues get disjoint device-visible windows.
    public static func iovaBase(_ q: UInt16) -> UInt64 { 0x1_0000_0000 &* (UInt64(q) &+ 1) }
    /// Physical address of queue `q`'s arena in an on-chip-IOMMU parent's address space:
    /// deliberately not the IOVA, so a missed translation cannot pass unnoticed.
    public static func physicalBase(_ q: UInt16) -> UInt64 { 0x10_0000_0000 &+ 0x1_0000_0000 &* UInt64(q) }

    /// Binds `device` and brings it up: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK
    /// (re-read), address space, each queue, DRIVER_OK (virtio 1.2 §3.1.1).
    public init(device: any VDPAConfigOps, bus: VDPABus, layout: RingLayoutKind, queues: [UInt16], queueSize: Int, bufferSize: Int = 2048,
                wantedFeatures: VirtioFeatures = [.version1, .indirectDescriptors, .eventIndex, .accessPlatform],
                callBell: B.Configuration, policy: BackingPolicy = .best, probe: DoorbellProbe = .current) throws {
        let parent = type(of: device)
        self.device = device
        self.bus = bus
        self.layout = layout
        var timings: [LifecycleTiming] = []
        try timed("bind", into: &timings) { () throws(MediationError) in try bus.claim(device, driver: BusDriver.virtio.name) }
        // bring_up is the config-op sequence alone; the ring memory is allocated (and
        // zeroed) before it and timed on its own.
        var t0: UInt64 = 0
        do {
            var arenas: [UInt16: QueueArena] = [:]
            try timed("allocate_rings", into: &timings) {
                for q in queues {
                    arenas[q] = try QueueArena(kind: layout, queueSize: queueSize, bufferSize: bufferSize, policy: policy,
                                               usedAlignment: parent.vqAlignment)
                }
            }
            self.arenas = arenas
            t0 = cplatform_monotonic_ns()
            device.reset()
            try device.setStatus(.acknowledge)
            try device.setStatus([.acknowledge, .driver])
            var wanted = wantedFeatures.union(.version1)
            if layout == .packed { wanted.insert(.ringPacked) }
            let negotiated = wanted.intersection(device.getDeviceFeatures())
            // A packed ring the device does not offer is refused here, not run as split.
            if layout == .packed && !negotiated.contains(.ringPacked) {
                throw MediationError.featureNotOffered(unoffered: VirtioFeatures.ringPacked.rawValue)
            }
            try device.setDriverFeatures(negotiated)
            try device.setStatus([.acknowledge, .driver, .featuresOK])
            guard device.getStatus().contains(.featuresOK) else { throw MediationError.featuresRefused(driverFeatures: negotiated.rawValue) }
            features = negotiated

            // Address space: the driver's DMA addresses are IOVAs in per-queue windows.
            var iovaRegions: [GuestRegion] = []
            var physicalRegions: [GuestRegion] = []
            var mappings: [IOTLB.Mapping] = []
            for q in queues {
                let r = arenas[q]!.region
                iovaRegions.append(GuestRegion(gpa: Self.iovaBase(q), size: UInt64(r.size), host: r.base))
                physicalRegions.append(GuestRegion(gpa: Self.physicalBase(q), size: UInt64(r.size), host: r.base))
                mappings.append(IOTLB.Mapping(iova: Self.iovaBase(q), size: UInt64(r.size), gpa: Self.physicalBase(q)))
            }
            let iovaSpace = try GuestMemory(regions: iovaRegions)
            let physicalSpace = try GuestMemory(regions: physicalRegions)
            try timed("dma_setup", into: &timings) { () throws(MediationError) in
                switch parent.dmaModel {
                case .platformIOMMU:
                    device.core.attachPlatformIOMMU(iovaSpace)
                case .onChip:
                    device.core.attachPhysicalMemory(physicalSpace)
                    try device.setMap(mappings)
                }
            }

            // The notify area, when passed through, is mapped once; each queue's kick gets a
            // notifier on it.
            var area: DoorbellEndpoint?
            if parent.supportedOps.contains(.getVQNotification), let first = queues.first(where: device.kicksPassThrough) {
                area = try device.getVQNotification(first)
            }
            for q in queues {
                let window = try QueueWindow(arena: arenas[q]!, base: Self.iovaBase(q))
                try device.setVQNum(q, queueSize)
                try device.setVQAddress(q, window.addresses)
                let call = try B.makeEndpoint(callBell, probe: probe)
                let callW = try B.waiter(on: call)
                try device.setVQCallback(q, call)
                let bypass = (try? device.getVQIRQ(q)) != nil
                let direct: B.Notifier? = if let area, device.kicksPassThrough(queue: q) { try B.notifier(on: area) } else { nil }
                let kick = VirtioKick(device: device, queue: q, direct: direct)
                switch layout {
                case .split:
                    splitQueues[q] = try window.splitQueue(index: q, features: negotiated, kick: kick, call: callW, interruptBypass: bypass)
                case .packed:
                    packedQueues[q] = try window.packedQueue(index: q, features: negotiated, kick: kick, call: callW, interruptBypass: bypass)
                }
                try device.setVQReady(q, true)
            }
            try timed("driver_ok", into: &timings) { () throws(MediationError) in
                try device.setStatus([.acknowledge, .driver, .featuresOK, .driverOK])
            }
        } catch {
            device.reset()
            bus.release(device)
            throw error
        }
        timings.append(LifecycleTiming(operation: "bring_up", nanoseconds: cplatform_monotonic_ns() &- t0))
        self.timings = timings
    }

    /// Hands the split queue `q` to the thread that will drive it (once).
    public func takeSplitQueue(_ q: UInt16) -> VirtioQueue<SplitDriver, B>? { splitQueues.removeValue(forKey: q) }
    public func takePackedQueue(_ q: UInt16) -> VirtioQueue<PackedDriver, B>? { packedQueues.removeValue(forKey: q) }

    private var unbound = false

    /// A binding dropped without unbind() still stops the device before the ring memory it
    /// reads is freed.
    deinit { if !unbound { unbind() } }

    /// Resets the device (stopping its thread) and releases it from the bus.
    public func unbind() {
        guard !unbound else { return }
        unbound = true
        let t0 = cplatform_monotonic_ns()
        device.reset()
        bus.release(device)
        timings.append(LifecycleTiming(operation: "unbind", nanoseconds: cplatform_monotonic_ns() &- t0))
    }
}
