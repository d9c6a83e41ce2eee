// A scenario with a mediator: the parent's simulated device on the device CPU, bound to
// the virtio bus driver, our driver half on the driver CPU transmitting through it. The
// doorbell id picks the parent's device doorbell type here, once, so the loop is specialised.

import CPlatform
import Doorbell
import Histogram
import Mediation
import Virtqueue
import VirtioMemory

public enum MediatedRun {
    /// Mediators the runner can measure (the parent registry's), and the doorbells their devices can use.
    public static var mediators: [String] { ParentRegistry.mediatorNames }
    static let doorbells = DeviceDoorbell.ids

    public static func unavailability(mediator: String, doorbell: String) -> String? {
        guard mediators.contains(mediator) else { return "no parent named '\(mediator)' (known: \(mediators.joined(separator: ", ")))" }
        guard doorbells.contains(doorbell) else {
            return "mediator \(mediator) runs its device with one of \(doorbells.joined(separator: ", ")), not '\(doorbell)'"
        }
        return nil
    }

    /// The parent's model parameters, as results carry them.
    public static func modelled(_ mediator: String) -> [ScenarioResult.ModelledParameter] {
        let params = (try? ParentRegistry.named(mediator))?.modelParameters ?? []
        return params.map { .init(parameter: $0.name, value: $0.value, source: "\($0.unit); \($0.source)") }
    }

    struct Outcome {
        var datapath: DatapathOutcome
        var controlPath: [String: Double]
    }

    /// The one place a scenario's device doorbell id becomes a type (Mediation's
    /// ``DeviceDoorbell``), so everything below it is specialised for that type.
    static func withDeviceBell<V: DeviceDoorbellConfigurationVisitor>(_ doorbell: String, _ visitor: V) throws -> V.Output {
        try DeviceDoorbell(id: doorbell, hybridSpinNanoseconds: DoorbellDispatch.hybridSpinNanoseconds).visit(visitor)
    }

    struct Arguments {
        let id: ScenarioID, backing: MemoryBacking, descriptors: Int, mode: DatapathMode
        let placement: ThreadPlacement, probe: DoorbellProbe
    }

    struct MediatedVisitor: DeviceDoorbellConfigurationVisitor {
        typealias Output = Outcome
        let a: Arguments
        func visit<B: EndpointDoorbell>(_ bell: B.Type, _ configuration: B.Configuration) throws -> Outcome {
            try run(bell, configuration, a.id, a.backing, a.descriptors, a.mode, a.placement, a.probe)
        }
    }

    struct ReferenceVisitor: DeviceDoorbellConfigurationVisitor {
        typealias Output = DatapathOutcome
        let a: Arguments
        func visit<B: EndpointDoorbell>(_ bell: B.Type, _ configuration: B.Configuration) throws -> DatapathOutcome {
            try reference(bell, configuration, a.id, a.backing, a.descriptors, a.mode, a.placement, a.probe)
        }
    }

    static func run(_ id: ScenarioID, backing: MemoryBacking, descriptors: Int, mode: DatapathMode,
                    placement: ThreadPlacement, probe: DoorbellProbe) throws -> Outcome {
        try withDeviceBell(id.doorbell, MediatedVisitor(a: Arguments(id: id, backing: backing, descriptors: descriptors, mode: mode,
                                                                    placement: placement, probe: probe)))
    }

    /// The parent the scenario names, from the registry, its device on the scenario's doorbell;
    /// the driver's ends are of the same transport `B`.
    static func run<B: EndpointDoorbell>(_ bell: B.Type, _ configuration: B.Configuration, _ id: ScenarioID, _ backing: MemoryBacking,
                                         _ descriptors: Int, _ mode: DatapathMode, _ placement: ThreadPlacement,
                                         _ probe: DoorbellProbe) throws -> Outcome {
        guard let parent = try? ParentRegistry.named(id.mediator) else {
            throw ScenarioError.unknownValue(part: "mediator", value: id.mediator, known: ["none"] + mediators)
        }
        let kick = try DeviceDoorbell(id: id.doorbell, hybridSpinNanoseconds: DoorbellDispatch.hybridSpinNanoseconds)
        let device = try parent.make(ParentConfiguration(name: "vdpa0", kick: kick, deviceCPU: placement.deviceCPU, probe: probe))
        return try run(device, B.self, configuration, id, backing, descriptors, mode, placement, probe)
    }

    static func run<B: EndpointDoorbell>(_ device: any VDPAConfigOps, _ bell: B.Type, _ configuration: B.Configuration, _ id: ScenarioID,
                                         _ backing: MemoryBacking, _ descriptors: Int, _ mode: DatapathMode, _ placement: ThreadPlacement,
                                         _ probe: DoorbellProbe) throws -> Outcome {
        guard let layout = RingLayoutKind(rawValue: id.ringLayout) else {
            throw ScenarioError.unknownValue(part: "layout", value: id.ringLayout, known: RingLayoutKind.allCases.map(\.rawValue))
        }
        let traffic: TrafficOutcome
        var control: [String: Double] = [:]
        // Queue 1 is virtio-net's first transmit queue: the scenario is the TX direction.
        switch id.binding {
        case "vhost":
            let binding = try VhostBinding(device: device, bus: VDPABus())
            defer { binding.unbind() }
            let consumer = try consume(binding, B.self, configuration, id, layout, backing, descriptors, mode, placement, probe)
            traffic = consumer.traffic
            for t in binding.timings { control[t.operation, default: 0] += Double(t.nanoseconds) }
            for t in consumer.timings { control[t.operation] = Double(t.nanoseconds) }
        default:
            let binding = try VirtioBinding<B>(device: device, bus: VDPABus(), layout: layout, queues: [1], queueSize: id.queueSize,
                                            bufferSize: max(64, id.payloadBytes), callBell: configuration,
                                            policy: .require(backing), probe: probe)
            defer { binding.unbind() }
            switch layout {
            case .split: traffic = try drive(binding.takeSplitQueue(1)!, id, descriptors, mode, placement)
            case .packed: traffic = try drive(binding.takePackedQueue(1)!, id, descriptors, mode, placement)
            }
            for t in binding.timings { control[t.operation] = Double(t.nanoseconds) }
        }
        var out = outcome(traffic, mode)
        addDeviceSide(device.counters, to: &out)
        if let relay = device.shadowRelay { addRelay(relay, to: &out) }
        return Outcome(datapath: out, controlPath: control)
    }

    /// Interrupts, device-side system calls and device CPU come from the device thread
    /// (the driver's waiter only sees the interrupts it slept for).
    static func addDeviceSide(_ c: NetDeviceCounters, to out: inout DatapathOutcome) {
        // The device thread has stopped (unbind joined it), so these are final.
        out.call.notificationsSent = c.interrupts.load(ordering: .relaxed)
        out.call.syscalls &+= c.deviceSyscalls.load(ordering: .relaxed)
        out.deviceCPUNanoseconds = c.deviceCPUNanoseconds.load(ordering: .relaxed)
    }

    /// A shadow virtqueue: the driver's interrupts are the relay's, the relay's system calls
    /// count with the device side's, and what the relay did is kept apart (its CPU too).
    static func addRelay(_ r: ShadowRelayCounters, to out: inout DatapathOutcome) {
        out.call.notificationsSent = r.driverInterrupts
        out.call.syscalls &+= r.syscalls
        var t = DatapathOutcome.RelayTally()
        t.cpuNanoseconds = r.cpuNanoseconds
        t.translations = r.translations
        t.deviceKicks = r.deviceKicks
        t.driverInterrupts = r.driverInterrupts
        t.idlePasses = r.idlePasses
        t.syscalls = r.syscalls
        out.relay = t
    }

    static func outcome(_ traffic: TrafficOutcome, _ mode: DatapathMode) -> DatapathOutcome {
        var out = DatapathOutcome()
        out.descriptors = traffic.packets
        out.nanoseconds = traffic.nanoseconds
        out.driverCPUNanoseconds = traffic.driverCPUNanoseconds
        out.kick = traffic.kick
        out.call = traffic.call
        out.errors = traffic.errors
        if mode == .latency {
            var h = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
            for t in traffic.roundTrips { _ = h.record(t) }
            out.roundTrips = h
        }
        return out
    }

    /// The vhost consumer: bring-up by messages on a thread of its own on the driver CPU (as
    /// a VMM's main thread sends them), then the same driver loop on a fresh driver thread,
    /// as the virtio binding's (the guest's vCPU drives the rings, not the thread that sent
    /// the messages; a thread that just slept through firmware round trips would start the
    /// timed loop from another state than the virtio binding's, which this VM showed as a
    /// 5–15 % drop), then reset-owner.
    static func consume<B: EndpointDoorbell>(_ binding: VhostBinding, _ bell: B.Type, _ configuration: B.Configuration, _ id: ScenarioID,
                                          _ layout: RingLayoutKind, _ backing: MemoryBacking, _ descriptors: Int,
                                          _ mode: DatapathMode, _ placement: ThreadPlacement,
                                          _ probe: DoorbellProbe) throws -> (traffic: TrafficOutcome, timings: [LifecycleTiming]) {
        let slot = Slot((configuration, VhostFrontend<B>?.none, String?.none))
        let setup = try PinnedThread(cpu: placement.driverCPU) {
            do {
                slot.value.1 = try VhostFrontend<B>(binding: binding, layout: layout, queues: [1], queueSize: id.queueSize,
                                                    bufferSize: max(64, id.payloadBytes), callBell: slot.value.0,
                                                    policy: .require(backing), probe: probe)
            } catch {
                slot.value.2 = "\(error)"
            }
        }
        setup.join()
        guard let frontend = slot.value.1 else {
            throw RunnerError.runFailed(id: id.description, errors: ["vhost consumer: \(slot.value.2 ?? "no front end")"])
        }
        defer { frontend.close() }
        let traffic: TrafficOutcome
        switch layout {
        case .split: traffic = try drive(frontend.takeSplitQueue(1)!, id, descriptors, mode, placement)
        case .packed: traffic = try drive(frontend.takePackedQueue(1)!, id, descriptors, mode, placement)
        }
        return (traffic, frontend.timings)
    }

    /// The reference: the same device model and driver loop on bare rings with the same
    /// doorbell, no mediator (see ``BareNetDevice``).
    static func reference(_ id: ScenarioID, backing: MemoryBacking, descriptors: Int, mode: DatapathMode,
                          placement: ThreadPlacement, probe: DoorbellProbe) throws -> DatapathOutcome {
        try withDeviceBell(id.doorbell, ReferenceVisitor(a: Arguments(id: id, backing: backing, descriptors: descriptors, mode: mode,
                                                                     placement: placement, probe: probe)))
    }

    static func reference<B: EndpointDoorbell>(_ bell: B.Type, _ configuration: B.Configuration, _ id: ScenarioID, _ backing: MemoryBacking,
                                       _ descriptors: Int, _ mode: DatapathMode, _ placement: ThreadPlacement,
                                       _ probe: DoorbellProbe) throws -> DatapathOutcome {
        guard let layout = RingLayoutKind(rawValue: id.ringLayout) else {
            throw ScenarioError.unknownValue(part: "layout", value: id.ringLayout, known: RingLayoutKind.allCases.map(\.rawValue))
        }
        let device = try BareNetDevice<B>(layout: layout, queueSize: id.queueSize, bufferSize: max(64, id.payloadBytes),
                                          policy: .require(backing), bell: configuration, deviceCPU: placement.deviceCPU, probe: probe)
        let traffic: TrafficOutcome
        switch layout {
        case .split: traffic = try drive(device.takeSplitQueue()!, id, descriptors, mode, placement)
        case .packed: traffic = try drive(device.takePackedQueue()!, id, descriptors, mode, placement)
        }
        var out = outcome(traffic, mode)
        if let why = device.stop() { out.errors.append("device: \(why)") }
        addDeviceSide(device.counters, to: &out)
        return out
    }

    /// Runs the driver loop on the driver CPU.
    static func drive<D: VirtqueueDriverHalf, K: DoorbellNotifier, C: DoorbellWaiter>(
        _ queue: DriverQueue<D, K, C>, _ id: ScenarioID, _ descriptors: Int, _ mode: DatapathMode, _ placement: ThreadPlacement
    ) throws -> TrafficOutcome {
        let slot = Slot((queue, TrafficOutcome()))
        let thread = try PinnedThread(cpu: placement.driverCPU) {
            var q = slot.value.0
            slot.value.1 = q.transmit(packets: descriptors, payloadBytes: id.payloadBytes, batch: id.batch, latency: mode == .latency,
                                      stampsPayload: false)
        }
        thread.join()
        return slot.value.1
    }
}
