// The datapath half every hardware-like parent shares: its device thread (the one device
// loop, started through the core's dispatch point), and, when its interrupts do not bypass
// the mediator, the handler thread that relays them. A parent file says which memory its
// device reaches, whether it copies payloads and how interrupts leave it; this runs them.

import Doorbell
import Virtqueue
import VirtioMemory

/// How a parent's interrupts reach the driver.
public enum InterruptDelivery: Sendable, Equatable, CustomStringConvertible {
    /// The device signals the driver's callback itself (get_vq_irq answered).
    case bypass
    /// Through the parent's handler thread, routed as said.
    case relayed(InterruptRouting)
    public var description: String {
        switch self {
        case .bypass: "bypass"
        case let .relayed(r): r.rawValue
        }
    }
}

/// A parent's running device thread (and its interrupt handler, when interrupts do not bypass).
final class ParentDatapath<Memory: DeviceMemory>: @unchecked Sendable {
    private var thread: NetDeviceThread<Memory>?
    /// What the interrupt handler did over every run.
    let handled = InterruptHandlerTally()
    /// Why the device thread stopped by itself, one entry per stop.
    private(set) var errors: [String] = []

    /// The software control queue's worker, while it runs, and what it did over every run.
    private(set) var controlQueue: ControlQueueWorker?
    private(set) var controlCommands = ControlQueueCounters()
    private var controlIndex: UInt16?

    /// `softwareControlQueue`: this queue, if ready, is served by a software worker (its kicks
    /// trap to it), not by the device.
    func start(_ core: VDPADeviceCore, memory: Memory, behaviour: NetDeviceBehaviour, delivery: InterruptDelivery,
               cpu: Int32?, counters: NetDeviceCounters, softwareControlQueue: UInt16? = nil) throws(MediationError) {
        var behaviour = behaviour
        if case let .relayed(routing) = delivery {
            behaviour.routing = routing
            behaviour.handled = handled
        }
        var excluded: Set<UInt16> = []
        if let cvq = softwareControlQueue, let ready = core.readyQueue(cvq) {
            let features = core.withState { $0.machine.driverFeatures }
            controlQueue = try ControlQueueWorker(core: core, ready: ready, memory: memory, features: features, cpu: cpu)
            controlIndex = cvq
            excluded.insert(cvq)
        }
        do throws(MediationError) {
            thread = try core.startNetDevice(memory: memory, behaviour: behaviour, cpu: cpu, counters: counters, excluding: excluded)
        } catch {
            stopControlQueue(core)
            throw error
        }
    }

    /// Rings the control queue's worker (a trapped CVQ kick); false when none runs.
    func kickControlQueue() throws(MediationError) -> Bool {
        guard let w = controlQueue else { return false }
        try ring(w.kick)
        return true
    }

    private func stopControlQueue(_ core: VDPADeviceCore) {
        guard let w = controlQueue, let q = controlIndex else { return }
        let out = w.finish()
        controlCommands.commands += out.counters.commands
        controlCommands.refused += out.counters.refused
        if !out.counters.last.isEmpty { controlCommands.last = out.counters.last }
        if let st = out.state { core.keepState(q, st) }
        if let e = out.error { errors.append("control queue: " + e) }
        controlQueue = nil
    }

    /// Stops the device thread; the core takes back the queues' positions.
    func stop(_ core: VDPADeviceCore) {
        guard let t = thread else { return }
        let stop = t.stop(wake: core.wakeForStop)
        if let e = stop.error { errors.append(e) }
        core.absorb(stop)
        stopControlQueue(core)
        thread = nil
    }
}
