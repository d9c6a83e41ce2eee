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
public final class NetDeviceCounters: Sendable {
    public let transmitted = ManagedAtomic<UInt64>(0)
    public let transmitBytes = ManagedAtomic<UInt64>(0)
    public let transmitChecksum = ManagedAtomic<UInt64>(0)
    public let received = ManagedAtomic<UInt64>(0)
    public let receiveBytes = ManagedAtomic<UInt64>(0)
    public let interrupts = ManagedAtomic<UInt64>(0)
    public let wakeups = ManagedAtomic<UInt64>(0)
    /// System calls the device thread made on its doorbells (kick waits, interrupts),
    /// and the CPU time it used, added when a device thread stops.
    public let deviceSyscalls = ManagedAtomic<UInt64>(0)
    public let deviceCPUNanoseconds = ManagedAtomic<UInt64>(0)
    public init() {}
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
    public init(copiesPayload: Bool, receivePacketBytes: Int = 64, batch: Int = 64) {
        self.copiesPayload = copiesPayload
        self.receivePacketBytes = receivePacketBytes
        self.batch = batch
    }
}

/// One queue on the device thread.
@usableFromInline typealias NetQueue<Device: VirtqueueDeviceHalf, Call: DoorbellNotifier> = DeviceQueue<Device, Call>

/// What the device thread hands back when it stops.
public struct NetDeviceStop<Bell: Doorbell, Memory>: @unchecked Sendable {
    public var states: [(queue: UInt16, state: VDPAQueueState)] = []
    public var callbacks: [(queue: UInt16, callback: Bell.Notifier?)] = []
    public var kickWaiter: Bell.Waiter?
    public var memories: [Memory] = []
    public var error: String?
}

/// A running device thread and the way to stop it.
public final class NetDeviceThread<Bell: Doorbell, Memory>: @unchecked Sendable {
    let stopFlag = ManagedAtomic<Bool>(false)
    let result: ResultBox<NetDeviceStop<Bell, Memory>>
    private var thread: PinnedThread?

    init(result: ResultBox<NetDeviceStop<Bell, Memory>>) { self.result = result }

    func attach(_ t: PinnedThread) { thread = t }

    /// Asks the thread to stop at its next batch boundary (it re-checks at least every
    /// millisecond while asleep, sooner when `wake` rings its doorbell) and waits for it.
    public func stop(wake: () -> Void = {}) -> NetDeviceStop<Bell, Memory> {
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

extension VDPADeviceCore {
    /// Starts the device thread over the ready queues (DRIVER_OK or resume), each device
    /// half reaching memory through `memory`. Takes the kick waiter and the callbacks.
    func startNetDevice<Memory: DeviceMemory>(memory: Memory, behaviour: NetDeviceBehaviour, cpu: Int32?,
                                              counters: NetDeviceCounters) throws(MediationError) -> NetDeviceThread<Bell, Memory> {
        try withState { (s) throws(MediationError) -> NetDeviceThread<Bell, Memory> in
            let features = s.machine.driverFeatures
            var ready: [(UInt16, Int, RingAddresses, VDPAQueueState?, Bell.Notifier?)] = []
            for (i, q) in s.queues.enumerated() where q.ready {
                ready.append((UInt16(i), q.size!, q.addresses!, q.state, q.callback))
            }
            guard let waiter = s.kickWaiter else { throw .deviceThread(reason: "the device's doorbell waiter is held by a running device thread") }
            let box = ResultBox(NetDeviceStop<Bell, Memory>())
            let handle = NetDeviceThread<Bell, Memory>(result: box)
            let thread: PinnedThread
            do {
                if features.contains(.ringPacked) {
                    var queues: [NetQueue<PackedDevice<Memory>, Bell.Notifier>] = []
                    for (index, size, addresses, state, cb) in ready {
                        var st = PackedQueueState()
                        if case let .packed(saved)? = state { st = saved }
                        let d = try PackedDevice(queue: index, layout: PackedLayout(queueSize: size), addresses: addresses,
                                                 memory: memory, features: features, state: st)
                        queues.append(NetQueue(index: index, device: d, call: cb))
                    }
                    thread = try spawnNetDevice(queues, waiter, behaviour, cpu, counters, handle, name: deviceThreadName(identity.name))
                } else {
                    var queues: [NetQueue<SplitDevice<Memory>, Bell.Notifier>] = []
                    for (index, size, addresses, state, cb) in ready {
                        var st = SplitQueueState()
                        if case let .split(saved)? = state { st = saved }
                        let d = try SplitDevice(queue: index, layout: SplitLayout(queueSize: size), addresses: addresses,
                                                memory: memory, features: features, state: st)
                        queues.append(NetQueue(index: index, device: d, call: cb))
                    }
                    thread = try spawnNetDevice(queues, waiter, behaviour, cpu, counters, handle, name: deviceThreadName(identity.name))
                }
            } catch let e as VirtqueueError {
                throw .ring(e)
            } catch let e as DoorbellError {
                throw .doorbell(e)
            } catch {
                throw .deviceThread(reason: "\(error)")
            }
            handle.attach(thread)
            s.kickWaiter = nil
            for (index, _, _, _, _) in ready { s.queues[Int(index)].callback = nil }
            s.running = true
            return handle
        }
    }

    /// Takes back what a stopped device thread held: the doorbell waiter, the callbacks,
    /// and each queue's position (so a later start, or get_vq_state, continues from it).
    func absorb<Memory>(_ stop: NetDeviceStop<Bell, Memory>) {
        withState { s in
            if let w = stop.kickWaiter { s.kickWaiter = w }
            for (q, cb) in stop.callbacks { s.queues[Int(q)].callback = cb }
            for (q, st) in stop.states { s.queues[Int(q)].state = st }
            s.running = false
        }
    }
}

/// The device thread's name as `top -H` and `/proc/self/task/*/comm` show it ("dev:vdpa0";
/// the kernel keeps 15 bytes).
public func deviceThreadName(_ device: String) -> String { "dev:" + device }

func spawnNetDevice<Device: VirtqueueDeviceHalf & VDPAQueueStateReporting, Bell: Doorbell, Memory: DeviceMemory>(
    _ queues: [NetQueue<Device, Bell.Notifier>], _ waiter: Bell.Waiter, _ behaviour: NetDeviceBehaviour, _ cpu: Int32?,
    _ counters: NetDeviceCounters, _ handle: NetDeviceThread<Bell, Memory>, name: String
) throws(DoorbellError) -> PinnedThread {
    let start = ResultBox((queues, waiter))
    return try PinnedThread(cpu: cpu, name: name) {
        var (queues, kick) = start.value
        func syscalls() -> UInt64 { queues.reduce(kick.counters.syscalls) { $0 &+ ($1.call?.counters.syscalls ?? 0) } }
        let syscalls0 = syscalls()
        let cpu0 = cplatform_thread_cpu_time_ns()
        let error = runNetDevice(&queues, &kick, behaviour, counters, handle.stopFlag)
        counters.deviceCPUNanoseconds.wrappingIncrement(by: cplatform_thread_cpu_time_ns() &- cpu0, ordering: .relaxed)
        counters.deviceSyscalls.wrappingIncrement(by: syscalls() &- syscalls0, ordering: .relaxed)
        var out = NetDeviceStop<Bell, Memory>()
        out.error = error
        out.kickWaiter = kick
        for q in queues {
            out.states.append((q.index, q.device.vdpaState))
            out.callbacks.append((q.index, q.call))
            if let m = q.device as? SplitDevice<Memory> { out.memories.append(m.memory) }
            if let m = q.device as? PackedDevice<Memory> { out.memories.append(m.memory) }
        }
        handle.result.value = out
    }
}

/// The virtio-net device model the parents run on the device loop: transmit chains'
/// payloads are checksummed (copied through a device buffer first when the parent copies,
/// as vdpa_sim's vringh does), receive chains get numbered packets; the counters are
/// updated once per burst.
@usableFromInline
struct NetService: DeviceLoopService {
    @usableFromInline let behaviour: NetDeviceBehaviour
    @usableFromInline let counters: NetDeviceCounters
    @usableFromInline let stop: ManagedAtomic<Bool>
    @usableFromInline let transmits: [Bool]
    @usableFromInline let scratch: UnsafeMutableRawPointer
    @usableFromInline let scratchBytes = 65_536
    @usableFromInline var rxSequence: UInt64
    @usableFromInline var bytes: UInt64 = 0
    @usableFromInline var sum: UInt64 = 0

    @usableFromInline
    init(behaviour: NetDeviceBehaviour, counters: NetDeviceCounters, stop: ManagedAtomic<Bool>, transmits: [Bool]) {
        self.behaviour = behaviour
        self.counters = counters
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
        if transmits[queue] {
            counters.transmitted.wrappingIncrement(by: UInt64(count), ordering: .relaxed)
            counters.transmitBytes.wrappingIncrement(by: bytes, ordering: .relaxed)
            counters.transmitChecksum.wrappingIncrement(by: sum, ordering: .relaxed)
        } else {
            counters.received.wrappingIncrement(by: UInt64(count), ordering: .relaxed)
            counters.receiveBytes.wrappingIncrement(by: bytes, ordering: .relaxed)
        }
        bytes = 0
        sum = 0
    }

    @inlinable mutating func interrupted(queue: Int) { counters.interrupts.wrappingIncrement(ordering: .relaxed) }
    @inlinable mutating func woke() { counters.wakeups.wrappingIncrement(ordering: .relaxed) }
    @inlinable mutating func shouldStop() -> Bool { stop.load(ordering: .acquiring) }
}

/// The device thread's loop: the one device loop with the virtio-net service. Returns why
/// it stopped early, or nil on a requested stop. A stop is seen within a millisecond: the
/// loop's sleeps on the kick doorbell last that long at most.
///
/// It is reached through the parents' generic code, which the engine cannot specialise
/// across the module boundary; without these pre-specialisations every pop, push and
/// translation in the loop went through witness tables (about 4× slower than the bare ring).
@inlinable
@_specialize(where Device == SplitDevice<GuestMemory>, Call == BusyPollDoorbell.Notifier, Kick == BusyPollDoorbell.Waiter)
@_specialize(where Device == SplitDevice<GuestMemory>, Call == EventfdDoorbell.Notifier, Kick == EventfdDoorbell.Waiter)
@_specialize(where Device == SplitDevice<GuestMemory>, Call == FutexDoorbell.Notifier, Kick == FutexDoorbell.Waiter)
@_specialize(where Device == SplitDevice<GuestMemory>, Call == HybridDoorbell<EventfdDoorbell>.Notifier, Kick == HybridDoorbell<EventfdDoorbell>.Waiter)
@_specialize(where Device == PackedDevice<GuestMemory>, Call == BusyPollDoorbell.Notifier, Kick == BusyPollDoorbell.Waiter)
@_specialize(where Device == PackedDevice<GuestMemory>, Call == EventfdDoorbell.Notifier, Kick == EventfdDoorbell.Waiter)
@_specialize(where Device == PackedDevice<GuestMemory>, Call == FutexDoorbell.Notifier, Kick == FutexDoorbell.Waiter)
@_specialize(where Device == PackedDevice<GuestMemory>, Call == HybridDoorbell<EventfdDoorbell>.Notifier, Kick == HybridDoorbell<EventfdDoorbell>.Waiter)
@_specialize(where Device == SplitDevice<SoftwareIOTLBMemory>, Call == BusyPollDoorbell.Notifier, Kick == BusyPollDoorbell.Waiter)
@_specialize(where Device == SplitDevice<SoftwareIOTLBMemory>, Call == EventfdDoorbell.Notifier, Kick == EventfdDoorbell.Waiter)
@_specialize(where Device == SplitDevice<SoftwareIOTLBMemory>, Call == FutexDoorbell.Notifier, Kick == FutexDoorbell.Waiter)
@_specialize(where Device == SplitDevice<SoftwareIOTLBMemory>, Call == HybridDoorbell<EventfdDoorbell>.Notifier, Kick == HybridDoorbell<EventfdDoorbell>.Waiter)
@_specialize(where Device == PackedDevice<SoftwareIOTLBMemory>, Call == BusyPollDoorbell.Notifier, Kick == BusyPollDoorbell.Waiter)
@_specialize(where Device == PackedDevice<SoftwareIOTLBMemory>, Call == EventfdDoorbell.Notifier, Kick == EventfdDoorbell.Waiter)
@_specialize(where Device == PackedDevice<SoftwareIOTLBMemory>, Call == FutexDoorbell.Notifier, Kick == FutexDoorbell.Waiter)
@_specialize(where Device == PackedDevice<SoftwareIOTLBMemory>, Call == HybridDoorbell<EventfdDoorbell>.Notifier, Kick == HybridDoorbell<EventfdDoorbell>.Waiter)
func runNetDevice<Device: VirtqueueDeviceHalf, Call: DoorbellNotifier, Kick: DoorbellWaiter>(
    _ queues: inout [NetQueue<Device, Call>], _ kick: inout Kick, _ behaviour: NetDeviceBehaviour,
    _ counters: NetDeviceCounters, _ stop: ManagedAtomic<Bool>
) -> String? {
    var service = NetService(behaviour: behaviour, counters: counters, stop: stop, transmits: queues.map(\.transmits))
    defer { service.deallocate() }
    let options = DeviceLoopOptions(batch: behaviour.batch, sleeps: true, sleepNanoseconds: deviceStopCheckNanoseconds,
                                    timeoutIsLostKick: false)
    return runDeviceLoop(&queues, kick: &kick, options: options, service: &service)
}
