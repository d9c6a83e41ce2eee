// A vhost-user back end (the device side) serving a virtio-net device on a front end's
// rings — transmit chains consumed, receive buffers filled with numbered frames: the front end (QEMU, DPDK's virtio-user, our own) connects over
// a Unix socket, negotiates features, hands over its memory (memfds, mapped here with
// PeerMapping), its rings' addresses and the kick and call eventfds; the back end runs the
// device loop (`runDeviceLoop`, the same one every parent's device thread runs) over the
// rings on a thread of its own, sleeping on every ring's kick eventfd at once and ringing a
// ring's call eventfd when the driver asks for an interrupt.
//
// Every message is checked against the state it needs (QEMU's vhost-user.rst): a request
// out of order, features not offered, a ring size or address that no region covers, a
// memory table replaced under running rings — each a typed `VhostUserError`, after which
// `serve` stops the rings and returns the error, and the caller closes the connection.

import Atomics
import CPlatform
#if canImport(Glibc)
import Glibc
#endif
import Doorbell
import VhostUser
import Virtqueue
import VirtioMemory

/// What a back end offers and how it runs its rings.
public struct VhostUserBackendOptions: Sendable {
    /// Virtio features offered (VHOST_USER_F_PROTOCOL_FEATURES is added).
    public var features: VirtioFeatures
    /// Protocol features offered.
    public var protocolFeatures: UInt64
    /// Queue pairs (GET_QUEUE_NUM).
    public var queuePairs: Int
    /// Chains per device-loop burst.
    public var batch: Int
    /// CPU for the device thread (nil: unpinned).
    public var cpu: Int32?

    public init(features: VirtioFeatures = [.version1, .ringPacked, .inOrder, .eventIndex],
                protocolFeatures: UInt64 = VhostUserProtocolFeatures.replyAck | VhostUserProtocolFeatures.multiQueue,
                queuePairs: Int = 1, batch: Int = 32, cpu: Int32? = nil) {
        self.features = features
        self.protocolFeatures = protocolFeatures
        self.queuePairs = queuePairs
        self.batch = batch
        self.cpu = cpu
    }
}

/// What the back end's device thread served, readable from any thread.
public final class VhostUserBackendCounters: @unchecked Sendable {
    static let count = 8
    let words = UnsafeMutablePointer<UInt64.AtomicRepresentation>.allocate(capacity: count)
    init() { for i in 0..<Self.count { (words + i).initialize(to: .init(0)) } }
    deinit { words.deallocate() }
    @inline(__always) func add(_ i: Int, _ v: UInt64) {
        // relaxed: a tally; one writer (the device thread) at a time.
        _ = UInt64.AtomicRepresentation.atomicLoadThenWrappingIncrement(by: v, at: words + i, ordering: .relaxed)
    }
    @inline(__always) func load(_ i: Int) -> UInt64 { UInt64.AtomicRepresentation.atomicLoad(at: words + i, ordering: .relaxed) }
    /// Chains consumed from transmit queues.
    public var transmitted: UInt64 { load(0) }
    /// Bytes in them (the virtio-net header included).
    public var transmitBytes: UInt64 { load(1) }
    /// Interrupts sent (call eventfd writes).
    public var interrupts: UInt64 { load(2) }
    /// Wake-ups from a kick.
    public var wakeups: UInt64 { load(3) }
    /// Receive buffers filled with a frame (published to the driver).
    public var received: UInt64 { load(4) }
    /// Bytes written into them (the virtio-net header included).
    public var receiveBytes: UInt64 { load(5) }
    /// Transmitted frames that are one of our receive frames sent back (a forwarding front
    /// end), every byte as written.
    public var echoedIntact: UInt64 { load(6) }
    /// Transmitted frames marked as ours whose bytes were not as written.
    public var echoedCorrupt: UInt64 { load(7) }
}

/// The receive frames the back end writes: a virtio-net header (§5.1.6: no offloads,
/// num_buffers 1), then an Ethernet frame of EtherType 0x88B5 (IEEE local experimental)
/// carrying the frame's sequence number and a byte pattern derived from it, so a frame
/// that comes back on a transmit queue can be recognised and checked byte for byte.
public enum VhostUserFrames {
    /// The virtio-net header with VERSION_1 (num_buffers present).
    public static let headerBytes = 12
    public static let frameBytes = 64
    public static let etherType: UInt16 = 0x88B5
    /// Byte `i` of frame `sequence` (after the 14-byte Ethernet header and the 8-byte sequence).
    @inlinable static func pattern(_ sequence: UInt64, _ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: sequence &* 31 &+ UInt64(i)) }

    /// Writes header and frame `sequence` into `p` (headerBytes + frameBytes long).
    @inlinable static func write(_ p: UnsafeMutableRawPointer, sequence: UInt64) {
        p.initializeMemory(as: UInt8.self, repeating: 0, count: headerBytes)
        p.storeBytes(of: UInt16(1).littleEndian, toByteOffset: 10, as: UInt16.self)  // num_buffers
        let f = p + headerBytes
        // Destination and source: locally administered unicast addresses.
        for i in 0..<6 { f.storeBytes(of: UInt8(i == 0 ? 0x02 : 0), toByteOffset: i, as: UInt8.self) }
        for i in 0..<6 { f.storeBytes(of: UInt8(i == 0 ? 0x02 : 1), toByteOffset: 6 + i, as: UInt8.self) }
        f.storeBytes(of: etherType.bigEndian, toByteOffset: 12, as: UInt16.self)
        f.storeBytes(of: sequence.littleEndian, toByteOffset: 14, as: UInt64.self)
        for i in 22..<frameBytes { f.storeBytes(of: pattern(sequence, i), toByteOffset: i, as: UInt8.self) }
    }

    /// For a transmitted frame (after its virtio-net header): nil when it is not one of ours,
    /// else whether every byte is as written.
    @inlinable static func check(_ f: UnsafeRawPointer, length: Int) -> Bool? {
        guard length >= 14, UInt16(bigEndian: f.loadUnaligned(fromByteOffset: 12, as: UInt16.self)) == etherType else { return nil }
        guard length == frameBytes else { return false }
        let sequence = UInt64(littleEndian: f.loadUnaligned(fromByteOffset: 14, as: UInt64.self))
        for i in 22..<frameBytes where f.load(fromByteOffset: i, as: UInt8.self) != pattern(sequence, i) { return false }
        return true
    }
}

/// One vhost-user front end's device: its negotiated state, memory and rings.
public final class VhostUserNetBackend: @unchecked Sendable {
    public let options: VhostUserBackendOptions
    public let counters = VhostUserBackendCounters()
    /// Every request handled, in order, by name (what `vqbench serve` prints).
    public private(set) var handled: [String] = []

    struct Vring {
        var size: UInt32?
        var address: VhostUserVringAddress?
        var base: UInt32 = 0
        var kick: DoorbellEndpoint?
        /// SET_VRING_KICK arrived (with a descriptor, or polled: bit 8).
        var kickSet = false
        var call: DoorbellEndpoint?
        var enabled = false
    }

    private var owned = false
    private var acked: UInt64?
    private var protocolAcked: UInt64 = 0
    private var mappings: [PeerMapping] = []
    private var regions: [VhostUserMemoryRegion] = []
    private var memory: GuestMemory?
    private var vrings: [Vring]
    private var worker: Worker?

    public init(options: VhostUserBackendOptions = VhostUserBackendOptions()) {
        self.options = options
        vrings = Array(repeating: Vring(), count: 2 * options.queuePairs)
    }

    deinit { stopWorker() }

    /// Virtio features offered, with VHOST_USER_F_PROTOCOL_FEATURES.
    public var offeredFeatures: UInt64 { options.features.rawValue | VhostUserFeatures.protocolFeatures }

    /// Queues running on the device thread now.
    public var runningQueues: [UInt16] { worker?.queues ?? [] }

    /// The memory table as mapped (guest-physical regions).
    public var mappedRegions: [GuestRegion] { memory?.allRegions ?? [] }

    /// Why a device thread stopped on its own (a ring that broke a rule), if one did.
    public private(set) var deviceErrors: [String] = []

    /// Serves one front end until it closes the connection (nil) or breaks a rule (the
    /// error, after the rings were stopped; the caller closes the connection).
    public func serve(_ connection: borrowing VhostUserConnection) -> VhostUserError? {
        defer { stopWorker() }
        while true {
            var message: VhostUserMessage
            do {
                message = try connection.receive(reply: false)
            } catch {
                if case .peerClosed(partial: false) = error { return nil }
                return error
            }
            do throws(VhostUserError) {
                let reply = try handle(&message)
                if let reply {
                    try connection.send(message.reply(reply))
                } else if message.needsReply && protocolAcked & VhostUserProtocolFeatures.replyAck != 0 {
                    try connection.send(message.reply(.number(0)))
                }
            } catch {
                message.closeFileDescriptors()
                if message.needsReply && protocolAcked & VhostUserProtocolFeatures.replyAck != 0 {
                    try? connection.send(message.reply(.number(1)))
                }
                return error
            }
        }
    }

    /// Handles one request; returns the reply's payload when the request has one. Takes
    /// the message's descriptors (kept or closed).
    public func handle(_ message: inout VhostUserMessage) throws(VhostUserError) -> VhostUserPayload? {
        handled.append(message.request.name)
        let request = message.request
        if request != .setOwner && request != .getFeatures && request != .getProtocolFeatures && !owned {
            throw .outOfOrder(request, requires: "VHOST_USER_SET_OWNER")
        }
        defer { message.closeFileDescriptors() }
        switch (request, message.payload) {
        case (.getFeatures, _):
            return .number(offeredFeatures)
        case let (.setFeatures, .number(f)):
            guard f & ~offeredFeatures == 0 else { throw .featuresNotOffered(request, requested: f, offered: offeredFeatures) }
            guard worker == nil else { throw .outOfOrder(request, requires: "no ring running") }
            acked = f
        case (.getProtocolFeatures, _):
            return .number(options.protocolFeatures)
        case let (.setProtocolFeatures, .number(p)):
            guard p & ~options.protocolFeatures == 0 else {
                throw .featuresNotOffered(request, requested: p, offered: options.protocolFeatures)
            }
            protocolAcked = p
        case (.getQueueNum, _):
            return .number(UInt64(options.queuePairs))
        case (.setOwner, _):
            guard !owned else { throw .outOfOrder(request, requires: "no owner yet (VHOST_USER_SET_OWNER came twice)") }
            owned = true
        case (.resetOwner, _), (.resetDevice, _):
            reset()
        case let (.setMemTable, .memoryTable(table)):
            guard worker == nil else { throw .memoryTableWhileRunning }
            try mapMemory(table, fds: message.fileDescriptors)
        case let (.setVringNum, .vringState(index, num)):
            let i = try ring(index, request)
            let packed = negotiated(.ringPacked)
            guard num > 0, num <= 32768, packed || num & (num - 1) == 0 else { throw .invalidRingSize(index: index, size: num) }
            try stopped(i, request)
            vrings[i].size = num
        case let (.setVringAddr, .vringAddress(a)):
            let i = try ring(a.index, request)
            try stopped(i, request)
            // Checked now against the memory table, translated when the ring starts.
            for (area, address) in [("descriptor area", a.descriptorUserAddress), ("driver area", a.availableUserAddress),
                                    ("device area", a.usedUserAddress)] {
                guard guestAddress(ofUser: address) != nil else { throw .ringNotMapped(index: a.index, area: area, userAddress: address) }
            }
            vrings[i].address = a
        case let (.setVringBase, .vringState(index, num)):
            let i = try ring(index, request)
            try stopped(i, request)
            vrings[i].base = num
        case let (.getVringBase, .vringState(index, _)):
            let i = try ring(index, request)
            // GET_VRING_BASE stops the ring (vhost-user.rst) and says where it stopped.
            stopWorker()
            vrings[i].kickSet = false
            vrings[i].kick = nil
            let base = vrings[i].base
            try reconcile()
            return .vringState(index: index, num: base)
        case let (.setVringKick, .vringFile(index, hasDescriptor)):
            let i = try ring(UInt32(index), request)
            stopWorker()
            if hasDescriptor {
                vrings[i].kick = EventfdDoorbell.adoptEndpoint(fd: message.fileDescriptors.removeFirst())
            } else {
                vrings[i].kick = nil
            }
            vrings[i].kickSet = true
        case let (.setVringCall, .vringFile(index, hasDescriptor)):
            let i = try ring(UInt32(index), request)
            stopWorker()
            vrings[i].call = hasDescriptor ? EventfdDoorbell.adoptEndpoint(fd: message.fileDescriptors.removeFirst()) : nil
        case (.setVringErr, _):
            // The error eventfd is not used: the back end reports errors by closing.
            break
        case let (.setVringEnable, .vringState(index, num)):
            let i = try ring(index, request)
            guard protocolAcked != 0 || acked.map({ $0 & VhostUserFeatures.protocolFeatures != 0 }) == true else {
                throw .outOfOrder(request, requires: "VHOST_USER_F_PROTOCOL_FEATURES negotiated")
            }
            stopWorker()
            vrings[i].enabled = num != 0
        case (.getStatus, _), (.setStatus, _), (.getConfig, _), (.setConfig, _), (.getMaxMemSlots, _), (.addMemReg, _),
             (.remMemReg, _), (.setLogBase, _), (.setLogFD, _), (.setBackendReqFD, _), (.sendRARP, _), (.netSetMTU, _),
             (.setVringEndian, _), (.iotlbMessage, _):
            throw .unsupportedRequest(request)
        default:
            // decode() gives every request its one payload shape.
            throw .wrongPayloadSize(request, size: 0, expected: "its payload")
        }
        try reconcile()
        return nil
    }

    // MARK: - State

    private func negotiated(_ f: VirtioFeatures) -> Bool { (acked ?? 0) & f.rawValue == f.rawValue }

    private func ring(_ index: UInt32, _ request: VhostUserRequest) throws(VhostUserError) -> Int {
        guard Int(index) < vrings.count else { throw .vringIndexOutOfRange(request, index: index, maximum: vrings.count) }
        return Int(index)
    }

    /// Ring setup messages on a running ring stop the device thread first (its position is kept).
    private func stopped(_ i: Int, _ request: VhostUserRequest) throws(VhostUserError) {
        if worker?.queues.contains(UInt16(i)) == true { stopWorker() }
    }

    private func reset() {
        stopWorker()
        acked = nil
        protocolAcked = 0
        mappings = []
        regions = []
        memory = nil
        vrings = Array(repeating: Vring(), count: vrings.count)
    }

    private func mapMemory(_ table: [VhostUserMemoryRegion], fds: [Int32]) throws(VhostUserError) {
        guard !table.isEmpty else { throw .outOfOrder(.setMemTable, requires: "at least one region") }
        var mapped: [PeerMapping] = []
        var guest: [GuestRegion] = []
        for (i, r) in table.enumerated() {
            guard r.size <= UInt64(Int.max), r.mmapOffset <= UInt64(Int.max) - r.size else {
                throw .regionNotMapped(index: i, reason: "size \(r.size) at offset \(r.mmapOffset) is beyond this machine's address space")
            }
            do {
                let m = try PeerMapping(fd: fds[i], offset: Int(r.mmapOffset), size: Int(r.size))
                mapped.append(m)
                guest.append(GuestRegion(gpa: r.guestPhysicalAddress, size: r.size, host: m.base))
            } catch {
                throw .regionNotMapped(index: i, reason: "\(error)")
            }
        }
        do {
            memory = try GuestMemory(regions: guest)
        } catch {
            throw .regionNotMapped(index: 0, reason: "\(error)")
        }
        mappings = mapped
        regions = table
    }

    /// The guest-physical address of a front-end virtual address (ring addresses are the
    /// front end's virtual addresses in vhost-user).
    func guestAddress(ofUser address: UInt64) -> UInt64? {
        for r in regions where address >= r.userAddress && address - r.userAddress < r.size {
            return r.guestPhysicalAddress + (address - r.userAddress)
        }
        return nil
    }

    /// Whether ring `i` can run: sized, placed, its kick set, and enabled when protocol
    /// features are on (otherwise a ring starts on its kick, vhost-user.rst).
    private func startable(_ i: Int) -> Bool {
        let v = vrings[i]
        let enabled = (acked ?? 0) & VhostUserFeatures.protocolFeatures != 0 ? v.enabled : true
        return memory != nil && acked != nil && v.size != nil && v.address != nil && v.kickSet && enabled
    }

    /// Starts the device thread over every startable ring when none runs.
    private func reconcile() throws(VhostUserError) {
        guard worker == nil, let memory, let acked else { return }
        let transmit = vrings.indices.filter { startable($0) }
        guard !transmit.isEmpty else { return }
        let features = VirtioFeatures(rawValue: acked & ~VhostUserFeatures.protocolFeatures)
        var ready: [(UInt16, Int, RingAddresses, UInt32, DoorbellEndpoint?, DoorbellEndpoint?)] = []
        for i in transmit {
            let v = vrings[i], a = v.address!
            let addresses = RingAddresses(descriptorArea: guestAddress(ofUser: a.descriptorUserAddress)!,
                                          driverArea: guestAddress(ofUser: a.availableUserAddress)!,
                                          deviceArea: guestAddress(ofUser: a.usedUserAddress)!)
            ready.append((UInt16(i), Int(v.size!), addresses, v.base, v.kick, v.call))
        }
        worker = try Worker.start(ready, memory: memory, features: features, options: options, counters: counters) { [weak self] index, base in
            self?.vrings[Int(index)].base = base
        }
    }

    private func stopWorker() {
        guard let w = worker else { return }
        w.stop()
        if let e = w.loopError.value { deviceErrors.append(e) }
        worker = nil
    }
}

/// The device thread over a back end's running rings.
final class Worker: @unchecked Sendable {
    let queues: [UInt16]
    let stopFlag = ManagedAtomic<Bool>(false)
    var thread: PinnedThread?
    /// Each ring's base when the thread stopped, handed back to the back end.
    let keep: (UInt16, UInt32) -> Void
    let finalBases = ResultBox<[(UInt16, UInt32)]>([])
    /// Why the device loop stopped early, if it did (a hostile ring: its typed error).
    let loopError = ResultBox<String?>(nil)

    init(queues: [UInt16], keep: @escaping (UInt16, UInt32) -> Void) {
        self.queues = queues
        self.keep = keep
    }

    static func start(_ ready: [(UInt16, Int, RingAddresses, UInt32, DoorbellEndpoint?, DoorbellEndpoint?)], memory: GuestMemory,
                      features: VirtioFeatures, options: VhostUserBackendOptions, counters: VhostUserBackendCounters,
                      keep: @escaping (UInt16, UInt32) -> Void) throws(VhostUserError) -> Worker {
        let w = Worker(queues: ready.map(\.0), keep: keep)
        // Every ring's kick eventfd (polled rings have none).
        let kicks = ready.compactMap(\.4)
        do {
            if features.contains(.ringPacked) {
                var queues: [DeviceQueue<PackedDevice<GuestMemory>, EventfdDoorbell.Notifier>] = []
                for r in ready {
                    let b = VhostUserPackedBase(r.3)
                    let state = PackedQueueState(lastAvailableIndex: b.availableIndex, availableWrapCounter: b.availableWrap,
                                                 usedIndex: b.availableIndex, usedWrapCounter: b.availableWrap)
                    let device = try PackedDevice(queue: r.0, layout: PackedLayout(queueSize: r.1), addresses: r.2, memory: memory,
                                                  features: features, state: state)
                    queues.append(DeviceQueue(index: r.0, device: device, call: try r.5.map { e throws(DoorbellError) in try EventfdDoorbell.notifier(on: e) }))
                }
                try w.run(queues, kicks: kicks, options: options, counters: counters) { d in
                    let s = d.state
                    return VhostUserPackedBase(availableIndex: s.lastAvailableIndex, availableWrap: s.availableWrapCounter,
                                               usedIndex: s.usedIndex, usedWrap: s.usedWrapCounter).num
                }
            } else {
                var queues: [DeviceQueue<SplitDevice<GuestMemory>, EventfdDoorbell.Notifier>] = []
                for r in ready {
                    let base = UInt16(truncatingIfNeeded: r.3)
                    let device = try SplitDevice(queue: r.0, layout: SplitLayout(queueSize: r.1), addresses: r.2, memory: memory,
                                                 features: features, state: SplitQueueState(lastAvailableIndex: base, usedIndex: base))
                    queues.append(DeviceQueue(index: r.0, device: device, call: try r.5.map { e throws(DoorbellError) in try EventfdDoorbell.notifier(on: e) }))
                }
                try w.run(queues, kicks: kicks, options: options, counters: counters) { d in UInt32(d.state.lastAvailableIndex) }
            }
        } catch let e as VirtqueueError {
            throw .device("\(e)")
        } catch {
            throw .device("\(error)")
        }
        return w
    }

    /// virtio-net (§5.1.2): even queues receive, odd ones transmit.
    struct Service: DeviceLoopService {
        let stop: ManagedAtomic<Bool>
        let counters: VhostUserBackendCounters
        /// Per loop queue: whether it transmits.
        let transmits: [Bool]
        /// Per-burst tallies (plain fields: no array in the loop), added to the shared
        /// counters once a burst.
        var transmitted: UInt64 = 0, transmitBytes: UInt64 = 0, received: UInt64 = 0, receiveBytes: UInt64 = 0
        var intact: UInt64 = 0, corrupt: UInt64 = 0
        var sequence: UInt64 = 0
        /// One frame's bytes, gathered or written across a chain's segments.
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: VhostUserFrames.headerBytes + VhostUserFrames.frameBytes, alignment: 8)

        mutating func serve(queue: Int, chain: Chain, segments: UnsafeBufferPointer<Segment>) -> UInt32 {
            if transmits[queue] {
                transmitted &+= 1
                transmitBytes &+= UInt64(chain.readableBytes)
                // A frame of ours sent back: gather its first bytes (header and frame) and check them.
                let want = VhostUserFrames.headerBytes + VhostUserFrames.frameBytes
                let got = gather(segments, into: scratch, count: want)
                if got > VhostUserFrames.headerBytes,
                   let intact = VhostUserFrames.check(scratch + VhostUserFrames.headerBytes,
                                                      length: Int(chain.readableBytes) - VhostUserFrames.headerBytes) {
                    if intact { self.intact &+= 1 } else { corrupt &+= 1 }
                }
                return 0
            }
            let length = VhostUserFrames.headerBytes + VhostUserFrames.frameBytes
            guard chain.writableBytes >= UInt32(length) else { return 0 }
            VhostUserFrames.write(scratch, sequence: sequence)
            sequence &+= 1
            scatter(scratch, count: length, into: segments)
            received &+= 1
            receiveBytes &+= UInt64(length)
            return UInt32(length)
        }

        /// Copies the first `count` bytes of the chain's readable segments; returns how many there were.
        func gather(_ segments: UnsafeBufferPointer<Segment>, into out: UnsafeMutableRawPointer, count: Int) -> Int {
            var done = 0
            for s in segments where !s.isWritable && done < count {
                guard let host = s.host else { continue }
                let n = min(Int(s.length), count - done)
                (out + done).copyMemory(from: host, byteCount: n)
                done += n
            }
            return done
        }

        /// Writes `count` bytes across the chain's writable segments, in order.
        func scatter(_ bytes: UnsafeRawPointer, count: Int, into segments: UnsafeBufferPointer<Segment>) {
            var done = 0
            for s in segments where s.isWritable && done < count {
                guard let host = s.host else { continue }
                let n = min(Int(s.length), count - done)
                host.copyMemory(from: bytes + done, byteCount: n)
                done += n
            }
        }

        mutating func completed(queue: Int, count: Int) {
            func flush(_ i: Int, _ v: inout UInt64) {
                if v != 0 { counters.add(i, v) }
                v = 0
            }
            flush(0, &transmitted)
            flush(1, &transmitBytes)
            flush(4, &received)
            flush(5, &receiveBytes)
            flush(6, &intact)
            flush(7, &corrupt)
        }
        mutating func interrupted(queue: Int) { counters.add(2, 1) }
        mutating func woke() { counters.add(3, 1) }
        // relaxed: a stop request; the thread's join orders everything after it.
        mutating func shouldStop() -> Bool { stop.load(ordering: .relaxed) }
    }

    func run<D: VirtqueueDeviceHalf>(_ queues: [DeviceQueue<D, EventfdDoorbell.Notifier>], kicks: [DoorbellEndpoint],
                                     options: VhostUserBackendOptions, counters: VhostUserBackendCounters,
                                     base: @escaping (D) -> UInt32) throws {
        let waiter: KickSetWaiter? = kicks.isEmpty ? nil : KickSetWaiter(kicks)
        let transmits = queues.map(\.transmits)
        let stop = stopFlag, bases = finalBases, loopError = loopError
        let loopOptions = DeviceLoopOptions(batch: options.batch, sleeps: waiter != nil, sleepNanoseconds: deviceStopCheckNanoseconds,
                                            timeoutIsLostKick: false)
        // The queues and the waiter move to the thread, which owns them from here on.
        let start = ResultBox((queues, waiter, base))
        thread = try PinnedThread(cpu: options.cpu, name: "vhost-user dev") {
            var (owned, waiter, base) = start.value
            var service = Service(stop: stop, counters: counters, transmits: transmits)
            defer { service.scratch.deallocate() }
            if var w = waiter {
                loopError.value = runDeviceLoop(&owned, kick: &w, options: loopOptions, service: &service)
            } else {
                var w = NeverWaiter()
                loopError.value = runDeviceLoop(&owned, kick: &w, options: loopOptions, service: &service)
            }
            bases.value = owned.map { ($0.index, base($0.device)) }
            waiter = nil
        }
    }

    func stop() {
        // relaxed: the join below is the synchronisation.
        stopFlag.store(true, ordering: .relaxed)
        thread?.join()
        thread = nil
        for (q, b) in finalBases.value { keep(q, b) }
    }
}

/// Sleeps on every ring's kick eventfd at once (vhost-user gives each ring its own): one
/// ppoll over them all, then a read of each that is readable, so its count starts again.
struct KickSetWaiter: DoorbellWaiter {
    /// Kept so the descriptors stay open while the thread waits on them.
    let endpoints: [DoorbellEndpoint]
    let fds: [Int32]
    var tally = DoorbellCounters()
    var counters: DoorbellCounters { tally }

    init(_ endpoints: [DoorbellEndpoint]) {
        self.endpoints = Array(endpoints.prefix(64))
        fds = self.endpoints.compactMap(\.eventfd)
    }

    mutating func wait() throws(DoorbellError) {
        while try !wait(timeoutNanoseconds: UInt64.max) {}
    }

    mutating func wait(timeoutNanoseconds: UInt64) throws(DoorbellError) -> Bool {
        var ready: UInt64 = 0
        tally.syscalls &+= 1
        let timeout = timeoutNanoseconds > UInt64(Int64.max) ? Int64(-1) : Int64(timeoutNanoseconds)
        let rc = fds.withUnsafeBufferPointer { cplatform_poll_readable($0.baseAddress, Int32($0.count), timeout, &ready) }
        guard rc >= 0 else {
            if rc == -EINTR { return false }
            throw .systemCall(name: "ppoll(kick eventfds)", errno: -rc)
        }
        guard rc > 0 else {
            tally.timeouts &+= 1
            return false
        }
        for (i, fd) in fds.enumerated() where ready & (1 << UInt64(i)) != 0 {
            var count: UInt64 = 0
            tally.syscalls &+= 1
            if read(fd, &count, 8) == 8 { tally.notificationsReceived &+= count }
        }
        tally.wakeups &+= 1
        return true
    }

    mutating func recordSpuriousWakeup() { tally.spuriousWakeups &+= 1 }
}

/// The kick of a ring polled without a descriptor (SET_VRING_KICK with bit 8): never waited on.
struct NeverWaiter: DoorbellWaiter {
    var counters: DoorbellCounters { DoorbellCounters() }
    mutating func wait() throws(DoorbellError) {}
    mutating func wait(timeoutNanoseconds: UInt64) throws(DoorbellError) -> Bool { false }
    mutating func recordSpuriousWakeup() {}
}
