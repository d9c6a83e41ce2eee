// The vendor parents: each brought up through both bindings with a million checksummed
// packets each way, its own quirk asserted, and the faults every parent must survive.

import Atomics
import Doorbell
import Testing
import Virtqueue
import VirtioMemory
@testable import Mediation

/// Every registered parent and the layouts it runs.
let parentLayouts: [(String, RingLayoutKind)] = ParentRegistry.all.flatMap { p in p.layouts.map { (p.name, $0) } }
let vendorParentLayouts = parentLayouts.filter { !["vp_vdpa", "vdpa_sim"].contains($0.0) }

func makeParent(_ name: String, _ configure: (inout ParentConfiguration) -> Void = { _ in }) throws -> any VDPAConfigOps {
    var c = ParentConfiguration(name: "vdpa0", deviceCPU: 1)
    configure(&c)
    return try ParentRegistry.named(name).make(c)
}

/// Brings `device` up on the virtio binding with queues 0 and 1 and runs `body` on the
/// transmit queue (split).
func withSplitTX(_ device: any VDPAConfigOps, _ body: (inout VirtioQueue<SplitDriver, EventfdDoorbell>) throws -> Void) throws {
    let binding = try VirtioBinding<EventfdDoorbell>(device: device, bus: VDPABus(), layout: .split, queues: [0, 1], queueSize: 256,
                                                     callBell: ())
    defer { binding.unbind() }
    var tx = try #require(binding.takeSplitQueue(1))
    try body(&tx)
}

extension MediationSuites {
@Suite struct VendorParentTests {
    @Test(arguments: vendorParentLayouts.map { "\($0.0) \($0.1.rawValue)" })
    func vendorParentPassesAMillionPacketsEachWayOnVirtio(_ point: String) throws {
        let parts = point.split(separator: " ").map(String.init)
        let layout = try #require(RingLayoutKind(rawValue: parts[1]))
        let device = try makeParent(parts[0])
        let binding = try VirtioBinding<EventfdDoorbell>(device: device, bus: VDPABus(), layout: layout, queues: [0, 1], queueSize: 256,
                                                         callBell: ())
        try exerciseBothDirections(binding, counters: device.counters, packets: packetCount, layout: layout)
        binding.unbind()
        #expect(device.getStatus() == [])
    }

    @Test(arguments: vendorParentLayouts.map { "\($0.0) \($0.1.rawValue)" })
    func vendorParentPassesAMillionPacketsEachWayOnVhost(_ point: String) throws {
        let parts = point.split(separator: " ").map(String.init)
        let layout = try #require(RingLayoutKind(rawValue: parts[1]))
        let device = try makeParent(parts[0])
        let binding = try VhostBinding(device: device, bus: VDPABus())
        let report = try runVhostConsumer(binding, layout: layout, packets: packetCount)
        expectMillionEachWay(report, device.counters, packets: packetCount)
        binding.unbind()
    }

    /// Every parent the registry has is listed once, and its management device exists.
    @Test func theRegistryListsEveryParentOnce() throws {
        #expect(ParentRegistry.names == ["vp_vdpa", "vdpa_sim", "ifcvf", "eni_vdpa", "mlx5_vnet", "octeon_ep", "pds_vdpa", "snet"])
        #expect(Set(ParentRegistry.names).count == ParentRegistry.names.count)
        let tool = ParentManagementDevices.tool()
        #expect(tool.mgmtdevShow().map(\.name).sorted() == ParentRegistry.names.map { $0 + "_mgmt" }.sorted())
        for p in ParentRegistry.all {
            #expect(!p.strategy.isEmpty)
            for m in p.modelParameters { #expect(!m.source.isEmpty, "\(p.name).\(m.name) has no source") }
        }
        #expect(throws: MediationError.self) { _ = try ParentRegistry.named("acme_vdpa") }
    }

    // MARK: - Quirks

    @Test func eniRefusesAnyRingSizeButItsOwnPackedAndAModernLayout() throws {
        let eni = try makeParent("eni_vdpa")
        #expect(throws: MediationError.featureNotOffered(unoffered: VirtioFeatures.ringPacked.rawValue)) {
            _ = try VirtioBinding<EventfdDoorbell>(device: eni, bus: VDPABus(), layout: .packed, queues: [1], queueSize: 256, callBell: ())
        }
        #expect(throws: MediationError.invalidQueueSize(queue: 1, size: 512, max: 256)) {
            _ = try VirtioBinding<EventfdDoorbell>(device: eni, bus: VDPABus(), layout: .split, queues: [1], queueSize: 512, callBell: ())
        }
        // A ring laid out for a modern device (used ring aligned to 64) is refused by name.
        eni.reset()
        try eni.setStatus([.acknowledge, .driver])
        try eni.setDriverFeatures([.version1])
        try eni.setStatus([.acknowledge, .driver, .featuresOK])
        try eni.setVQNum(1, 256)
        let modern = try SplitLayout(queueSize: 256).addresses(at: 0x10_0000)
        do {
            try eni.setVQAddress(1, modern)
            Issue.record("a modern layout was accepted")
        } catch {
            guard case .ringLayoutRefused(queue: 1, parent: "eni_vdpa", _) = error else { throw error }
        }
        let legacy = try SplitLayout(queueSize: 256, usedAlignment: 4096).addresses(at: 0x10_0000)
        try eni.setVQAddress(1, legacy)
        eni.reset()
    }

    @Test func eniRelaysEveryKickToTheNotifyPort() throws {
        let eni = try #require(try makeParent("eni_vdpa") as? ENIVDPA)
        try withSplitTX(eni) { tx in
            #expect(!tx.kick.isPassthrough)
            let sent = tx.transmit(packets: 20_000, payloadBytes: 64, batch: 32)
            #expect(sent.errors == [] && sent.packets == 20_000)
            #expect(tx.kick.counters.notificationsSent > 0)
            #expect(UInt64(eni.notifyPortWrites) == tx.kick.counters.notificationsSent, "every kick trapped and relayed")
        }
    }

    @Test func octeonSelectWritesWaitForTheFirmwaresAcknowledgement() throws {
        let octeon = try #require(try makeParent("octeon_ep") as? OcteonEP)
        try withSplitTX(octeon) { tx in
            // set_vq_num, set_vq_address and set_vq_ready for each of the two queues.
            #expect(octeon.selectWrites == 6)
            #expect(octeon.firmware.counters.served["QUEUE_SELECT"] == octeon.selectWrites, "each select answered before the value write")
            #expect(octeon.firmware.counters.maxInFlight == 1)
            #expect(throws: MediationError.self) { try octeon.kickVQ(1) }
            #expect(throws: MediationError.self) { _ = try octeon.getVQIRQ(1) }
            let sent = tx.transmit(packets: 20_000, payloadBytes: 64, batch: 32)
            #expect(sent.errors == [] && sent.packets == 20_000)
        }
        // The shared vector's handler scanned both queues every time it ran.
        let h = octeon.interruptHandler
        #expect(h.vectorRaised > 0)
        #expect(h.queuesScanned == 2 * h.vectorRaised)
        #expect(h.callbacksRung == h.vectorRaised)
    }

    @Test func snetWritesItsConfigurationOnlyAtDriverOK() throws {
        let snet = try #require(try makeParent("snet") as? SNET)
        snet.reset()
        try snet.setStatus([.acknowledge, .driver])
        try snet.setDriverFeatures([.version1])
        try snet.setStatus([.acknowledge, .driver, .featuresOK])
        try snet.setVQNum(1, 256)
        try snet.setVQAddress(1, try SplitLayout(queueSize: 256).addresses(at: 0x10_0000))
        #expect(snet.firmware.counters.total == 0, "nothing reaches the DPU before DRIVER_OK")
        #expect(snet.cachedWrites >= 4)
        snet.reset()
        try withSplitTX(snet) { tx in
            #expect(snet.firmware.counters.served == ["SNET_WRITE_CONFIG": 1])
            // features (8) + queue count (2) + two queues × (index, size, three addresses).
            #expect(snet.lastBlob.count == 8 + 2 + 2 * (2 + 2 + 24))
            let sent = tx.transmit(packets: 20_000, payloadBytes: 64, batch: 32)
            #expect(sent.errors == [] && sent.packets == 20_000)
            #expect(UInt64(snet.kickRegisterWrites) == tx.kick.counters.notificationsSent)
            try snet.suspend()
            #expect(throws: MediationError.unsupportedOp(.resume, parent: "snet")) { try snet.resume() }
        }
    }

    @Test(arguments: [true, false])
    func mlx5SuspendsEveryQueueByFirmwareCommand(_ parallel: Bool) throws {
        let mlx5 = try #require(try makeParent("mlx5_vnet") { c in
            c.config = NetConfig(maxQueuePairs: 4)
            c.parallelFirmwareCommands = parallel
        } as? MLX5VNet)
        let queues: [UInt16] = Array(0..<8)
        let binding = try VirtioBinding<EventfdDoorbell>(device: mlx5, bus: VDPABus(), layout: .split, queues: queues, queueSize: 256,
                                                         callBell: ())
        defer { binding.unbind() }
        #expect(mlx5.virtqueueObjects == 8)
        #expect(mlx5.memoryKey.count == 8, "one region per queue arena in the key")
        var tx = try #require(binding.takeSplitQueue(1))
        #expect(tx.transmit(packets: 10_000, payloadBytes: 64, batch: 32).packets == 10_000)
        let before = mlx5.firmware.counters
        try mlx5.suspend()
        let after = mlx5.firmware.counters
        #expect(after.served["MODIFY_VIRTQ_SUSPEND"] == 8)
        // Parallel: all eight in flight at once; serial: one at a time.
        #expect(after.maxInFlight == (parallel ? 8 : 1))
        let modelled = after.modelledNanoseconds - before.modelledNanoseconds
        #expect(modelled == (parallel ? 1 : 8) * MLX5VNet.command.value, "parallel is one firmware round, serial eight")
        let state = try mlx5.getVQState(1)
        #expect(state == .split(SplitQueueState(lastAvailableIndex: 10_000, usedIndex: 10_000)))
        try mlx5.resume()
        #expect(tx.transmit(packets: 10_000, payloadBytes: 64, batch: 32).packets == 10_000)
        #expect(mlx5.counters.transmitted.load(ordering: .relaxed) == 20_000)
    }

    /// mlx5's control virtqueue is software: its kicks trap to a worker that carries out
    /// each command and writes the ack, while the data queues stay passed through.
    @Test func mlx5ControlQueueIsEmulatedInSoftware() throws {
        let mlx5 = try #require(try makeParent("mlx5_vnet") as? MLX5VNet)
        let cvq = mlx5.controlQueueIndex
        #expect(cvq == 2)
        let binding = try VirtioBinding<EventfdDoorbell>(
            device: mlx5, bus: VDPABus(), layout: .split, queues: [0, 1, cvq], queueSize: 64,
            wantedFeatures: [.version1, .eventIndex, .accessPlatform, .netControlQueue, .netControlMACAddress], callBell: ())
        defer { binding.unbind() }
        #expect(binding.features.contains(.netControlQueue))
        var control = try #require(binding.takeSplitQueue(cvq))
        var tx = try #require(binding.takeSplitQueue(1))
        #expect(!control.kick.isPassthrough && tx.kick.isPassthrough)
        /// Sends one command (class, command, data) and returns its ack.
        func command(_ bytes: [UInt8]) throws -> UInt8 {
            let request = control.bufferHosts[0], ack = control.bufferHosts[1]
            request.copyMemory(from: bytes, byteCount: bytes.count)
            ack.storeBytes(of: 0xAA, as: UInt8.self)
            let chain = [Buffer(address: control.bufferAddresses[0], length: UInt32(bytes.count)),
                         Buffer(address: control.bufferAddresses[1], length: 1, isWritable: true)]
            _ = try chain.withUnsafeBufferPointer { p throws(VirtqueueError) in try control.driver.post(p) }
            control.driver.publish()
            try control.kick.notify()
            for _ in 0..<2_000 {
                if let used = try control.driver.reclaim() {
                    #expect(used.length == 1)
                    return ack.load(as: UInt8.self)
                }
                _ = try control.call.wait(timeoutNanoseconds: 1_000_000)
            }
            Issue.record("no answer from the control queue")
            return 0xFF
        }
        let mac: [UInt8] = [0x02, 0xAB, 0xCD, 0xEF, 0x01, 0x23]
        #expect(try command([NetControl.classMAC, NetControl.macAddressSet] + mac) == NetControl.ok)
        #expect(try mlx5.getConfig(offset: 0, length: 6) == mac, "the MAC reached the device's config space")
        #expect(try command([NetControl.classMQ, NetControl.mqPairsSet, 1, 0]) == NetControl.ok)
        #expect(try command([NetControl.classMQ, NetControl.mqPairsSet, 2, 0]) == NetControl.err, "one queue pair only")
        #expect(try command([0x7F, 0]) == NetControl.err, "an unknown class is refused")
        #expect(mlx5.controlQueueKicks == 4)
        #expect(tx.transmit(packets: 10_000, payloadBytes: 64, batch: 32).packets == 10_000)
        binding.unbind()
        #expect(mlx5.controlQueueCommands.commands == 4 && mlx5.controlQueueCommands.refused == 2)
    }

    @Test func mlx5CompletionQueueCallbacksGoThroughTheHandler() throws {
        let mlx5 = try #require(try makeParent("mlx5_vnet") { $0.interrupts = .relayed(.pendingQueues) } as? MLX5VNet)
        try withSplitTX(mlx5) { tx in
            #expect(!tx.interruptBypass)
            let sent = tx.transmit(packets: 20_000, payloadBytes: 64, batch: 32)
            #expect(sent.errors == [] && sent.packets == 20_000)
        }
        let h = mlx5.interruptHandler
        #expect(h.vectorRaised > 0)
        #expect(h.queuesScanned == h.vectorRaised, "a CQ names its queue: no scan")
        #expect(h.callbacksRung == h.vectorRaised)
    }

    @Test func ifcvfFallsBackToASharedVectorWhenVectorsRunShort() throws {
        let ifcvf = try #require(try makeParent("ifcvf") { $0.interruptVectors = 1 } as? IFCVF)
        #expect(ifcvf.sharedVector)
        try withSplitTX(ifcvf) { tx in
            #expect(!tx.interruptBypass)
            #expect(throws: MediationError.self) { _ = try ifcvf.getVQIRQ(1) }
            let sent = tx.transmit(packets: 20_000, payloadBytes: 64, batch: 32)
            #expect(sent.errors == [] && sent.packets == 20_000)
            // The live-migration register says where the running queue is.
            let state = try ifcvf.getVQState(1)
            #expect(state == .split(SplitQueueState(lastAvailableIndex: UInt16(20_000 % 65_536), usedIndex: UInt16(20_000 % 65_536))))
        }
        #expect(ifcvf.interruptHandler.queuesScanned == 2 * ifcvf.interruptHandler.vectorRaised)
        let enough = try #require(try makeParent("ifcvf") as? IFCVF)
        let irq = try enough.getVQIRQ(1)
        #expect(!enough.sharedVector && irq == 2)
    }

    @Test func pdsReadsQueueStateOnlyWhileTheQueueIsDisabled() throws {
        let pds = try #require(try makeParent("pds_vdpa") as? PDSVDPA)
        try withSplitTX(pds) { _ in
            do {
                _ = try pds.getVQState(1)
                Issue.record("queue state read while the queue is enabled")
            } catch let e as MediationError {
                guard case .invalidQueueState(queue: 1, _) = e else { throw e }
            }
            // Every control op of the bring-up was an admin command.
            #expect(pds.firmware.counters.served["VDPA_VQ_INIT"] == 4)
            #expect(pds.firmware.counters.served["VDPA_VQ_ENABLE"] == 2)
        }
        let state = try pds.getVQState(1)
        #expect(state == .split(SplitQueueState()), "after reset the queue is disabled again")
    }

    // MARK: - Faults

    /// A firmware command that never completes: bring-up fails with the command named, the
    /// driver resets, and the next bring-up works.
    @Test(arguments: [("pds_vdpa", "VDPA_SET_STATUS"), ("snet", "SNET_WRITE_CONFIG"), ("octeon_ep", "QUEUE_SELECT"),
                      ("mlx5_vnet", "CREATE_VIRTQ")])
    func aFirmwareTimeoutIsATypedErrorAndResetRecovers(_ parent: String, _ command: String) throws {
        let device = try makeParent(parent) { $0.firmwareTimeoutNanoseconds = 50_000_000 }
        let firmware: FirmwareChannel = try #require(
            (device as? PDSVDPA)?.firmware ?? (device as? SNET)?.firmware ?? (device as? OcteonEP)?.firmware ?? (device as? MLX5VNet)?.firmware)
        firmware.dropNext(command)
        do {
            _ = try VirtioBinding<EventfdDoorbell>(device: device, bus: VDPABus(), layout: .split, queues: [0, 1], queueSize: 256,
                                                   callBell: ())
            Issue.record("bring-up passed with a dropped \(command)")
        } catch let e as MediationError {
            guard case .firmwareTimeout(command: command, parent: parent, _) = e else { throw e }
        }
        #expect(firmware.counters.timeouts == 1)
        try withSplitTX(device) { tx in
            let sent = tx.transmit(packets: 10_000, payloadBytes: 64, batch: 32)
            #expect(sent.errors == [] && sent.packets == 10_000)
        }
    }

    /// A device that sets NEEDS_RESET mid-traffic: the driver sees the typed error, resets,
    /// and every packet completed before the fault stays counted once.
    @Test(arguments: ParentRegistry.names)
    func aDeviceThatNeedsResetMidTrafficLosesNothingCompleted(_ parent: String) throws {
        let device = try makeParent(parent)
        let changes = ManagedAtomic<Int>(0)
        device.setConfigCallback { changes.wrappingIncrement(ordering: .relaxed) }
        try withSplitTX(device) { tx in
            let sent = tx.transmit(packets: 10_000, payloadBytes: 64, batch: 32)
            #expect(sent.packets == 10_000)
            device.injectNeedsReset(reason: "injected fault")
            #expect(changes.load(ordering: .relaxed) == 1, "the driver was told")
            #expect(device.getStatus().contains(.needsReset))
            #expect(device.needsResetError() == .deviceSetNeedsReset(device: "vdpa0", reason: "injected fault"))
        }
        #expect(device.needsResetError() == nil, "reset clears it")
        try withSplitTX(device) { tx in
            #expect(tx.transmit(packets: 10_000, payloadBytes: 64, batch: 32).packets == 10_000)
        }
        #expect(device.counters.transmitted.load(ordering: .relaxed) == 20_000)
    }
}
}
