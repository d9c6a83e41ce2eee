// The consumer's side of the vhost binding (QEMU's vhost-vdpa front end, or a userspace
// dataplane): it owns the guest memory (memfd-backed queue arenas), brings the device up
// with vhost messages only, and then drives its rings with our driver halves. It never
// touches the parent object: everything it learns or sets goes through the binding.

import CPlatform
import Doorbell
import Virtqueue
import VirtioMemory

/// A kick as the vhost consumer sends it: a store to the mapped notify area when the
/// parent offers one, else a write to the queue's kick eventfd, whose wake-up runs kick_vq
/// on this thread before the write's notify returns. The mapped area's notifier is held by
/// value, one per queue (as the virtio binding's kick, and for the same reason).
public struct VhostKick<Mapped: DoorbellNotifier>: DoorbellNotifier {
    @usableFromInline var mapped: Mapped?
    @usableFromInline var eventfd: WakeupEventfd.Notifier?
    @usableFromInline var tally = DoorbellCounters()

    public var counters: DoorbellCounters {
        var c = tally
        if let e = eventfd { c.syscalls &+= e.counters.syscalls }
        return c
    }

    @inlinable
    public mutating func notify() throws(DoorbellError) {
        tally.notificationsSent &+= 1
        if mapped != nil {
            try mapped!.notify()
            return
        }
        try eventfd!.notify()
    }

    public mutating func recordSuppressed() { tally.notificationsSuppressed &+= 1 }

    /// Whether kicks reach the device's doorbell directly.
    public var isPassthrough: Bool { mapped != nil }
}

/// A queue brought up through the `vhost` binding.
public typealias VhostQueue<Driver: VirtqueueDriverHalf, B: EndpointDoorbell> = DriverQueue<Driver, VhostKick<B.Notifier>, B.Waiter>

/// The consumer: guest memory, bring-up by messages, then its queues. `B` is the transport
/// of its interrupts (and of the notify area, when it maps one).
public final class VhostFrontend<B: EndpointDoorbell>: @unchecked Sendable {
    /// The device's binding (a migration replaces it with the destination's).
    public internal(set) var binding: VhostBinding
    public let features: VirtioFeatures
    public let layout: RingLayoutKind
    /// The guest memory behind each queue, shared with the binding through its memfd.
    public let arenas: [UInt16: QueueArena]
    /// Bring-up as the consumer saw it: `allocate_rings`, then `bring_up` (the whole message sequence).
    public private(set) var timings: [LifecycleTiming] = []
    private var splitQueues: [UInt16: VhostQueue<SplitDriver, B>] = [:]
    private var packedQueues: [UInt16: VhostQueue<PackedDriver, B>] = [:]
    /// What a migration hands the next device as it is: the queues, their size, the memory
    /// table, each queue's kick eventfd (a writer kept here holds the fd open) and call doorbell.
    let queueIndices: [UInt16]
    let queueSize: Int
    var memoryTable: [VhostMemoryRegion] = []
    var kickWriters: [UInt16: WakeupEventfd.Notifier] = [:]
    var callEndpoints: [UInt16: DoorbellEndpoint] = [:]
    let probe: DoorbellProbe

    /// Guest address of queue `q`'s arena: queues get disjoint windows of guest memory.
    public static func guestBase(_ q: UInt16) -> UInt64 { 0x1_0000_0000 &* (UInt64(q) &+ 1) }

    /// Brings the device up as vhost-vdpa's front end does: owner, features, status,
    /// memory table, then per queue num, base, addresses, kick, call and enable, and
    /// DRIVER_OK. `mapNotifyArea` false makes every kick go through the kick eventfd even
    /// when the parent could pass its doorbell through.
    public init(binding: VhostBinding, layout: RingLayoutKind, queues: [UInt16], queueSize: Int, bufferSize: Int = 2048,
                wantedFeatures: VirtioFeatures = [.version1, .indirectDescriptors, .eventIndex, .accessPlatform],
                callBell: B.Configuration, policy: BackingPolicy = .best, probe: DoorbellProbe = .current,
                mapNotifyArea: Bool = true) throws {
        self.binding = binding
        self.queueIndices = queues
        self.queueSize = queueSize
        self.probe = probe
        // What the consumer knows of the parent: the ops it answers (vhost-vdpa's backend features).
        let supportedOps = type(of: binding.device).supportedOps
        self.layout = layout
        let alignment = type(of: binding.device).vqAlignment
        // The guest memory is allocated (and zeroed) first and timed on its own; bring_up
        // is the message sequence alone.
        var arenas: [UInt16: QueueArena] = [:]
        try timed("allocate_rings", into: &timings) {
            for q in queues {
                arenas[q] = try QueueArena(kind: layout, queueSize: queueSize, bufferSize: bufferSize, policy: policy, shareable: true,
                                           usedAlignment: alignment)
            }
        }
        self.arenas = arenas
        let t0 = cplatform_monotonic_ns()
        do {
            try binding.handle(.setOwner)
            guard case let .features(offered) = try binding.handle(.getFeatures) else { throw MediationError.deviceThread(reason: "VHOST_GET_FEATURES gave no features") }
            try binding.handle(.setStatus([]))
            try binding.handle(.setStatus(.acknowledge))
            try binding.handle(.setStatus([.acknowledge, .driver]))
            var wanted = wantedFeatures.union(.version1)
            if layout == .packed { wanted.insert(.ringPacked) }
            let negotiated = wanted.intersection(offered)
            if layout == .packed && !negotiated.contains(.ringPacked) {
                throw MediationError.featureNotOffered(unoffered: VirtioFeatures.ringPacked.rawValue)
            }
            try binding.handle(.setFeatures(negotiated))
            try binding.handle(.setStatus([.acknowledge, .driver, .featuresOK]))
            guard case let .status(s) = try binding.handle(.getStatus), s.contains(.featuresOK) else {
                throw MediationError.featuresRefused(driverFeatures: negotiated.rawValue)
            }
            features = negotiated

            var regions: [VhostMemoryRegion] = []
            for q in queues {
                let r = arenas[q]!.region
                guard let fd = r.fd else { throw MediationError.deviceThread(reason: "queue \(q)'s memory has no memfd to share") }
                regions.append(VhostMemoryRegion(guestAddress: Self.guestBase(q), size: UInt64(r.size), fd: fd))
            }
            try binding.handle(.setMemTable(regions))
            memoryTable = regions

            var area: DoorbellEndpoint?
            if mapNotifyArea, supportedOps.contains(.getVQNotification), let first = queues.first(where: binding.device.kicksPassThrough),
               case let .notification(mapped) = try binding.handle(.getVringNotification(queue: first)) {
                area = mapped
            }
            for q in queues {
                let window = try QueueWindow(arena: arenas[q]!, base: Self.guestBase(q))
                try binding.handle(.setVringNum(queue: q, size: queueSize))
                try binding.handle(.setVringBase(queue: q, window.initialState))
                try binding.handle(.setVringAddr(queue: q, window.addresses))
                let mapped: B.Notifier? = if let area, binding.device.kicksPassThrough(queue: q) { try B.notifier(on: area) } else { nil }
                var kick = VhostKick(mapped: mapped, eventfd: nil)
                if mapped == nil {
                    let n = try WakeupEventfd.make(probe: probe)
                    try binding.handle(.setVringKick(queue: q, fd: n.fd))
                    kick.eventfd = n
                    kickWriters[q] = n.anotherWriter()
                }
                let call = try B.makeEndpoint(callBell, probe: probe)
                let callW = try B.waiter(on: call)
                try binding.handle(.setVringCall(queue: q, call))
                callEndpoints[q] = call
                try binding.handle(.setVringEnable(queue: q, true))
                let bypass = supportedOps.contains(.getVQIRQ)
                switch layout {
                case .split:
                    splitQueues[q] = try window.splitQueue(index: q, features: negotiated, kick: kick, call: callW, interruptBypass: bypass)
                case .packed:
                    packedQueues[q] = try window.packedQueue(index: q, features: negotiated, kick: kick, call: callW, interruptBypass: bypass)
                }
            }
            try binding.handle(.setStatus([.acknowledge, .driver, .featuresOK, .driverOK]))
        } catch {
            _ = try? binding.handle(.resetOwner)
            throw error
        }
        timings.append(LifecycleTiming(operation: "bring_up", nanoseconds: cplatform_monotonic_ns() &- t0))
    }

    /// Hands queue `q` to the thread that will drive it (once).
    public func takeSplitQueue(_ q: UInt16) -> VhostQueue<SplitDriver, B>? { splitQueues.removeValue(forKey: q) }
    public func takePackedQueue(_ q: UInt16) -> VhostQueue<PackedDriver, B>? { packedQueues.removeValue(forKey: q) }

    /// The consumer leaves: VHOST_RESET_OWNER stops the device and the polls on its kick
    /// fds; the binding unmaps the memory table.
    public func close() {
        let t0 = cplatform_monotonic_ns()
        _ = try? binding.handle(.resetOwner)
        timings.append(LifecycleTiming(operation: "reset_owner", nanoseconds: cplatform_monotonic_ns() &- t0))
    }
}
