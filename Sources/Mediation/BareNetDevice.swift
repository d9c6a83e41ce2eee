// The reference every mediated scenario is divided by: the same virtio-net device loop on
// its own thread and the same driver loop, over the same rings with the same doorbells,
// but with nothing between them — no parent, no config ops, no bus, no translation beyond
// the ring memory itself, kicks straight onto the device's doorbell. A mediator's
// ratio to it is what the mediation costs, and nothing else.

import Doorbell
import Virtqueue
import VirtioMemory

public final class BareNetDevice<Bell: EndpointDoorbell>: @unchecked Sendable {
    public let counters = NetDeviceCounters()
    public let arena: QueueArena
    private var thread: NetDeviceThread<GuestMemory>?
    private let kick: DoorbellEndpoint
    private var splitQueue: DriverQueue<SplitDriver, Bell.Notifier, Bell.Waiter>?
    private var packedQueue: DriverQueue<PackedDriver, Bell.Notifier, Bell.Waiter>?

    /// The features the bindings negotiate with the parents, so the rings behave the same.
    public static var features: VirtioFeatures { [.version1, .indirectDescriptors, .eventIndex] }

    /// One transmit queue (virtio-net queue 1) with its device thread running on `deviceCPU`.
    public init(layout: RingLayoutKind, queueSize: Int, bufferSize: Int, policy: BackingPolicy,
                bell: Bell.Configuration, deviceCPU: Int32?, probe: DoorbellProbe = .current) throws {
        let queue: UInt16 = 1
        arena = try QueueArena(kind: layout, queueSize: queueSize, bufferSize: bufferSize, policy: policy)
        // The same endpoints and the same device-thread start as every parent's.
        let kick = try Bell.makeEndpoint(bell, probe: probe)
        self.kick = kick
        let call = try Bell.makeEndpoint(bell, probe: probe)
        let window = try QueueWindow(arena: arena, base: arena.ringGPA)
        var features = Self.features
        if layout == .packed { features.insert(.ringPacked) }
        thread = try launchNetDevice([ReadyQueue(index: queue, size: queueSize, addresses: window.addresses, state: nil, callback: call)],
                                     memory: arena.memory, features: features, kick: kick,
                                     behaviour: NetDeviceBehaviour(copiesPayload: false), cpu: deviceCPU, counters: counters,
                                     name: deviceThreadName("bare"))
        let kickN = try Bell.notifier(on: kick)
        let callW = try Bell.waiter(on: call)
        switch layout {
        case .split:
            splitQueue = try window.splitQueue(index: queue, features: features, kick: kickN, call: callW, interruptBypass: true)
        case .packed:
            packedQueue = try window.packedQueue(index: queue, features: features, kick: kickN, call: callW, interruptBypass: true)
        }
    }

    public func takeSplitQueue() -> DriverQueue<SplitDriver, Bell.Notifier, Bell.Waiter>? {
        defer { splitQueue = nil }
        return splitQueue
    }

    public func takePackedQueue() -> DriverQueue<PackedDriver, Bell.Notifier, Bell.Waiter>? {
        defer { packedQueue = nil }
        return packedQueue
    }

    /// Stops the device thread (ringing its kick doorbell, as a parent's stop does, so it
    /// need not sleep out its stop-check interval); returns why it stopped early, if it did.
    @discardableResult
    public func stop() -> String? {
        defer { thread = nil }
        return thread?.stop(wake: { [kick] in try? ring(kick) }).error
    }

    deinit { stop() }
}
