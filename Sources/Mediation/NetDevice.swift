// The simulated virtio-net device every parent runs on its own thread: the transmit
// queues' chains are consumed and their payload checksummed, the receive queues' posted
// buffers filled with numbered packets. Generic over ring layout, memory and doorbells.

import Atomics
import CPlatform
import Doorbell
import Virtqueue
import VirtioMemory

/// The checksum both sides compute: a 64-bit sum of the payload's little-endian words
/// (the tail zero-padded). Cheap enough not to dominate a 64-byte packet, and a single
/// wrong byte changes it.
@inlinable
public func payloadChecksum(_ p: UnsafeRawPointer, _ length: Int) -> UInt64 {
    var sum: UInt64 = 0
    var i = 0
    while i &+ 8 <= length {
        sum &+= p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        i &+= 8
    }
    var tail: UInt64 = 0
    var shift: UInt64 = 0
    while i < length {
        tail |= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << shift
        shift &+= 8
        i &+= 1
    }
    return sum &+ tail
}

/// Writes receive packet number `sequence` of `length` bytes: the sequence number, then a
/// byte pattern derived from it, so the driver can check every byte.
@inlinable
public func writeReceivePacket(_ p: UnsafeMutableRawPointer, sequence: UInt64, length: Int) {
    var i = 0
    if length >= 8 {
        p.storeBytes(of: sequence, as: UInt64.self)
        i = 8
    }
    while i < length {
        p.storeBytes(of: UInt8(truncatingIfNeeded: sequence &+ UInt64(i)), toByteOffset: i, as: UInt8.self)
        i &+= 1
    }
}

/// What the device did, readable from any thread (updated once per batch, not per packet).
/// The words share cache lines only with each other: the one device thread running at a
/// time writes them with plain loads and stores (no locked read-modify-write), and no other
/// allocation's line bounces between the cores with them.
public final class NetDeviceCounters: @unchecked Sendable {
    @usableFromInline enum Word: Int, CaseIterable {
        case transmitted, transmitBytes, transmitChecksum, received, receiveBytes, interrupts, wakeups
        case deviceSyscalls, deviceCPUNanoseconds
    }
    @usableFromInline let words: UnsafeMutablePointer<UInt64.AtomicRepresentation>

    public init() { words = allocateCounterWords(Word.allCases.count) }
    deinit { words.deallocate() }

    @inlinable func word(_ w: Word) -> UnsafeAtomic<UInt64> { UnsafeAtomic(at: words + w.rawValue) }
    public var transmitted: UnsafeAtomic<UInt64> { word(.transmitted) }
    public var transmitBytes: UnsafeAtomic<UInt64> { word(.transmitBytes) }
    public var transmitChecksum: UnsafeAtomic<UInt64> { word(.transmitChecksum) }
    public var received: UnsafeAtomic<UInt64> { word(.received) }
    public var receiveBytes: UnsafeAtomic<UInt64> { word(.receiveBytes) }
    public var interrupts: UnsafeAtomic<UInt64> { word(.interrupts) }
    public var wakeups: UnsafeAtomic<UInt64> { word(.wakeups) }
    /// System calls the device thread made on its doorbells (kick waits, interrupts),
    /// and the CPU time it used, added when a device thread stops.
    public var deviceSyscalls: UnsafeAtomic<UInt64> { word(.deviceSyscalls) }
    public var deviceCPUNanoseconds: UnsafeAtomic<UInt64> { word(.deviceCPUNanoseconds) }

    /// The device thread's add: it is the words' one writer (device threads of one device
    /// run one after another, a join apart), so a relaxed load and store suffice; readers
    /// race it by nature and see each word whole.
    @inlinable static func add(_ words: UnsafeMutablePointer<UInt64.AtomicRepresentation>, _ w: Word, _ n: UInt64) {
        let a = UnsafeAtomic<UInt64>(at: words + w.rawValue)
        a.store(a.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }
}

/// `count` zeroed 64-bit counter words on cache lines of their own (a thread's counters,
/// written by that thread alone).
func allocateCounterWords(_ count: Int) -> UnsafeMutablePointer<UInt64.AtomicRepresentation> {
    let words = UnsafeMutableRawPointer.allocate(byteCount: (count * 8 + 63) & ~63, alignment: 64)
        .bindMemory(to: UInt64.AtomicRepresentation.self, capacity: count)
    words.initialize(repeating: .init(0), count: count)
    return words
}

/// A device half that can report its position as a vDPA queue state.
public protocol VDPAQueueStateReporting {
    var vdpaState: VDPAQueueState { get }
}
extension SplitDevice: VDPAQueueStateReporting {
    public var vdpaState: VDPAQueueState { .split(state) }
}
extension PackedDevice: VDPAQueueStateReporting {
    public var vdpaState: VDPAQueueState { .packed(state) }
}

/// How a parent's device treats payloads.
public struct NetDeviceBehaviour: Sendable {
    /// Copy each payload through a device-side buffer (vdpa_sim: vringh pulls and pushes).
    public var copiesPayload: Bool
    /// Bytes of each received packet (limited by the posted buffer).
    public var receivePacketBytes: Int
    /// Chains handled per queue before looking at the next queue.
    public var batch: Int
    /// Set when interrupts go through the parent's handler rather than straight to the
    /// driver (a CQ callback, a shared vector); the handler's counters land in `handled`.
    public var routing: InterruptRouting?
    public var handled: InterruptHandlerTally?
    /// Set when the device keeps a register of how far each queue got (ifcvf's live-migration
    /// registers): chains completed per ready queue, written once per burst.
    public var positions: QueuePositions?
    public init(copiesPayload: Bool, receivePacketBytes: Int = 64, batch: Int = 64, routing: InterruptRouting? = nil,
                handled: InterruptHandlerTally? = nil, positions: QueuePositions? = nil) {
        self.copiesPayload = copiesPayload
        self.receivePacketBytes = receivePacketBytes
        self.batch = batch
        self.routing = routing
        self.handled = handled
        self.positions = positions
    }
}

/// Chains each queue has completed since the device thread started, as a device register
/// the control path may read while the queue runs.
public final class QueuePositions: @unchecked Sendable {
    /// One cache line (or more) of its own: the device thread writes it every burst, and a
    /// neighbour on the same line would bounce between the cores with it.
    @usableFromInline let words: UnsafeMutablePointer<UInt64.AtomicRepresentation>
    public let count: Int
    public init(queues: Int) {
        count = max(queues, 1)
        let bytes = (count * MemoryLayout<UInt64>.stride + 63) & ~63
        words = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            .bindMemory(to: UInt64.AtomicRepresentation.self, capacity: count)
        words.initialize(repeating: .init(0), count: count)
    }
    deinit { words.deallocate() }
    /// relaxed: a register read races the device by nature; it is exact between bursts.
    public func completed(_ q: Int) -> UInt64 { UnsafeAtomic<UInt64>(at: words + q).load(ordering: .relaxed) }
    /// The device thread is the register's one writer: a plain load and store, no locked RMW.
    /// Takes the words, not the object, so the burst path holds no reference to count.
    @inlinable static func add(_ words: UnsafeMutablePointer<UInt64.AtomicRepresentation>, _ q: Int, _ n: Int) {
        let w = UnsafeAtomic<UInt64>(at: words + q)
        w.store(w.load(ordering: .relaxed) &+ UInt64(n), ordering: .relaxed)
    }
}

/// One queue on the device thread.
@usableFromInline typealias NetQueue<Device: VirtqueueDeviceHalf, Call: DoorbellNotifier> = DeviceQueue<Device, Call>

/// What the device thread hands back when it stops.
public struct NetDeviceStop<Memory>: @unchecked Sendable {
    public var states: [(queue: UInt16, state: VDPAQueueState)] = []
    public var memories: [Memory] = []
    public var error: String?
}

/// A running device thread and the way to stop it.
public final class NetDeviceThread<Memory>: @unchecked Sendable {
    /// Read on every pass of the device loop: an UnsafeAtomic the loop holds as a plain
    /// pointer (a ManagedAtomic's storage accessor was a call per pass, not inlined). It
    /// lives as long as this handle, which the device thread's closure holds.
    let stopFlag = UnsafeAtomic<Bool>.create(false)
    let result = ResultBox(NetDeviceStop<Memory>())
    private var thread: PinnedThread?

    init() {}
    deinit { stopFlag.destroy() }

    func attach(_ t: PinnedThread) { thread = t }

    /// Asks the thread to stop at its next batch boundary (it re-checks at least every
    /// millisecond while asleep, sooner when `wake` rings its doorbell) and waits for it.
    public func stop(wake: () -> Void = {}) -> NetDeviceStop<Memory> {
        stopFlag.store(true, ordering: .releasing)
        // A sleeping device thread re-checks within a millisecond anyway; ringing its
        // doorbell makes a stop (suspend, reset) as prompt as a real device's.
        wake()
        thread?.join()
        thread = nil
        return result.value
    }
}

final class ResultBox<T>: @unchecked Sendable {
    var value: T
    init(_ v: T) { value = v }
}

/// How long the device thread sleeps before re-checking its stop flag.
@usableFromInline let deviceStopCheckNanoseconds: UInt64 = 1_000_000

/// A ready queue as the device thread starts it: where its rings are, where it left off,
/// and the doorbell its used buffers are signalled on.
struct ReadyQueue {
    var index: UInt16
    var size: Int
    var addresses: RingAddresses
    var state: VDPAQueueState?
    var callback: DoorbellEndpoint?

    /// The queue's device half, continuing from its saved position (or the start).
    func splitDevice<M: DeviceMemory>(_ memory: M, _ features: VirtioFeatures) throws(VirtqueueError) -> SplitDevice<M> {
        var st = SplitQueueState()
        if case let .split(saved)? = state { st = saved }
        return try SplitDevice(queue: index, layout: SplitLayout(queueSize: size), addresses: addresses, memory: memory,
                               features: features, state: st)
    }

    func packedDevice<M: DeviceMemory>(_ memory: M, _ features: VirtioFeatures) throws(VirtqueueError) -> PackedDevice<M> {
        var st = PackedQueueState()
        if case let .packed(saved)? = state { st = saved }
        return try PackedDevice(queue: index, layout: PackedLayout(queueSize: size), addresses: addresses, memory: memory,
                                features: features, state: st)
    }
}

/// The ringing end of each ready queue's callback (nil: none installed), which must be of
/// the kick's transport: a device thread's, or a relay's, interrupts.
func callNotifiers<B: EndpointDoorbell>(_ bell: B.Type, _ ready: [ReadyQueue], kick: DoorbellEndpoint) throws(DoorbellError) -> [B.Notifier?] {
    try ready.map { q throws(DoorbellError) in
        guard let e = q.callback else { return nil }
        guard e.transport == kick.transport else { throw DoorbellError.endpointTransportMismatch(expected: kick.transport, endpoint: e.transport) }
        return try B.notifier(on: e)
    }
}

/// Starts a device thread running the virtio-net device loop over `ready`, each device half
/// reaching memory through `memory`, sleeping on `kick`. The one place a device doorbell's
/// transport becomes a type: every parent's datapath, and the bare reference's, start here,
/// so the loop below is specialised for (layout, memory, doorbell) with no witness tables.
func launchNetDevice<Memory: DeviceMemory>(_ ready: [ReadyQueue], memory: Memory, features: VirtioFeatures,
                                           kick: DoorbellEndpoint, behaviour: NetDeviceBehaviour, cpu: Int32?,
                                           counters: NetDeviceCounters, name: String) throws(MediationError) -> NetDeviceThread<Memory> {
    let handle = NetDeviceThread<Memory>()
    let launch = NetDeviceLaunch(ready: ready, memory: memory, features: features, kick: kick, behaviour: behaviour, cpu: cpu,
                                 counters: counters, handle: handle, name: name)
    do {
        try withDeviceDoorbell(kick.transport, launch)
    } catch {
        throw mediationError(error)
    }
    return handle
}

/// What one device thread starts with, before its doorbell's type is known.
struct NetDeviceLaunch<Memory: DeviceMemory>: DeviceDoorbellVisitor {
    let ready: [ReadyQueue]
    let memory: Memory
    let features: VirtioFeatures
    let kick: DoorbellEndpoint
    let behaviour: NetDeviceBehaviour
    let cpu: Int32?
    let counters: NetDeviceCounters
    let handle: NetDeviceThread<Memory>
    let name: String

    /// The callbacks are the driver's, of the kick's transport; rung directly (bypass) or
    /// through the parent's interrupt handler.
    func visit<B: EndpointDoorbell>(_ bell: B.Type) throws {
        let waiter = try B.waiter(on: kick)
        let calls: [B.Notifier?] = try callNotifiers(B.self, ready, kick: kick)
        if let routing = behaviour.routing {
            let handler = InterruptHandler(routing: routing, callbacks: calls)
            let tally = behaviour.handled
            try start(waiter, calls.indices.map { i in calls[i] == nil ? nil : HandledCall(handler: handler, queue: i) }) {
                tally?.add(handler.counters)
            }
        } else {
            try start(waiter, calls) {}
        }
    }

    func start<W: DoorbellWaiter, C: DoorbellNotifier>(_ waiter: W, _ calls: [C?], finished: @escaping @Sendable () -> Void) throws {
        if features.contains(.ringPacked) {
            var queues: [NetQueue<PackedDevice<Memory>, C>] = []
            for (i, q) in ready.enumerated() {
                queues.append(NetQueue(index: q.index, device: try q.packedDevice(memory, features), call: calls[i]))
            }
            handle.attach(try spawnNetDevice(queues, waiter, behaviour, cpu, counters, handle, name: name, finished: finished))
        } else {
            var queues: [NetQueue<SplitDevice<Memory>, C>] = []
            for (i, q) in ready.enumerated() {
                queues.append(NetQueue(index: q.index, device: try q.splitDevice(memory, features), call: calls[i]))
            }
            handle.attach(try spawnNetDevice(queues, waiter, behaviour, cpu, counters, handle, name: name, finished: finished))
        }
    }
}

extension VDPADeviceCore {
    /// Starts the device thread over the ready queues (DRIVER_OK or resume), each device
    /// half reaching memory through `memory`, from where each queue left off.
    /// `excluding`: ready queues another worker serves (a software control queue).
    func startNetDevice<Memory: DeviceMemory>(memory: Memory, behaviour: NetDeviceBehaviour, cpu: Int32?,
                                              counters: NetDeviceCounters,
                                              excluding: Set<UInt16> = []) throws(MediationError) -> NetDeviceThread<Memory> {
        try withState { (s) throws(MediationError) -> NetDeviceThread<Memory> in
            guard !s.running else { throw .deviceThread(reason: "the device thread of \(identity.name) is already running") }
            var ready: [ReadyQueue] = []
            for (i, q) in s.queues.enumerated() where q.ready && !excluding.contains(UInt16(i)) {
                ready.append(ReadyQueue(index: UInt16(i), size: q.size!, addresses: q.addresses!, state: q.state, callback: q.callback))
            }
            let thread = try launchNetDevice(ready, memory: memory, features: s.machine.driverFeatures, kick: s.kick,
                                             behaviour: behaviour, cpu: cpu, counters: counters, name: deviceThreadName(identity.name))
            s.running = true
            return thread
        }
    }

    /// Queue `q` as a worker would start it, if it is ready.
    func readyQueue(_ q: UInt16) -> ReadyQueue? {
        withState { s in
            guard Int(q) < s.queues.count, s.queues[Int(q)].ready, let size = s.queues[Int(q)].size,
                  let addresses = s.queues[Int(q)].addresses else { return nil }
            return ReadyQueue(index: q, size: size, addresses: addresses, state: s.queues[Int(q)].state, callback: s.queues[Int(q)].callback)
        }
    }

    /// Where a queue another worker served stopped.
    func keepState(_ q: UInt16, _ state: VDPAQueueState) { withState { $0.queues[Int(q)].state = state } }

    /// Takes back each queue's position from a stopped device thread (so a later start,
    /// or get_vq_state, continues from it).
    func absorb<Memory>(_ stop: NetDeviceStop<Memory>) {
        withState { s in
            for (q, st) in stop.states { s.queues[Int(q)].state = st }
            s.running = false
        }
    }

    /// Rings the device's own doorbell from the control path (kick_vq when the notify area
    /// is not mapped). Under the lock, so the control path is the doorbell's one ringer.
    /// `onlyWhenLive`: ignore the kick unless the device runs and the queue is ready (as
    /// vdpa_sim's kick_vq does).
    func ringKick(queue: UInt16, onlyWhenLive: Bool = false) throws(MediationError) {
        try withState { (s) throws(MediationError) in
            guard Int(queue) < s.queues.count else { throw .queueOutOfRange(queue: queue, queues: s.queues.count) }
            guard !s.notifyAreaMapped else { throw .notificationAreaTaken(queue: queue) }
            if onlyWhenLive && !(s.running && s.queues[Int(queue)].ready) { return }
            try ring(s.kick)
        }
    }

    /// Makes a stop prompt: rings the device's doorbell when the control path may (an
    /// eventfd has any number of writers; a word-backed doorbell mapped by a driver has the
    /// driver as its one writer, and the device loop sees its stop flag within a
    /// millisecond anyway).
    func wakeForStop() {
        withState { s in
            if !s.notifyAreaMapped || s.kick.transport == .eventfd {
                try? ring(s.kick)
            }
        }
    }

    /// The notify area: the device's doorbell, mapped by the one driver that asks.
    func mapNotifyArea(queue: UInt16) throws(MediationError) -> DoorbellEndpoint {
        try withState { (s) throws(MediationError) -> DoorbellEndpoint in
            guard Int(queue) < s.queues.count else { throw .queueOutOfRange(queue: queue, queues: s.queues.count) }
            guard !s.notifyAreaMapped else { throw .notificationAreaTaken(queue: queue) }
            s.notifyAreaMapped = true
            return s.kick
        }
    }
}

/// One ring of `endpoint` from the control path, through a typed end made for it.
func ring(_ endpoint: DoorbellEndpoint) throws(MediationError) {
    struct Once: DeviceDoorbellVisitor {
        let endpoint: DoorbellEndpoint
        func visit<B: EndpointDoorbell>(_ bell: B.Type) throws {
            var n = try B.notifier(on: endpoint)
            try n.notify()
        }
    }
    do {
        try withDeviceDoorbell(endpoint.transport, Once(endpoint: endpoint))
    } catch {
        throw mediationError(error)
    }
}

/// The device thread's name as `top -H` and `/proc/self/task/*/comm` show it ("dev:vdpa0";
/// the kernel keeps 15 bytes).
public func deviceThreadName(_ device: String) -> String { "dev:" + device }

func spawnNetDevice<Device: VirtqueueDeviceHalf & VDPAQueueStateReporting, Call: DoorbellNotifier, Kick: DoorbellWaiter, Memory: DeviceMemory>(
    _ queues: [NetQueue<Device, Call>], _ waiter: Kick, _ behaviour: NetDeviceBehaviour, _ cpu: Int32?,
    _ counters: NetDeviceCounters, _ handle: NetDeviceThread<Memory>, name: String, finished: @escaping @Sendable () -> Void = {}
) throws(DoorbellError) -> PinnedThread {
    let start = ResultBox((queues, waiter))
    return try PinnedThread(cpu: cpu, name: name) {
        var (queues, kick) = start.value
        func syscalls() -> UInt64 { queues.reduce(kick.counters.syscalls) { $0 &+ ($1.call?.counters.syscalls ?? 0) } }
        let syscalls0 = syscalls()
        let cpu0 = cplatform_thread_cpu_time_ns()
        let error = runNetDevice(&queues, &kick, behaviour, counters, handle.stopFlag)
        NetDeviceCounters.add(counters.words, .deviceCPUNanoseconds, cplatform_thread_cpu_time_ns() &- cpu0)
        NetDeviceCounters.add(counters.words, .deviceSyscalls, syscalls() &- syscalls0)
        var out = NetDeviceStop<Memory>()
        out.error = error
        for q in queues {
            out.states.append((q.index, q.device.vdpaState))
            if let m = q.device as? SplitDevice<Memory> { out.memories.append(m.memory) }
            if let m = q.device as? PackedDevice<Memory> { out.memories.append(m.memory) }
        }
        handle.result.value = out
        finished()
    }
}

/// The virtio-net device model the parents run on the device loop: transmit chains'
/// payloads are checksummed (copied through a device buffer first when the parent copies,
/// as vdpa_sim's vringh does), receive chains get numbered packets; the counters are
/// updated once per burst.
@usableFromInline
struct NetService: DeviceLoopService {
    @usableFromInline let behaviour: NetDeviceBehaviour
    /// `behaviour.positions`' words, kept alive by `behaviour`.
    @usableFromInline let positionWords: UnsafeMutablePointer<UInt64.AtomicRepresentation>?
    @usableFromInline let counters: NetDeviceCounters
    /// `counters`' words, kept alive by `counters`.
    @usableFromInline let counterWords: UnsafeMutablePointer<UInt64.AtomicRepresentation>
    @usableFromInline let stop: UnsafeAtomic<Bool>
    @usableFromInline let transmits: [Bool]
    @usableFromInline let scratch: UnsafeMutableRawPointer
    @usableFromInline let scratchBytes = 65_536
    @usableFromInline var rxSequence: UInt64
    @usableFromInline var bytes: UInt64 = 0
    @usableFromInline var sum: UInt64 = 0

    @usableFromInline
    init(behaviour: NetDeviceBehaviour, counters: NetDeviceCounters, stop: UnsafeAtomic<Bool>, transmits: [Bool]) {
        self.behaviour = behaviour
        positionWords = behaviour.positions?.words
        self.counters = counters
        counterWords = counters.words
        self.stop = stop
        self.transmits = transmits
        scratch = UnsafeMutableRawPointer.allocate(byteCount: scratchBytes, alignment: 64)
        rxSequence = counters.received.load(ordering: .relaxed)
    }

    @usableFromInline func deallocate() { scratch.deallocate() }

    @inlinable
    mutating func serve(queue: Int, chain: Chain, segments: UnsafeBufferPointer<Segment>) -> UInt32 {
        if transmits[queue] {
            for s in 0..<chain.readableCount {
                guard let host = segments[s].host else { continue }
                let n = Int(segments[s].length)
                if behaviour.copiesPayload && n <= scratchBytes {
                    scratch.copyMemory(from: host, byteCount: n)
                    sum &+= payloadChecksum(scratch, n)
                } else {
                    sum &+= payloadChecksum(host, n)
                }
                bytes &+= UInt64(n)
            }
            return 0
        }
        var left = min(behaviour.receivePacketBytes, Int(chain.writableBytes))
        // One packet per chain, spread over the writable segments.
        var offset = 0
        if behaviour.copiesPayload { writeReceivePacket(scratch, sequence: rxSequence, length: min(left, scratchBytes)) }
        for s in chain.readableCount..<chain.segmentCount where left > 0 {
            guard let host = segments[s].host else { continue }
            let n = min(left, Int(segments[s].length))
            if behaviour.copiesPayload {
                host.copyMemory(from: scratch + offset, byteCount: n)
            } else if offset == 0 {
                writeReceivePacket(host, sequence: rxSequence, length: n)
            } else {
                for j in 0..<n { host.storeBytes(of: UInt8(truncatingIfNeeded: rxSequence &+ UInt64(offset + j)), toByteOffset: j, as: UInt8.self) }
            }
            offset += n
            left -= n
        }
        bytes &+= UInt64(offset)
        rxSequence &+= 1
        return UInt32(offset)
    }

    @inlinable
    mutating func completed(queue: Int, count: Int) {
        if let w = positionWords { QueuePositions.add(w, queue, count) }
        if transmits[queue] {
            NetDeviceCounters.add(counterWords, .transmitted, UInt64(count))
            NetDeviceCounters.add(counterWords, .transmitBytes, bytes)
            NetDeviceCounters.add(counterWords, .transmitChecksum, sum)
        } else {
            NetDeviceCounters.add(counterWords, .received, UInt64(count))
            NetDeviceCounters.add(counterWords, .receiveBytes, bytes)
        }
        bytes = 0
        sum = 0
    }

    @inlinable mutating func interrupted(queue: Int) { NetDeviceCounters.add(counterWords, .interrupts, 1) }
    @inlinable mutating func woke() { NetDeviceCounters.add(counterWords, .wakeups, 1) }
    /// acquiring: pairs with stop()'s releasing store, so what the control path wrote before it is seen.
    @inlinable mutating func shouldStop() -> Bool { stop.load(ordering: .acquiring) }
}

/// The device thread's loop: the one device loop with the virtio-net service. Returns why
/// it stopped early, or nil on a requested stop. A stop is seen within a millisecond: the
/// loop's sleeps on the kick doorbell last that long at most. Called with concrete types
/// only from ``launchNetDevice``'s dispatch, so it is specialised there.
@inlinable
func runNetDevice<Device: VirtqueueDeviceHalf, Call: DoorbellNotifier, Kick: DoorbellWaiter>(
    _ queues: inout [NetQueue<Device, Call>], _ kick: inout Kick, _ behaviour: NetDeviceBehaviour,
    _ counters: NetDeviceCounters, _ stop: UnsafeAtomic<Bool>
) -> String? {
    var service = NetService(behaviour: behaviour, counters: counters, stop: stop, transmits: queues.map(\.transmits))
    defer { service.deallocate() }
    let options = DeviceLoopOptions(batch: behaviour.batch, sleeps: true, sleepNanoseconds: deviceStopCheckNanoseconds,
                                    timeoutIsLostKick: false)
    return runDeviceLoop(&queues, kick: &kick, options: options, service: &service)
}
