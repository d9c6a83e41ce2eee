// The control path as figures: every lifecycle operation of each parent, timed over
// repetitions — mdev create → virtio bind and bring-up → traffic → unbind → remove;
// `vdpa dev add` → vhost bind and bring-up by messages → traffic → reset owner → unbind →
// `dev del`; a devlink port function's add / activate / deactivate / delete; and, where the
// parent has them, suspend, get/set queue state and resume. Traffic between bring-up and
// teardown proves each device really worked before its teardown is timed.

import CPlatform
import Doorbell
import Mediation
import Virtqueue

public enum LifecycleRun {
    /// One operation's times over the repetitions.
    public typealias Figure = ResultsDocument.ControlPathOperation

    /// Every parent, then the ones the suites also measure behind a shadow virtqueue (their
    /// bring-up, and suspend/resume through the relay for a parent that cannot suspend).
    public static var parents: [String] { ParentRegistry.names + Suite.shadowedParents.map(ParentRegistry.shadowedName) }
    static let trafficPackets = 10_000

    /// Runs every lifecycle `repetitions` times per parent; figures in parent, then first-seen operation order.
    public static func run(repetitions: Int, placement: ThreadPlacement, probe: DoorbellProbe = .current,
                           log: (String) -> Void = { _ in }) throws -> [Figure] {
        var samples: [String: [String: [Double]]] = [:]
        var order: [String: [String]] = [:]
        for parent in parents {
            var record = Recorder()
            let descriptor = try ParentRegistry.named(parent)
            let cpu = placement.deviceCPU
            for _ in 0..<max(repetitions, 1) {
                try cycle(descriptor, placement: placement, probe: probe, into: &record) { name, config, features throws(MediationError) in
                    try descriptor.make(ParentConfiguration(name: name, config: config, features: features.map { VirtioFeatures(rawValue: $0) },
                                                            deviceCPU: cpu, probe: probe))
                }
            }
            samples[parent] = record.samples
            order[parent] = record.order
            log("lifecycle: \(parent): \(record.order.count) operations × \(repetitions)")
        }
        var figures: [Figure] = []
        for parent in parents {
            for op in order[parent] ?? [] {
                let xs = (samples[parent]?[op] ?? []).sorted()
                guard !xs.isEmpty else { continue }
                figures.append(Figure(parent: parent, operation: op, count: xs.count, medianNs: quantile(sorted: xs, 0.5),
                                      p99Ns: quantile(sorted: xs, 0.99), minNs: xs[0], maxNs: xs[xs.count - 1]))
            }
        }
        return figures
    }

    struct Recorder {
        var samples: [String: [Double]] = [:]
        var order: [String] = []
        mutating func add(_ op: String, _ ns: UInt64) {
            if samples[op] == nil { order.append(op) }
            samples[op, default: []].append(Double(ns))
        }
        /// The modelled part of an operation (never added to its measured time), when it has one.
        mutating func addModelled(_ op: String, _ ns: Double) {
            if ns > 0 { add(op + " (modelled †)", UInt64(ns)) }
        }
        mutating func add(_ prefix: String, _ timings: [LifecycleTiming]) {
            for t in timings { add(prefix + t.operation, t.nanoseconds) }
        }
        mutating func time<T>(_ op: String, _ body: () throws -> T) rethrows -> T {
            let t0 = cplatform_monotonic_ns()
            let v = try body()
            add(op, cplatform_monotonic_ns() &- t0)
            return v
        }
    }

    /// One repetition of every lifecycle for one parent.
    static func cycle(_ descriptor: ParentDescriptor, placement: ThreadPlacement, probe: DoorbellProbe,
                      into record: inout Recorder, factory: @escaping DeviceFactory) throws {
        let parent = descriptor.name
        // mdev: GUID create, virtio binding, traffic, unbind, remove.
        let bus = VDPABus()
        let mdev = MdevParent(name: parent, bus: bus)
        mdev.register(MdevType(name: "\(parent)-net", classID: .net, maxInstances: 1), factory: factory)
        let guid = "6f1d0b9e-33c5-4a8e-9d71-0c2b5e7a4f10"
        let device = try mdev.create(type: "\(parent)-net", guid: guid)
        var modelled = device.modelledControlNanoseconds
        let binding = try VirtioBinding<EventfdDoorbell>(device: device, bus: bus, layout: .split, queues: [0, 1], queueSize: 256, callBell: (),
                                        probe: probe)
        record.add("virtio: ", binding.timings)
        record.addModelled("virtio: bring_up", device.modelledControlNanoseconds - modelled)
        var tx = binding.takeSplitQueue(1)!
        try expectTraffic(tx.transmit(packets: trafficPackets, payloadBytes: 64, batch: 32), parent, "virtio")
        // Suspend, queue state and resume, as far as the parent has them.
        let ops = descriptor.supportedOps
        if ops.contains(.suspend) {
            modelled = device.modelledControlNanoseconds
            try record.time("suspend") { try device.suspend() }
            record.addModelled("suspend", device.modelledControlNanoseconds - modelled)
            if ops.contains(.getVQState) {
                let state = try record.time("get_vq_state") { try device.getVQState(1) }
                if ops.contains(.setVQState) { try record.time("set_vq_state") { try device.setVQState(1, state) } }
            }
            if ops.contains(.resume) {
                try record.time("resume") { try device.resume() }
                try expectTraffic(tx.transmit(packets: trafficPackets, payloadBytes: 64, batch: 32), parent, "virtio after resume")
            }
        }
        binding.unbind()
        record.add("virtio: ", binding.timings.filter { $0.operation == "unbind" })
        try mdev.remove(guid: guid)
        record.add("", mdev.timings)

        // Management device: dev add, vhost binding brought up by a consumer thread, traffic, dev del.
        let tool = VDPATool(bus: bus)
        let mgmtdev = ManagementDevice(attributes: ManagementDeviceAttributes(name: "\(parent)_mgmt", supportedClasses: [.net],
                                                                              maxSupportedQueuePairs: 4, supportedFeatures: descriptor.offeredFeatures.rawValue),
                                       factory: factory)
        tool.register(mgmtdev)
        let added = try tool.devAdd(name: "vdpa0", mgmtdev: "\(parent)_mgmt")
        _ = try tool.devConfigShow(name: "vdpa0")
        let vhost = try VhostBinding(device: added, bus: bus)
        let vhostModelled = added.modelledControlNanoseconds
        let consumer = Slot((TrafficOutcome(), [LifecycleTiming](), String?.none))
        let thread = try PinnedThread(cpu: placement.driverCPU) {
            do {
                let frontend = try VhostFrontend<EventfdDoorbell>(binding: vhost, layout: .split, queues: [0, 1], queueSize: 256, callBell: (), probe: probe)
                var q = frontend.takeSplitQueue(1)!
                consumer.value.0 = q.transmit(packets: trafficPackets, payloadBytes: 64, batch: 32)
                frontend.close()
                consumer.value.1 = frontend.timings
            } catch {
                consumer.value.2 = "\(error)"
            }
        }
        thread.join()
        if let e = consumer.value.2 { throw RunnerError.runFailed(id: "lifecycle/\(parent)/vhost", errors: [e]) }
        try expectTraffic(consumer.value.0, parent, "vhost")
        vhost.unbind()
        record.add("vhost: ", consumer.value.1)
        record.addModelled("vhost: bring_up and reset_owner", added.modelledControlNanoseconds - vhostModelled)
        record.add("vhost: ", vhost.timings)
        try tool.devDel(name: "vdpa0")
        record.add("", tool.timings)

        // devlink port function exposing a management device (mlx5 SF / pds style).
        let devlink = DevlinkInstance(handle: "pci/0000:08:00.0", tool: VDPATool(bus: VDPABus()), template: mgmtdev)
        let port = devlink.portAdd(sfNumber: 88)
        try devlink.portFunctionSet(port.index, state: DevlinkInstance.FunctionState.active)
        try devlink.portFunctionSet(port.index, state: DevlinkInstance.FunctionState.inactive)
        try devlink.portDel(port.index)
        record.add("devlink: ", devlink.timings)
    }

    static func expectTraffic(_ t: TrafficOutcome, _ parent: String, _ phase: String) throws {
        guard t.errors.isEmpty, t.packets == trafficPackets else {
            throw RunnerError.runFailed(id: "lifecycle/\(parent)/\(phase)", errors: t.errors + ["\(t.packets) of \(trafficPackets) packets"])
        }
    }
}
