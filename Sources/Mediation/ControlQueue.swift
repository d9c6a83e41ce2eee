// The virtio-net control virtqueue emulated in software (virtio 1.2 §5.1.6.5), as mlx5_vnet
// does in a kernel work queue while its data queues are the hardware's: the CVQ's kicks trap
// to a software worker that runs the one device loop over that queue alone, reads each
// command (class, command, data), applies it to the device (MAC address, queue pairs, RX
// mode) and writes the one-byte ack the driver waits for.

import Atomics
import Doorbell
import Virtqueue
import VirtioMemory

/// VIRTIO_NET_F_CTRL_VQ (17) and VIRTIO_NET_F_CTRL_MAC_ADDR (23).
public extension VirtioFeatures {
    static let netControlQueue = VirtioFeatures(rawValue: 1 << 17)
    static let netControlMACAddress = VirtioFeatures(rawValue: 1 << 23)
}

/// The commands this control queue knows (§5.1.6.5), and its acks.
public enum NetControl {
    public static let ok: UInt8 = 0
    public static let err: UInt8 = 1
    public static let classRX: UInt8 = 0
    public static let classMAC: UInt8 = 1
    public static let macAddressSet: UInt8 = 1
    public static let classMQ: UInt8 = 4
    public static let mqPairsSet: UInt8 = 0
    /// The control queue's index for `pairs` queue pairs (after every data queue).
    public static func queueIndex(pairs: Int) -> UInt16 { UInt16(2 * max(pairs, 1)) }
}

/// What a control queue did.
public struct ControlQueueCounters: Sendable, Equatable {
    public var commands = 0
    public var refused = 0
    /// The last command's class and command bytes.
    public var last: [UInt8] = []
}

/// The worker's service: one command per chain.
struct ControlQueueService: DeviceLoopService {
    let core: VDPADeviceCore
    let stop: ManagedAtomic<Bool>
    var counters = ControlQueueCounters()

    mutating func serve(queue: Int, chain: Chain, segments: UnsafeBufferPointer<Segment>) -> UInt32 {
        // The command is small: gather the device-readable part, then find the ack byte.
        var bytes: [UInt8] = []
        for s in 0..<chain.readableCount {
            guard let host = segments[s].host else { continue }
            let n = min(Int(segments[s].length), 256 - bytes.count)
            bytes += UnsafeRawBufferPointer(start: host, count: max(n, 0))
        }
        var ackAt: UnsafeMutableRawPointer?
        for s in chain.readableCount..<chain.segmentCount where segments[s].length >= 1 {
            ackAt = segments[s].host
            break
        }
        let ack = apply(bytes)
        counters.commands += 1
        if ack != NetControl.ok { counters.refused += 1 }
        counters.last = Array(bytes.prefix(2))
        guard let ackAt else { return 0 }
        ackAt.storeBytes(of: ack, as: UInt8.self)
        return 1
    }

    /// Carries out one command; the ack says whether it was taken.
    func apply(_ b: [UInt8]) -> UInt8 {
        guard b.count >= 2 else { return NetControl.err }
        let data = Array(b.dropFirst(2))
        switch (b[0], b[1]) {
        case (NetControl.classMAC, NetControl.macAddressSet) where data.count == 6:
            do throws(MediationError) { try core.setConfig(offset: 0, bytes: data) } catch { return NetControl.err }
            return NetControl.ok
        case (NetControl.classMQ, NetControl.mqPairsSet) where data.count == 2:
            let pairs = Int(data[0]) | Int(data[1]) << 8
            let max = core.identity.queueCount / 2
            return pairs >= 1 && pairs <= max ? NetControl.ok : NetControl.err
        case (NetControl.classRX, 0...5) where data.count == 1:
            // Promiscuous, all-multicast and the other RX mode switches: taken, nothing to filter here.
            return NetControl.ok
        default:
            return NetControl.err
        }
    }

    mutating func completed(queue: Int, count: Int) {}
    mutating func interrupted(queue: Int) {}
    mutating func woke() {}
    /// Acquire: pairs with finish()'s release store.
    mutating func shouldStop() -> Bool { stop.load(ordering: .acquiring) }
}

/// The software worker serving the control queue on its own thread.
final class ControlQueueWorker: @unchecked Sendable {
    /// The worker's kick: the trapped CVQ kicks ring it.
    let kick: DoorbellEndpoint
    private let stop = ManagedAtomic<Bool>(false)
    private let result = ResultBox((ControlQueueCounters(), VDPAQueueState?.none, String?.none))
    private var thread: PinnedThread?

    /// Starts the worker over `ready` (the control queue) reaching memory through `memory`.
    init<Memory: DeviceMemory>(core: VDPADeviceCore, ready: ReadyQueue, memory: Memory, features: VirtioFeatures,
                               cpu: Int32?) throws(MediationError) {
        kick = try DeviceDoorbell.eventfd.makeEndpoint()
        // Without a callback the worker still answers; the driver polls for the ack.
        let transport = ready.callback?.transport ?? .eventfd
        do {
            thread = try withDeviceDoorbell(transport, ControlQueueStart(worker: self, core: core, ready: ready, memory: memory, features: features, cpu: cpu))
        } catch {
            throw mediationError(error)
        }
    }

    func spawn<D: VirtqueueDeviceHalf, C: DoorbellNotifier>(
        _ queue: DeviceQueue<D, C>, _ waiter: EventfdDoorbell.Waiter, _ core: VDPADeviceCore, _ cpu: Int32?,
        state: @escaping @Sendable (D) -> VDPAQueueState
    ) throws(DoorbellError) -> PinnedThread {
        let start = ResultBox((queue, waiter))
        let stop = self.stop
        let result = self.result
        return try PinnedThread(cpu: cpu, name: "cvq:" + String(core.identity.name.prefix(11))) {
            var (q, kick) = start.value
            var queues = [q]
            var service = ControlQueueService(core: core, stop: stop)
            let options = DeviceLoopOptions(batch: 8, sleeps: true, sleepNanoseconds: deviceStopCheckNanoseconds, timeoutIsLostKick: false)
            let error = runDeviceLoop(&queues, kick: &kick, options: options, service: &service)
            q = queues[0]
            result.value = (service.counters, state(q.device), error)
        }
    }

    /// Stops the worker: what it did, where the queue stopped, and why it stopped early if it did.
    func finish() -> (counters: ControlQueueCounters, state: VDPAQueueState?, error: String?) {
        stop.store(true, ordering: .releasing)
        try? ring(kick)
        thread?.join()
        thread = nil
        return result.value
    }
}

/// Starts a control-queue worker once its callback's transport is a type.
struct ControlQueueStart<M: DeviceMemory>: DeviceDoorbellVisitor {
    let worker: ControlQueueWorker
    let core: VDPADeviceCore
    let ready: ReadyQueue
    let memory: M
    let features: VirtioFeatures
    let cpu: Int32?
    func visit<B: EndpointDoorbell>(_ bell: B.Type) throws -> PinnedThread {
        let waiter = try EventfdDoorbell.waiter(on: worker.kick)
        let call = try ready.callback.map { e throws(DoorbellError) in try B.notifier(on: e) }
        if features.contains(.ringPacked) {
            let d = try ready.packedDevice(memory, features)
            return try worker.spawn(DeviceQueue(index: ready.index, device: d, call: call), waiter, core, cpu) { .packed($0.state) }
        }
        let d = try ready.splitDevice(memory, features)
        return try worker.spawn(DeviceQueue(index: ready.index, device: d, call: call), waiter, core, cpu) { .split($0.state) }
    }
}
