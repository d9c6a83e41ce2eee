// Live migration of a device under a vhost consumer, as QEMU moves a vhost-vdpa device at
// the end of a migration (the stop-and-copy phase): with the guest's vCPUs stopped, the
// source device is suspended and each queue's position (VHOST_GET_VRING_BASE) and the
// config space are saved; the source is released; a device of the same or another parent
// is brought up on the same guest memory with the saved positions (VHOST_SET_VRING_BASE),
// the same kick eventfds and call doorbells, and started; the guest goes on. Buffers the
// guest had posted and the source had not consumed are the destination's to complete.
//
// A parent that cannot suspend its queues has no consistent position to save while buffers
// are in flight; QEMU migrates such a device behind the shadow virtqueue, and so must the
// caller here (a source without suspend is `MediationError.migrationNeedsSuspend`).

import CPlatform
import Doorbell
import Virtqueue
import VirtioMemory

/// One step of a migration: its measured time, and the modelled part the parents added
/// (firmware service, register flights; never inside `nanoseconds`).
public struct MigrationStep: Sendable, Equatable {
    public var name: String
    public var nanoseconds: UInt64
    public var modelledNanoseconds: Double
    public init(name: String, nanoseconds: UInt64, modelledNanoseconds: Double) {
        self.name = name
        self.nanoseconds = nanoseconds
        self.modelledNanoseconds = modelledNanoseconds
    }
}

/// What a migration did and carried.
public struct MigrationRecord: Sendable {
    public var source: String
    public var destination: String
    /// In order: suspend, save, (stop_and_copy,) check_destination, release_source, negotiate, map, restore, resume.
    public var steps: [MigrationStep] = []
    /// Each queue's position as the source left it.
    public var states: [UInt16: VDPAQueueState] = [:]
    /// The source's config space, written to the destination before DRIVER_OK.
    public var config: [UInt8] = []
    /// The destination's config space after it started (equal to `config` when carried).
    public var destinationConfig: [UInt8] = []

    public init(source: String, destination: String) {
        self.source = source
        self.destination = destination
    }

    public func step(_ name: String) -> MigrationStep? { steps.first { $0.name == name } }
    /// Suspend to resume, measured.
    public var controlNanoseconds: UInt64 { steps.reduce(0) { $0 &+ $1.nanoseconds } }
    public var modelledNanoseconds: Double { steps.reduce(0) { $0 + $1.modelledNanoseconds } }
}

extension VhostFrontend {
    /// The config space of a virtio-net device (``NetConfig/bytes``).
    static var netConfigBytes: Int { NetConfig().bytes.count }

    /// Moves the device to `destination` (a fresh binding of a parent instance that has no
    /// owner yet), with the guest stopped: nothing may drive the queues while this runs.
    /// Returns the record and each queue's kick as the guest must now send it (the
    /// destination's notify area when it maps one, else the same kick eventfd); interrupts
    /// keep coming on the guest's own call doorbells. Everything the destination can be
    /// checked for (features, queue size, taking the saved positions) is checked before the
    /// source is released; on an error there the source is resumed and stays the
    /// frontend's device. An error after the release (a firmware fault) leaves the guest
    /// without a device, as a failed destination is discarded: the caller resets.
    /// `stopAndCopy` runs, timed as its own step, once the source is suspended and saved: a
    /// migration's last harvest of the dirty log and copy of those pages.
    public func migrate(to destination: VhostBinding, stopAndCopy: (() -> Void)? = nil)
        throws(MediationError) -> (record: MigrationRecord, kicks: [UInt16: VhostKick<B.Notifier>]) {
        let source = binding
        let sourceName = type(of: source.device).parentName
        let destinationName = type(of: destination.device).parentName
        var record = MigrationRecord(source: sourceName, destination: destinationName)
        func step<T>(_ name: String, _ body: () throws(MediationError) -> T) throws(MediationError) -> T {
            let m0 = source.device.modelledControlNanoseconds + destination.device.modelledControlNanoseconds
            let t0 = cplatform_monotonic_ns()
            let value = try body()
            let ns = cplatform_monotonic_ns() &- t0
            let modelled = source.device.modelledControlNanoseconds + destination.device.modelledControlNanoseconds - m0
            record.steps.append(MigrationStep(name: name, nanoseconds: ns, modelledNanoseconds: modelled))
            return value
        }

        guard type(of: source.device).supportedOps.contains(.suspend) else { throw .migrationNeedsSuspend(parent: sourceName) }
        try step("suspend") { () throws(MediationError) in try source.handle(.suspend) }
        do {
            try step("save") { () throws(MediationError) in
                for q in queueIndices {
                    guard case let .vringBase(state) = try source.handle(.getVringBase(queue: q)) else {
                        throw .deviceThread(reason: "VHOST_GET_VRING_BASE of queue \(q) gave no state")
                    }
                    record.states[q] = state
                }
                guard case let .bytes(config) = try source.handle(.getConfig(offset: 0, length: Self.netConfigBytes)) else {
                    throw .deviceThread(reason: "VHOST_VDPA_GET_CONFIG gave no bytes")
                }
                record.config = config
            }
            if let stopAndCopy { try step("stop_and_copy") { () throws(MediationError) in stopAndCopy() } }
            // The destination must be able to run what the guest negotiated, checked before
            // the source is given up.
            try step("check_destination") { () throws(MediationError) in
                try destination.handle(.setOwner)
                guard case let .features(offered) = try destination.handle(.getFeatures) else {
                    throw .deviceThread(reason: "VHOST_GET_FEATURES gave no features")
                }
                let missing = features.subtracting(offered)
                guard missing.isEmpty else { throw .migrationFeaturesMissing(destination: destinationName, missing: missing.rawValue) }
                guard case let .value(maxSize) = try destination.handle(.getVringNumMax), Int(maxSize) >= queueSize else {
                    throw .invalidQueueSize(queue: queueIndices.first ?? 0, size: queueSize, max: destination.device.getVQNumMax())
                }
                let parent = type(of: destination.device)
                if !parent.restoresQueueState {
                    for q in queueIndices where record.states[q] != .split(SplitQueueState()) && record.states[q] != .packed(PackedQueueState()) {
                        throw .migrationCannotRestore(destination: destinationName, queue: q)
                    }
                }
            }
        } catch {
            _ = try? destination.handle(.resetOwner)
            _ = try? source.handle(.resume)
            throw error
        }
        // The source is done: VHOST_RESET_OWNER stops it, removes its polls on the kick fds
        // and unmaps its view of guest memory.
        try step("release_source") { () throws(MediationError) in try source.handle(.resetOwner) }
        binding = destination

        var kicks: [UInt16: VhostKick<B.Notifier>] = [:]
        do {
            try step("negotiate") { () throws(MediationError) in
                try destination.handle(.setStatus([]))
                try destination.handle(.setStatus(.acknowledge))
                try destination.handle(.setStatus([.acknowledge, .driver]))
                try destination.handle(.setFeatures(features))
                try destination.handle(.setStatus([.acknowledge, .driver, .featuresOK]))
                guard case let .status(s) = try destination.handle(.getStatus), s.contains(.featuresOK) else {
                    throw .featuresRefused(driverFeatures: features.rawValue)
                }
            }
            try step("map") { () throws(MediationError) in try destination.handle(.setMemTable(memoryTable)) }
            try step("restore") { () throws(MediationError) in
                let supportedOps = type(of: destination.device).supportedOps
                var area: DoorbellEndpoint?
                if supportedOps.contains(.getVQNotification), let first = queueIndices.first(where: destination.device.kicksPassThrough),
                   case let .notification(mapped) = try destination.handle(.getVringNotification(queue: first)) {
                    area = mapped
                }
                for q in queueIndices {
                    let arena = arenas[q]!
                    let window: QueueWindow
                    do throws(VirtqueueError) { window = try QueueWindow(arena: arena, base: Self.guestBase(q)) } catch { throw .ring(error) }
                    try destination.handle(.setVringNum(queue: q, size: queueSize))
                    try destination.handle(.setVringBase(queue: q, record.states[q]!))
                    try destination.handle(.setVringAddr(queue: q, window.addresses))
                    var kick: VhostKick<B.Notifier>
                    if let area, destination.device.kicksPassThrough(queue: q) {
                        do throws(DoorbellError) { kick = VhostKick(mapped: try B.notifier(on: area), eventfd: nil) } catch { throw .doorbell(error) }
                    } else {
                        let writer: WakeupEventfd.Notifier
                        if let existing = kickWriters[q] {
                            writer = existing.anotherWriter()
                        } else {
                            // The source took kicks on its notify area: the guest gets a kick eventfd now.
                            do throws(DoorbellError) { writer = try WakeupEventfd.make(probe: probe) } catch { throw .doorbell(error) }
                            kickWriters[q] = writer.anotherWriter()
                        }
                        try destination.handle(.setVringKick(queue: q, fd: writer.fd))
                        kick = VhostKick(mapped: nil, eventfd: writer)
                    }
                    kicks[q] = kick
                    try destination.handle(.setVringCall(queue: q, callEndpoints[q]))
                    try destination.handle(.setVringEnable(queue: q, true))
                }
                try destination.handle(.setConfig(offset: 0, bytes: record.config))
            }
            try step("resume") { () throws(MediationError) in
                try destination.handle(.setStatus([.acknowledge, .driver, .featuresOK, .driverOK]))
                // A kick for each queue: the source may have taken the guest's last kick for
                // buffers it never consumed, and a device need not look at its available ring
                // until it is kicked (ours look when they start; a spurious kick is harmless).
                for q in queueIndices {
                    do throws(DoorbellError) { try kicks[q]!.notify() } catch { throw .doorbell(error) }
                }
            }
            if case let .bytes(b) = try destination.handle(.getConfig(offset: 0, length: Self.netConfigBytes)) {
                record.destinationConfig = b
            }
        } catch {
            _ = try? destination.handle(.resetOwner)
            throw error
        }
        return (record, kicks)
    }
}

extension DriverQueue {
    /// Posts `count` stamped buffers of `payloadBytes` from buffer slot 0 (every earlier
    /// buffer must be back), publishes them and, with `kicks`, kicks as suppression says:
    /// the guest's last act before its vCPU stops (without the kick: the vCPU stopped between
    /// its index write and its doorbell write). Returns the sum of their payloads' checksums.
    public mutating func postInFlight(count: Int, payloadBytes: Int, firstSequence: UInt64, kicks: Bool = true) -> (checksum: UInt64, error: String?) {
        let length = UInt32(min(payloadBytes, bufferSize))
        var checksum: UInt64 = 0
        do throws(VirtqueueError) {
            for i in 0..<min(count, bufferAddresses.count) {
                let host = bufferHosts[i]
                host.storeBytes(of: firstSequence &+ UInt64(i), as: UInt64.self)
                checksum &+= payloadChecksum(host, Int(length))
                _ = try driver.post(Buffer(address: bufferAddresses[i], length: length))
            }
        } catch {
            return (checksum, "queue \(index): driver: \(error)")
        }
        driver.publish()
        return (checksum, kicks ? kickIfNeeded() : nil)
    }

    /// Reclaims every buffer in flight, waiting on the interrupt: returns how many came back,
    /// when the `mark`-th of them did (monotonic ns; nil if fewer came back), or why it stopped.
    public mutating func drainInFlight(mark: Int = 1) -> (reclaimed: Int, markedAt: UInt64?, error: String?) {
        var reclaimed = 0
        var markedAt: UInt64?
        driver.disableInterrupts()
        do throws(VirtqueueError) {
            while driver.buffersInFlight > 0 {
                var got = 0
                while try driver.reclaim() != nil {
                    got &+= 1
                    if reclaimed &+ got == mark { markedAt = cplatform_monotonic_ns() }
                }
                reclaimed &+= got
                if got == 0, let e = awaitUsed() { return (reclaimed, markedAt, e) }
            }
        } catch {
            return (reclaimed, markedAt, "queue \(index): driver: \(error)")
        }
        return (reclaimed, markedAt, nil)
    }

    /// Posts `count` receive buffers from buffer slot 0 (every earlier buffer must be back),
    /// publishes them and, with `kicks`, kicks: the receive side of the guest's last act.
    public mutating func postReceiveInFlight(count: Int, kicks: Bool = true) -> String? {
        do throws(VirtqueueError) {
            for i in 0..<min(count, bufferAddresses.count) {
                _ = try driver.post(Buffer(address: bufferAddresses[i], length: UInt32(bufferSize), isWritable: true))
            }
        } catch {
            return "queue \(index): driver: \(error)"
        }
        driver.publish()
        return kicks ? kickIfNeeded() : nil
    }

    /// Reclaims every receive buffer in flight (posted from slot 0, in order), checking the
    /// `i`-th packet back against sequence number `sequence(i)` and `expectedBytes`: returns
    /// how many came back, or the first packet that was wrong.
    public mutating func drainReceived(expectedBytes: Int, sequence: (Int) -> UInt64) -> (reclaimed: Int, error: String?) {
        var reclaimed = 0
        driver.disableInterrupts()
        do throws(VirtqueueError) {
            while driver.buffersInFlight > 0 {
                var got = 0
                while let used = try driver.reclaim() {
                    let i = reclaimed &+ got
                    if let e = Self.check(bufferHosts[i % bufferHosts.count], used.length, sequence(i), expectedBytes) {
                        return (i, "queue \(index): receive buffer \(i) back after the stop: \(e), expected packet \(sequence(i))")
                    }
                    got &+= 1
                }
                reclaimed &+= got
                if got == 0, let e = awaitUsed() { return (reclaimed, e) }
            }
        } catch {
            return (reclaimed, "queue \(index): driver: \(error)")
        }
        return (reclaimed, nil)
    }
}
