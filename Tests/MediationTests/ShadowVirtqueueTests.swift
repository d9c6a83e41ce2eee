// The shadow virtqueue over every parent: checksummed packets each way through the relay,
// on both layouts and both bindings, the relay's figures, suspend and resume mid-traffic
// with nothing lost, and the faults it must turn into typed errors.

import Atomics
import Glibc
import Doorbell
import Testing
import Virtqueue
import VirtioMemory
@testable import Mediation

/// Every parent behind a shadow virtqueue, with the layouts it runs.
let shadowedLayouts: [(String, RingLayoutKind)] = ParentRegistry.shadowed.flatMap { p in p.layouts.map { (p.name, $0) } }

func makeShadowed(_ name: String, kick: DeviceDoorbell) throws -> any VDPAConfigOps {
    try ParentRegistry.named(name).make(ParentConfiguration(name: "svq0", kick: kick, deviceCPU: 1))
}

extension MediationSuites {
@Suite struct ShadowVirtqueueTests {
    /// Every parent, both layouts, the relay polling (busy-poll): 10⁵ packets each way (the
    /// million-packet runs are the sleeping relay's and vhost's below), every payload byte
    /// checked on both sides, every buffer translated through the tree.
    @Test(arguments: shadowedLayouts.map { "\($0.0) \($0.1.rawValue)" })
    func everyParentBehindTheShadowVirtqueuePassesPacketsEachWay(_ point: String) throws {
        let packets = 100_000
        let parts = point.split(separator: " ").map(String.init)
        let layout = try #require(RingLayoutKind(rawValue: parts[1]))
        let device = try makeShadowed(parts[0], kick: .busyPoll)
        let relay = try #require(device.shadowRelay)
        let binding = try VirtioBinding<BusyPollDoorbell>(device: device, bus: VDPABus(), layout: layout, queues: [0, 1], queueSize: 256,
                                                          callBell: .allocated)
        try exerciseBothDirections(binding, counters: device.counters, packets: packets, layout: layout)
        binding.unbind()
        #expect(device.getStatus() == [])
        #expect(relay.chainsRelayed == UInt64(2 * packets))
        #expect(relay.usedRelayed == UInt64(2 * packets))
        #expect(relay.translations >= UInt64(2 * packets))
        #expect(relay.cpuNanoseconds > 0)
    }

    /// The relay sleeping on one eventfd (driver kicks and device interrupts), on the virtio binding.
    @Test(arguments: ["vp_vdpa+svq", "vdpa_sim+svq"].flatMap { n in RingLayoutKind.allCases.map { "\(n) \($0.rawValue)" } })
    func aSleepingRelayPassesAMillionPacketsEachWayOnVirtio(_ point: String) throws {
        let parts = point.split(separator: " ").map(String.init)
        let layout = try #require(RingLayoutKind(rawValue: parts[1]))
        let device = try makeShadowed(parts[0], kick: .eventfd)
        let relay = try #require(device.shadowRelay)
        let binding = try VirtioBinding<EventfdDoorbell>(device: device, bus: VDPABus(), layout: layout, queues: [0, 1], queueSize: 256,
                                                         callBell: ())
        try exerciseBothDirections(binding, counters: device.counters, packets: packetCount, layout: layout)
        binding.unbind()
        #expect(relay.usedRelayed == UInt64(2 * packetCount))
        // It slept, so the device's interrupts and the driver's kicks woke it: both counted.
        #expect(relay.deviceKicks > 0 && relay.driverInterrupts > 0 && relay.syscalls > 0)
    }

    /// The vhost binding (memory table, kick and call fds) in front of the shadow virtqueue.
    @Test(arguments: ["vp_vdpa+svq", "vdpa_sim+svq"].flatMap { n in RingLayoutKind.allCases.map { "\(n) \($0.rawValue)" } })
    func theShadowVirtqueuePassesAMillionPacketsEachWayOnVhost(_ point: String) throws {
        let parts = point.split(separator: " ").map(String.init)
        let layout = try #require(RingLayoutKind(rawValue: parts[1]))
        let device = try makeShadowed(parts[0], kick: .eventfd)
        let binding = try VhostBinding(device: device, bus: VDPABus())
        let report = try runVhostConsumer(binding, layout: layout, packets: packetCount)
        expectMillionEachWay(report, device.counters, packets: packetCount)
        binding.unbind()
        #expect(try #require(device.shadowRelay).usedRelayed == UInt64(2 * packetCount))
    }

    /// Suspend lands with chains in flight: the relay hands every one back before it stops,
    /// so the driver's queue position is whole; resume continues on new shadow rings and
    /// nothing is lost or seen twice (the device's checksum is the driver's).
    @Test(arguments: RingLayoutKind.allCases)
    func suspendAndResumeMidTrafficLoseNothing(_ layout: RingLayoutKind) throws {
        let device = try makeShadowed("vp_vdpa+svq", kick: .eventfd)
        let binding = try VirtioBinding<EventfdDoorbell>(device: device, bus: VDPABus(), layout: layout, queues: [0, 1], queueSize: 256,
                                                         callBell: ())
        defer { binding.unbind() }
        func run<D: VirtqueueDriverHalf>(_ tx: inout VirtioQueue<D, EventfdDoorbell>) throws {
            let first = tx.transmit(packets: 20_000, payloadBytes: 64, batch: 32)
            #expect(first.errors == [])
            var inFlight: UInt64 = 0
            for i in 0..<32 {
                tx.bufferHosts[i].storeBytes(of: UInt64(1 << 40 + i), as: UInt64.self)
                inFlight &+= payloadChecksum(tx.bufferHosts[i], 64)
                _ = try tx.driver.post(Buffer(address: tx.bufferAddresses[i], length: 64))
            }
            tx.driver.publish()
            #expect(tx.kickIfNeeded() == nil)
            try device.suspend()
            // A stopping relay pops nothing more, but every chain it had popped is used
            // before it stops: the driver's queue position is whole (used = available).
            var back = 0
            while try tx.driver.reclaim() != nil { back += 1 }
            let state = try device.getVQState(1)
            switch state {
            case let .split(st):
                #expect(st.usedIndex == st.lastAvailableIndex, "\(st)")
                #expect(st.usedIndex == UInt16(truncatingIfNeeded: 20_000 + back), "\(st), \(back) back")
            case let .packed(st):
                #expect(st.usedIndex == st.lastAvailableIndex && st.usedWrapCounter == st.availableWrapCounter, "\(st)")
                #expect(Int(st.usedIndex) == (20_000 + back) % 256, "\(st), \(back) back")
            }
            #expect(tx.driver.buffersInFlight == 32 - back)
            try device.resume()
            // The relay continues from the saved position: what was left available is used now.
            for _ in 0..<10_000 where tx.driver.buffersInFlight > 0 {
                if try tx.driver.reclaim() == nil { usleep(100) }
            }
            #expect(tx.driver.buffersInFlight == 0)
            let second = tx.transmit(packets: 20_000, payloadBytes: 64, batch: 32)
            #expect(second.errors == [])
            #expect(device.counters.transmitted.load(ordering: .relaxed) == 40_032)
            #expect(device.counters.transmitChecksum.load(ordering: .relaxed) == first.checksum &+ inFlight &+ second.checksum)
        }
        switch layout {
        case .split:
            var tx = try #require(binding.takeSplitQueue(1))
            try run(&tx)
        case .packed:
            var tx = try #require(binding.takePackedQueue(1))
            try run(&tx)
        }
    }

    /// With dirty logging on, the log after a stop is exactly the pages the device side
    /// wrote into the driver's memory: every receive buffer page whose bytes changed, none
    /// that did not, no transmit buffer page (the device only reads those), and nothing
    /// outside the rings; after a harvest, transmit-only traffic marks ring pages alone.
    @Test(arguments: RingLayoutKind.allCases)
    func theDirtyLogIsThePagesTheDeviceWrote(_ layout: RingLayoutKind) throws {
        let device = try makeShadowed("vp_vdpa+svq+log", kick: .eventfd)
        let svq = try #require(device as? ShadowVirtqueue<VPVDPA>)
        #expect(svq.logsDirtyPages)
        let binding = try VirtioBinding<EventfdDoorbell>(device: device, bus: VDPABus(), layout: layout, queues: [0, 1], queueSize: 256,
                                                         bufferSize: 2048, callBell: ())
        defer { binding.unbind() }
        func pages(_ address: UInt64, _ length: Int) -> Set<UInt64> {
            Set((address >> 12)...((address + UInt64(length) - 1) >> 12))
        }
        func check<D: VirtqueueDriverHalf>(_ rx: inout VirtioQueue<D, EventfdDoorbell>, _ tx: inout VirtioQueue<D, EventfdDoorbell>) throws {
            // The driver never writes its receive buffers: a byte that is not 0xAA afterwards was the device's.
            for h in rx.bufferHosts { h.initializeMemory(as: UInt8.self, repeating: 0xAA, count: rx.bufferSize) }
            let log = try #require(svq.dirtyLog)
            _ = log.harvest()
            #expect(tx.transmit(packets: 5_000, payloadBytes: 64, batch: 32).errors == [])
            // Fewer packets than buffers: some receive buffers are never written.
            #expect(rx.receive(packets: 100, batch: 16, expectedBytes: 64).errors == [])
            try device.suspend()
            let dirty = Set(log.harvest())
            var rxWritten: Set<UInt64> = [], rxAll: Set<UInt64> = [], txAll: Set<UInt64> = []
            for (i, h) in rx.bufferHosts.enumerated() {
                let p = pages(rx.bufferAddresses[i], rx.bufferSize)
                rxAll.formUnion(p)
                let bytes = UnsafeRawBufferPointer(start: h, count: rx.bufferSize)
                if bytes.contains(where: { $0 != 0xAA }) {
                    // Only the pages holding changed bytes (a 2 KiB buffer lies in one page here).
                    for (offset, b) in bytes.enumerated() where b != 0xAA { rxWritten.insert((rx.bufferAddresses[i] + UInt64(offset)) >> 12) }
                }
            }
            for (i, _) in tx.bufferHosts.enumerated() { txAll.formUnion(pages(tx.bufferAddresses[i], tx.bufferSize)) }
            var rings: Set<UInt64> = []
            for q: UInt16 in [0, 1] {
                let base = VirtioBinding<EventfdDoorbell>.iovaBase(q)
                let firstBuffer = (q == 0 ? rx.bufferAddresses : tx.bufferAddresses).min()!
                rings.formUnion(pages(base, Int(firstBuffer - base)))
            }
            #expect(!rxWritten.isEmpty && rxWritten != rxAll, "some receive buffers written, not all")
            #expect(dirty.intersection(rxAll) == rxWritten, "receive pages: logged \(dirty.intersection(rxAll).count), written \(rxWritten.count)")
            #expect(dirty.isDisjoint(with: txAll), "a transmit buffer page was logged")
            #expect(dirty.subtracting(rxAll).isSubset(of: rings), "a page outside the rings and buffers was logged")
            #expect(!dirty.intersection(rings).isEmpty, "the used rings were written")
            #expect(log.marksOutside == 0)

            // Logging stays on across suspend and resume; transmit alone dirties only ring pages.
            try device.resume()
            #expect(svq.dirtyLog === log)
            _ = log.harvest()
            #expect(tx.transmit(packets: 5_000, payloadBytes: 64, batch: 32).errors == [])
            try device.suspend()
            let second = Set(log.harvest())
            #expect(!second.isEmpty && second.isSubset(of: rings), "\(second.subtracting(rings).sorted())")
            try device.resume()
        }
        switch layout {
        case .split:
            var rx = try #require(binding.takeSplitQueue(0))
            var tx = try #require(binding.takeSplitQueue(1))
            try check(&rx, &tx)
        case .packed:
            var rx = try #require(binding.takePackedQueue(0))
            var tx = try #require(binding.takePackedQueue(1))
            try check(&rx, &tx)
        }
    }

    /// A receive chain of two writable segments: the packet spills from the first into the
    /// second, and the log holds both pages (as far as the used length reaches) and no other.
    @Test func aChainOfSeveralWritableSegmentsIsLoggedAsFarAsTheDeviceWrote() throws {
        let device = try makeShadowed("vp_vdpa+svq+log", kick: .eventfd)
        let svq = try #require(device as? ShadowVirtqueue<VPVDPA>)
        let binding = try VirtioBinding<EventfdDoorbell>(device: device, bus: VDPABus(), layout: .split, queues: [0, 1], queueSize: 256,
                                                         bufferSize: 2048, callBell: ())
        defer { binding.unbind() }
        var rx = try #require(binding.takeSplitQueue(0))
        let log = try #require(svq.dirtyLog)
        _ = log.harvest()
        // 32 bytes at the start of buffer 0, the rest in buffer 4 (two pages on): a 64-byte packet spans both.
        let first = rx.bufferAddresses[0], second = rx.bufferAddresses[4]
        let chain = [Buffer(address: first, length: 32, isWritable: true), Buffer(address: second, length: 2048, isWritable: true)]
        _ = try chain.withUnsafeBufferPointer { b throws(VirtqueueError) in try rx.driver.post(b) }
        rx.driver.publish()
        #expect(rx.kickIfNeeded() == nil)
        var used: UsedBuffer?
        for _ in 0..<2000 where used == nil {
            used = try rx.driver.reclaim()
            if used == nil { usleep(500) }
        }
        #expect(used?.length == 64)
        try device.suspend()
        let rxPages = Set(rx.bufferAddresses.map { $0 >> 12 })
        #expect(Set(log.harvest()).intersection(rxPages) == [first >> 12, second >> 12])
        try device.resume()
    }

    /// Logging switched on while the device runs (the relay drains and restarts) and off again:
    /// nothing lost, the device's checksum is the driver's.
    @Test func dirtyLoggingSwitchesOnAndOffWhileTheDeviceRuns() throws {
        let device = try makeShadowed("vdpa_sim+svq", kick: .busyPoll)
        let svq = try #require(device as? ShadowVirtqueue<VDPASim>)
        let binding = try VirtioBinding<BusyPollDoorbell>(device: device, bus: VDPABus(), layout: .split, queues: [0, 1], queueSize: 256,
                                                          callBell: .allocated)
        defer { binding.unbind() }
        var tx = try #require(binding.takeSplitQueue(1))
        #expect(svq.dirtyLog == nil)
        let first = tx.transmit(packets: 10_000, payloadBytes: 64, batch: 32)
        try svq.setDirtyLogging(true)
        let log = try #require(svq.dirtyLog)
        let second = tx.transmit(packets: 10_000, payloadBytes: 64, batch: 32)
        #expect(log.dirtyPageCount > 0)
        try svq.setDirtyLogging(false)
        #expect(svq.dirtyLog == nil)
        let third = tx.transmit(packets: 10_000, payloadBytes: 64, batch: 32)
        #expect(first.errors + second.errors + third.errors == [])
        #expect(device.counters.transmitted.load(ordering: .relaxed) == 30_000)
        #expect(device.counters.transmitChecksum.load(ordering: .relaxed) == first.checksum &+ second.checksum &+ third.checksum)
    }

    /// A driver buffer outside every region the driver mapped (so outside the IOVA tree,
    /// which covers exactly those): the relay's device half refuses the chain, the relay
    /// stops, the device sets NEEDS_RESET and says why; nothing reaches the parent.
    @Test func aBufferOutsideTheDriversMemoryStopsTheRelayWithATypedError() throws {
        let device = try makeShadowed("vdpa_sim+svq", kick: .eventfd)
        let binding = try VirtioBinding<EventfdDoorbell>(device: device, bus: VDPABus(), layout: .split, queues: [0, 1], queueSize: 256,
                                                         callBell: ())
        defer { binding.unbind() }
        var tx = try #require(binding.takeSplitQueue(1))
        _ = try tx.driver.post(Buffer(address: 0xDEAD_0000, length: 64))
        tx.driver.publish()
        #expect(tx.kickIfNeeded() == nil)
        var error: MediationError?
        for _ in 0..<2000 where error == nil {
            error = device.needsResetError()
            if error == nil { usleep(1000) }
        }
        guard case let .deviceSetNeedsReset(_, reason)? = error else {
            Issue.record("no NEEDS_RESET after a buffer outside the driver's memory")
            return
        }
        #expect(reason.contains("0xdead0000") && reason.contains("outside"), "\(reason)")
        #expect(device.counters.transmitted.load(ordering: .relaxed) == 0)
    }

    /// The relay waits on busy-poll or eventfd only: any other doorbell is refused when the
    /// device is made, naming the ones it takes.
    @Test func aDoorbellTheRelayCannotWaitOnIsATypedError() throws {
        #expect(throws: MediationError.unsupportedDeviceDoorbell(transport: "futex", supported: ["busy-poll", "eventfd"])) {
            _ = try makeShadowed("vp_vdpa+svq", kick: .futex)
        }
    }

    /// The shadowed parents are found by name, keep their parent's layouts and model
    /// parameters, and offer no feature the relay cannot carry.
    @Test func theRegistryHasEveryParentShadowed() throws {
        #expect(ParentRegistry.shadowed.map(\.name) == ParentRegistry.names.map { $0 + "+svq" })
        #expect(ParentRegistry.logged.map(\.name) == ParentRegistry.names.map { $0 + "+svq+log" })
        #expect(ParentRegistry.unlogged("mlx5_vnet+svq+log") == "mlx5_vnet+svq")
        #expect(ParentRegistry.unlogged("mlx5_vnet+svq") == nil)
        #expect(try ParentRegistry.named("snet+svq+log").name == "snet+svq+log")
        for (p, s) in zip(ParentRegistry.all, ParentRegistry.shadowed) {
            #expect(s.layouts == p.layouts)
            #expect(s.modelParameters.map(\.name) == p.modelParameters.map(\.name))
            #expect(s.offeredFeatures.isSubset(of: p.offeredFeatures))
            #expect(!s.offeredFeatures.contains(.inOrder) && !s.offeredFeatures.contains(.notificationData))
            #expect(try ParentRegistry.named(s.name).name == s.name)
        }
    }
}
}

/// The relay's single-thread loop (what `vqbench svq-cost` counts): every buffer comes back
/// with the device's packet in it, and the logged loop's log holds exactly the buffers'
/// pages and the driver ring's page.
@Suite struct ShadowRelayWorkloadTests {
    @Test(arguments: RingLayoutKind.allCases)
    func theRelayLoopMovesEveryBufferAndLogsItsPages(_ layout: RingLayoutKind) throws {
        func check<D, G, S, V>(_ b: inout ShadowRelayBench<D, G, S, V>, _ loop: (inout ShadowRelayBench<D, G, S, V>) throws -> Int,
                               logged: Bool) throws {
            // 10 rounds of 32 from a ring of 256: buffers 0 ..< 320 mod 256, so every buffer once at least.
            #expect(try loop(&b) == 320)
            let pages = Set(b.log.harvest())
            guard logged else {
                #expect(pages.isEmpty)
                return
            }
            let bufferPages = Set(b.addresses.map { $0 >> 12 })
            #expect(bufferPages.isSubset(of: pages))
            let ringPages = pages.subtracting(bufferPages)
            #expect(ringPages.count == 1, "\(ringPages.sorted())")
            #expect(ringPages.first == b.arena.ringGPA >> 12 || ringPages.first == (b.arena.ringGPA + 4096) >> 12)
        }
        for logged in [false, true] {
            switch layout {
            case .split:
                var b = try ShadowRelayWorkload.split()
                defer { b.deallocate() }
                try check(&b, { try logged ? ShadowRelayWorkload.splitLoggedLoop(&$0, rounds: 10, batch: 32)
                                : ShadowRelayWorkload.splitLoop(&$0, rounds: 10, batch: 32) }, logged: logged)
            case .packed:
                var b = try ShadowRelayWorkload.packed()
                defer { b.deallocate() }
                try check(&b, { try logged ? ShadowRelayWorkload.packedLoggedLoop(&$0, rounds: 10, batch: 32)
                                : ShadowRelayWorkload.packedLoop(&$0, rounds: 10, batch: 32) }, logged: logged)
            }
        }
    }
}
