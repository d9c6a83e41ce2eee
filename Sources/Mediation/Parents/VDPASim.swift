// vdpa_sim: the software reference parent. Differs from hardware parents in having no
// notify area (a kick is kick_vq, which queues work for the worker thread under a lock),
// translating every descriptor, indirect table and payload address through a software
// IOTLB (set_map / dma_map, editable while the device runs), copying each payload through a device-side buffer (vringh
// pull/push), raising interrupts by callback from the worker, and supporting get/set
// queue state, suspend and resume.
//
// Modelled: nothing. Every cost of this parent is a real code path on this machine
// (Linux's vdpa_sim is itself software); the worker-wakeup cost is the doorbell's own.

import Doorbell
import Virtqueue
import VirtioMemory

public final class VDPASim: VDPAConfigOps, @unchecked Sendable {
    public let core: VDPADeviceCore
    public let counters = NetDeviceCounters()
    public let deviceCPU: Int32?
    private var thread: NetDeviceThread<SoftwareIOTLBMemory>?
    /// IOTLB lookups that hit, summed over every device half that has stopped.
    public private(set) var iotlbHits: UInt64 = 0
    /// The IOTLB set_map / dma_map / dma_unmap edit, shared with the running device thread
    /// (edits apply while it runs, from its next lookup on).
    public let iotlb = SharedIOTLB()

    public static var parentName: String { "vdpa_sim" }
    public static var strategy: String {
        "the software reference: kicks trapped to a worker, every address through a software IOTLB, payloads copied"
    }
    public static var dmaModel: DMAModel { .onChip }
    public static var supportedOps: Set<ConfigOp> {
        ConfigOp.mandatory.union([.getVQState, .setVQState, .suspend, .resume, .setMap, .dmaMap, .dmaUnmap])
    }
    public static var modelParameters: [ModelParameter] { [] }

    public static var offeredFeatures: VirtioFeatures {
        VirtioFeatures([.version1, .indirectDescriptors, .eventIndex, .ringPacked, .accessPlatform]).union(NetConfig.netFeatures)
    }

    public init(_ c: ParentConfiguration) throws(MediationError) {
        core = try VDPADeviceCore(net: c, vendorID: 0, offered: Self.offeredFeatures)
        deviceCPU = c.deviceCPU
    }

    public func startDevice() throws(MediationError) {
        guard let physical = core.withState({ $0.physicalMemory }) else { throw .noAddressSpace(parent: Self.parentName) }
        thread = try core.startNetDevice(memory: SoftwareIOTLBMemory(following: iotlb, physical: physical),
                                         behaviour: NetDeviceBehaviour(copiesPayload: true), cpu: deviceCPU, counters: counters)
    }

    /// Why the device thread stopped by itself (a hostile ring, an unmapped address), one
    /// entry per stop; the queue then needs a reset, as virtio's NEEDS_RESET says.
    public private(set) var deviceErrors: [String] = []

    public func stopDevice() {
        guard let t = thread else { return }
        let stop = t.stop(wake: core.wakeForStop)
        if let e = stop.error { deviceErrors.append(e) }
        for m in stop.memories { iotlbHits &+= m.iotlb.hits }
        core.absorb(stop)
        thread = nil
    }

    /// kick_vq: queue the worker's work. Ignored (as Linux does) when the device is not
    /// running; the lock is the work queue's.
    public func kickVQ(_ queue: UInt16) throws(MediationError) { try core.ringKick(queue: queue, onlyWhenLive: true) }

    public func suspend() throws(MediationError) { try suspendByStopping() }
    public func resume() throws(MediationError) { try resumeByRestarting() }
    public func getVQState(_ queue: UInt16) throws(MediationError) -> VDPAQueueState { try stoppedQueueState(queue) }

    public func setVQState(_ queue: UInt16, _ state: VDPAQueueState) throws(MediationError) {
        try core.setQueueStateWhileStopped(queue, state)
    }

    public func setMap(_ mappings: [IOTLB.Mapping]) throws(MediationError) {
        try editIOTLB(.setMap) { (t) throws(MemoryError) in try t.setMap(mappings) }
    }

    public func dmaMap(_ mapping: IOTLB.Mapping) throws(MediationError) {
        try editIOTLB(.dmaMap) { (t) throws(MemoryError) in try t.map(mapping) }
    }

    public func dmaUnmap(iova: UInt64, size: UInt64) throws(MediationError) {
        try editIOTLB(.dmaUnmap) { (t) throws(MemoryError) in _ = try t.unmap(iova: iova, size: size) }
    }

    /// Edits the shared IOTLB — also while the device runs, as a vIOMMU does — and keeps the
    /// core's copy (what get-style inspection and migration read) equal to it.
    private func editIOTLB(_ op: ConfigOp, _ edit: (inout IOTLB) throws(MemoryError) -> Void) throws(MediationError) {
        try core.withState { (s) throws(MediationError) in
            do throws(MemoryError) { try iotlb.edit(edit) } catch { throw .mapping(error) }
            s.iotlb = iotlb.snapshot().iotlb
        }
    }
}
