// A live migration under traffic, measured: a vhost consumer (the VMM) transmits numbered,
// checksummed packets through a device of one parent, posts a last burst and stops its
// "vCPU" with those buffers in flight, migrates the device to a fresh instance of another
// (or the same) parent, and goes on transmitting through the destination. The guest's
// thread runs the migration itself while it is stopped (QEMU's migration thread, with the
// vCPUs paused), so nothing else drives the queues meanwhile.
//
// Downtime is what the guest sees: from its stop (its last kick) to the first buffer the
// destination completes. Nothing may be lost or duplicated: every packet the guest posted is
// consumed by exactly one of the two devices (counts and payload checksums must add up) and
// comes back to the guest exactly once, in order.

import Atomics
import CPlatform
import Doorbell
import Glibc
import Mediation
import Virtqueue
import VirtioMemory

public enum MigrationRun {
    public struct Options: Sendable {
        public var from: String
        public var to: String
        public var layout: RingLayoutKind
        public var queueSize = 256
        /// Packets transmitted through the source before the stop, and through the destination after.
        public var packetsBefore = 100_000
        public var packetsAfter = 100_000
        /// Buffers posted as the guest's last act before it stops (at most the queue size).
        public var inFlight = 256
        /// Whether the guest kicks for its last burst before it stops (false: it stopped
        /// between publishing and kicking, so only the destination's first kick makes
        /// anyone look at those buffers).
        public var kicksLastBurst = true
        /// Pre-copy: rounds of dirty-log harvest and page copy while the guest goes on
        /// receiving, before the stop (0: none); the last harvest is the stop-and-copy step.
        /// Needs a source that keeps a dirty log (one behind its shadow virtqueue).
        public var precopyRounds = 0
        public var precopyIntervalMicroseconds: UInt32 = 2_000
        public var payloadBytes = 64
        public var batch = 32
        public var placement: ThreadPlacement = .current()
        public var probe: DoorbellProbe = .current
        public init(from: String, to: String, layout: RingLayoutKind) {
            self.from = from
            self.to = to
            self.layout = layout
        }
    }

    /// What one migration showed.
    public struct Outcome: Sendable {
        public var options: Options
        public var record = MigrationRecord(source: "", destination: "")
        /// Packets the guest posted, in all.
        public var sent = 0
        /// Packets the guest got back, in all.
        public var reclaimed = 0
        /// Consumed by each device (its transmit counter).
        public var bySource: UInt64 = 0
        public var byDestination: UInt64 = 0
        /// Of the buffers in flight at the stop, those the source had not consumed: the
        /// destination's to complete.
        public var carriedOver = 0
        /// The guest's stop → the destination's first completion back at the guest.
        public var downtimeNanoseconds: UInt64 = 0
        /// The sum of the payload checksums of every packet the guest posted.
        public var guestChecksum: UInt64 = 0
        /// Whether the devices' payload checksums add up to the guest's.
        public var checksumsAgree = false
        public var configCarried = false
        public var beforePacketsPerSecond = 0.0
        public var afterPacketsPerSecond = 0.0
        public var errors: [String] = []
        /// Why the migration was refused before the source was released (the guest then
        /// went on through the source; nothing may be lost either way).
        public var refusal: String?
        /// The receive direction: packets the devices wrote into the guest's buffers, each
        /// checked by the guest (number and every byte), across the same migration.
        public var receivedBySource: UInt64 = 0
        public var receivedByDestination: UInt64 = 0
        /// Receive buffers the guest posted, and got back checked.
        public var receivePosted = 0
        public var receiveReclaimed = 0
        /// Of the receive buffers in flight at the stop, those the destination filled.
        public var receiveCarriedOver = 0
        /// Each pre-copy round: pages found dirty (and copied), and the harvest and copy's time.
        public var precopy: [(pages: Int, nanoseconds: UInt64)] = []
        /// Pages dirty at the stop, copied in the stop_and_copy step.
        public var finalDirtyPages = 0
        /// Why no pre-copy ran although asked for (a source without a dirty log).
        public var precopyRefusal: String?

        public var lost: Int { max(0, sent - Int(bySource + byDestination)) }
        public var duplicated: Int { max(0, Int(bySource + byDestination) - sent) }
        /// Receive buffers posted and never filled or filled twice (each buffer holds one packet).
        public var receiveLost: Int { max(0, receivePosted - Int(receivedBySource + receivedByDestination)) }
        public var receiveDuplicated: Int { max(0, Int(receivedBySource + receivedByDestination) - receivePosted) }
        /// Nothing lost or duplicated either way, and every buffer back at the guest.
        public var intact: Bool {
            errors.isEmpty && lost == 0 && duplicated == 0 && checksumsAgree && reclaimed == sent
                && receiveLost == 0 && receiveDuplicated == 0 && receiveReclaimed == receivePosted
        }
        /// The device moved, with its config, and nothing was lost or duplicated.
        public var ok: Bool { intact && refusal == nil && configCarried }
    }

    /// The parents a migration matrix covers (issue: vdpa_sim, mlx5_vnet, ifcvf, vp_vdpa via SVQ).
    public static let matrixParents = ["vdpa_sim", "mlx5_vnet", "ifcvf", "vp_vdpa"]

    /// The parent a source runs as: itself when it can suspend, else behind its shadow
    /// virtqueue from the start (QEMU's x-svq), the only way it can be migrated.
    public static func sourceParent(_ name: String) throws -> String {
        let d = try ParentRegistry.named(name)
        return d.supportedOps.contains(.suspend) ? name : ParentRegistry.shadowedName(name)
    }

    /// The parent a destination runs as: itself when its set_vq_state takes any position,
    /// else behind its shadow virtqueue (the relay restores the driver's position; the
    /// parent's own rings start from their initial state).
    public static func destinationParent(_ name: String) throws -> String {
        try ParentRegistry.named(name).restoresQueueState ? name : ParentRegistry.shadowedName(name)
    }

    public static func run(_ options: Options) throws -> Outcome {
        let sourceDescriptor = try ParentRegistry.named(options.from)
        let destinationDescriptor = try ParentRegistry.named(options.to)
        let bus = VDPABus()
        let source = try sourceDescriptor.make(ParentConfiguration(name: "vdpa0", deviceCPU: options.placement.deviceCPU, probe: options.probe))
        let destination = try destinationDescriptor.make(ParentConfiguration(name: "vdpa1", deviceCPU: options.placement.deviceCPU, probe: options.probe))
        let sourceBinding = try VhostBinding(device: source, bus: bus)
        let destinationBinding = try VhostBinding(device: destination, bus: bus)
        defer {
            sourceBinding.unbind()
            destinationBinding.unbind()
        }
        let slot = Slot(Outcome(options: options))
        let thread = try PinnedThread(cpu: options.placement.driverCPU, name: "vqb-migrate") {
            do {
                let frontend = try VhostFrontend<EventfdDoorbell>(binding: sourceBinding, layout: options.layout, queues: [0, 1],
                                                                  queueSize: options.queueSize, callBell: (), probe: options.probe)
                defer { frontend.close() }
                switch options.layout {
                case .split:
                    var rx = frontend.takeSplitQueue(0)!
                    var tx = frontend.takeSplitQueue(1)!
                    drill(&tx, &rx, frontend, destinationBinding, source.counters, options, into: &slot.value)
                case .packed:
                    var rx = frontend.takePackedQueue(0)!
                    var tx = frontend.takePackedQueue(1)!
                    drill(&tx, &rx, frontend, destinationBinding, source.counters, options, into: &slot.value)
                }
            } catch {
                slot.value.errors.append("\(error)")
            }
        }
        thread.join()
        var out = slot.value
        out.bySource = source.counters.transmitted.load(ordering: .relaxed)
        out.byDestination = destination.counters.transmitted.load(ordering: .relaxed)
        let deviceChecksum = source.counters.transmitChecksum.load(ordering: .relaxed)
            &+ destination.counters.transmitChecksum.load(ordering: .relaxed)
        out.checksumsAgree = deviceChecksum == out.guestChecksum
        out.receivedBySource = source.counters.received.load(ordering: .relaxed)
        out.receivedByDestination = destination.counters.received.load(ordering: .relaxed)
        return out
    }

    /// The guest's side, on its own thread: traffic, stop, migrate, traffic.
    static func drill<D: VirtqueueDriverHalf>(_ tx: inout VhostQueue<D, EventfdDoorbell>, _ rx: inout VhostQueue<D, EventfdDoorbell>,
                                             _ frontend: VhostFrontend<EventfdDoorbell>,
                                             _ destination: VhostBinding, _ sourceCounters: NetDeviceCounters, _ options: Options,
                                             into out: inout Outcome) {
        let before = tx.transmit(packets: options.packetsBefore, payloadBytes: options.payloadBytes, batch: options.batch)
        out.errors += before.errors
        out.reclaimed += before.packets
        out.sent += options.packetsBefore
        out.guestChecksum &+= before.checksum
        out.beforePacketsPerSecond = before.packetsPerSecond
        // Received through the source: numbered from 0 (a fresh device), every byte checked.
        let receivedBefore = rx.receive(packets: options.packetsBefore, batch: options.batch, expectedBytes: options.payloadBytes)
        out.errors += receivedBefore.errors
        out.receivePosted += options.packetsBefore
        out.receiveReclaimed += receivedBefore.packets
        guard out.errors.isEmpty else { return }

        // The source's next receive packet number (it numbers from 0).
        var rxNext = UInt64(options.packetsBefore)
        var log: DirtyLog?
        if options.precopyRounds > 0 {
            let span = frontend.arenas.map { VhostFrontend<EventfdDoorbell>.guestBase($0.key) &+ UInt64($0.value.region.size) }.max() ?? 0
            let l = DirtyLog(covering: span)
            do {
                try frontend.binding.handle(.setLogBase(l))
                log = l
            } catch {
                out.precopyRefusal = "\(error)"
            }
            if let log {
                // The migration thread harvests and copies while the guest receives.
                let done = ManagedAtomic<Bool>(false)
                let rounds = Slot([(pages: Int, nanoseconds: UInt64)]())
                let problem = Slot(String?.none)
                let rounds_ = options.precopyRounds, interval = options.precopyIntervalMicroseconds
                do {
                    let migrator = try PinnedThread(cpu: nil, name: "vqb-precopy") {
                        let scratch = UnsafeMutableRawPointer.allocate(byteCount: Int(DirtyLog.pageSize), alignment: 64)
                        defer { scratch.deallocate() }
                        for _ in 0..<rounds_ {
                            usleep(interval)
                            let t0 = cplatform_monotonic_ns()
                            let pages = log.harvest()
                            if let e = copyPages(pages, frontend, into: scratch) { problem.value = e }
                            rounds.value.append((pages.count, cplatform_monotonic_ns() &- t0))
                        }
                        // releasing: pairs with the guest's acquiring load; the rounds are written.
                        done.store(true, ordering: .releasing)
                    }
                    while !done.load(ordering: .acquiring) {
                        let r = rx.receive(packets: 1024, batch: options.batch, expectedBytes: options.payloadBytes, firstSequence: rxNext)
                        out.errors += r.errors
                        out.receivePosted += 1024
                        out.receiveReclaimed += r.packets
                        rxNext &+= 1024
                        if !r.errors.isEmpty { break }
                    }
                    migrator.join()
                } catch {
                    out.errors.append("pre-copy thread: \(error)")
                }
                out.precopy = rounds.value
                if let e = problem.value { out.errors.append(e) }
                guard out.errors.isEmpty else { return }
            }
        }

        let inFlight = min(options.inFlight, options.queueSize)
        let posted = tx.postInFlight(count: inFlight, payloadBytes: options.payloadBytes, firstSequence: UInt64(options.packetsBefore),
                                     kicks: options.kicksLastBurst)
        out.sent += inFlight
        out.guestChecksum &+= posted.checksum
        if let e = rx.postReceiveInFlight(count: inFlight, kicks: options.kicksLastBurst) { out.errors.append(e); return }
        out.receivePosted += inFlight
        let stoppedAt = cplatform_monotonic_ns()
        if let e = posted.error { out.errors.append(e); return }

        // The guest is stopped: the migration runs.
        do {
            let final = Slot((pages: 0, error: String?.none))
            let stopAndCopy: (() -> Void)? = log.map { log in
                {
                    let scratch = UnsafeMutableRawPointer.allocate(byteCount: Int(DirtyLog.pageSize), alignment: 64)
                    defer { scratch.deallocate() }
                    let pages = log.harvest()
                    final.value = (pages.count, copyPages(pages, frontend, into: scratch))
                }
            }
            let (record, kicks) = try frontend.migrate(to: destination, stopAndCopy: stopAndCopy)
            out.finalDirtyPages = final.value.pages
            if let e = final.value.error { out.errors.append(e) }
            out.record = record
            out.configCarried = record.destinationConfig == record.config && !record.config.isEmpty
            tx.kick = kicks[tx.index]!
        } catch {
            // Refused before the source was released: the guest goes on through the source.
            out.refusal = "\(error)"
        }

        // The guest runs again: the buffers still in flight come back — first the source's
        // (already in the used ring, in order), then the destination's.
        let consumedBySource = Int(sourceCounters.transmitted.load(ordering: .relaxed)) - options.packetsBefore
        if out.refusal == nil { out.carriedOver = inFlight - consumedBySource }
        var drained = tx.drainInFlight(mark: consumedBySource + 1)
        out.reclaimed += drained.reclaimed
        if let e = drained.error { out.errors.append(e); return }
        var firstByDestination = out.carriedOver > 0 ? drained.markedAt : nil
        if firstByDestination == nil && out.refusal == nil {
            // The source had consumed everything in flight: the destination's first
            // completion is of the next burst.
            let burst = min(options.batch, options.packetsAfter)
            let probe = tx.postInFlight(count: burst, payloadBytes: options.payloadBytes,
                                        firstSequence: UInt64(options.packetsBefore + inFlight))
            out.sent += burst
            out.guestChecksum &+= probe.checksum
            if let e = probe.error { out.errors.append(e); return }
            drained = tx.drainInFlight(mark: 1)
            out.reclaimed += drained.reclaimed
            if let e = drained.error { out.errors.append(e); return }
            firstByDestination = drained.markedAt
        }
        if let firstByDestination { out.downtimeNanoseconds = firstByDestination &- stoppedAt }

        // The receive buffers in flight: the source's packets (numbered on from its count),
        // then the destination's (numbered from 0: the destination is a fresh device).
        let filledBySource = Int(sourceCounters.received.load(ordering: .relaxed) &- rxNext)
        if out.refusal == nil { out.receiveCarriedOver = inFlight - filledBySource }
        let back = rx.drainReceived(expectedBytes: options.payloadBytes) { i in
            i < filledBySource || out.refusal != nil ? rxNext &+ UInt64(i) : UInt64(i - filledBySource)
        }
        out.receiveReclaimed += back.reclaimed
        if let e = back.error { out.errors.append(e); return }
        let receivedAfter = rx.receive(packets: options.packetsAfter, batch: options.batch, expectedBytes: options.payloadBytes,
                                       firstSequence: out.refusal == nil ? UInt64(out.receiveCarriedOver) : rxNext &+ UInt64(inFlight))
        out.errors += receivedAfter.errors
        out.receivePosted += options.packetsAfter
        out.receiveReclaimed += receivedAfter.packets

        let rest = options.packetsBefore + options.packetsAfter + inFlight - out.sent
        if rest > 0 {
            let after = tx.transmit(packets: rest, payloadBytes: options.payloadBytes, batch: options.batch,
                                    firstSequence: UInt64(out.sent))
            out.errors += after.errors
            out.reclaimed += after.packets
            out.sent += rest
            out.guestChecksum &+= after.checksum
            out.afterPacketsPerSecond = after.packetsPerSecond
        }
    }

    /// Every pair of ``matrixParents`` (each behind its shadow virtqueue where it cannot
    /// suspend as a source or restore as a destination) on each layout both run, `repetitions`
    /// times each: the results document's `migrations`.
    public static func matrix(repetitions: Int, packets: Int, queueSize: Int = 256, placement: ThreadPlacement,
                              probe: DoorbellProbe = .current, log: (String) -> Void = { _ in }) throws -> [ResultsDocument.Migration] {
        var figures: [ResultsDocument.Migration] = []
        for kind in RingLayoutKind.allCases {
            for a in matrixParents {
                for b in matrixParents {
                    let from = try sourceParent(a)
                    let to = try destinationParent(b)
                    guard try [from, to].allSatisfy({ try ParentRegistry.named($0).layouts.contains(kind) }) else { continue }
                    var options = Options(from: from, to: to, layout: kind)
                    options.packetsBefore = packets
                    options.packetsAfter = packets
                    options.queueSize = queueSize
                    options.inFlight = queueSize
                    options.placement = placement
                    options.probe = probe
                    var outcomes: [Outcome] = []
                    for _ in 0..<max(repetitions, 1) { outcomes.append(try run(options)) }
                    figures.append(figure(outcomes, options))
                }
            }
        }
        log("migrations: \(figures.count) parent pairs × layouts × \(repetitions), \(figures.filter { !$0.ok }.count) not ok")
        return figures
    }

    static func figure(_ outcomes: [Outcome], _ options: Options) -> ResultsDocument.Migration {
        let downtimes = outcomes.map { Double($0.downtimeNanoseconds) }.sorted()
        var steps: [String: [Double]] = [:]
        var modelled: [String: [Double]] = [:]
        for o in outcomes {
            for s in o.record.steps {
                steps[s.name, default: []].append(Double(s.nanoseconds))
                if s.modelledNanoseconds > 0 { modelled[s.name, default: []].append(s.modelledNanoseconds) }
            }
        }
        let errors = outcomes.flatMap { $0.errors + ($0.refusal.map { ["refused: " + $0] } ?? []) }
        return ResultsDocument.Migration(
            from: options.from, to: options.to, layout: options.layout.rawValue, repetitions: outcomes.count,
            queueSize: options.queueSize, inFlight: options.inFlight,
            downtimeMedianNs: quantile(sorted: downtimes, 0.5), downtimeMaxNs: downtimes.last ?? 0,
            stepsNs: steps.mapValues { quantile(sorted: $0.sorted(), 0.5) },
            modelledNs: modelled.mapValues { quantile(sorted: $0.sorted(), 0.5) },
            carriedOver: outcomes.reduce(0) { $0 + $1.carriedOver + $1.receiveCarriedOver },
            packets: outcomes.reduce(0) { $0 + $1.sent + $1.receivePosted },
            lost: outcomes.reduce(0) { $0 + $1.lost + $1.receiveLost },
            duplicated: outcomes.reduce(0) { $0 + $1.duplicated + $1.receiveDuplicated },
            ok: outcomes.allSatisfy(\.ok), errors: errors.isEmpty ? nil : errors)
    }

    /// Copies each dirty page (a page number, address >> 12) out of the guest's memory, as a
    /// migration stream would send it; nil, or the first page outside the guest's memory.
    static func copyPages(_ pages: [UInt64], _ frontend: VhostFrontend<EventfdDoorbell>, into scratch: UnsafeMutableRawPointer) -> String? {
        let windows = frontend.arenas.map { (base: VhostFrontend<EventfdDoorbell>.guestBase($0.key), region: $0.value.region) }
        for p in pages {
            let address = p << UInt64(DirtyLog.pageShift)
            guard let w = windows.first(where: { address >= $0.base && address < $0.base &+ UInt64($0.region.size) }) else {
                return "dirty page 0x\(String(address, radix: 16)) is outside the guest's memory"
            }
            let offset = Int(address &- w.base)
            scratch.copyMemory(from: w.region.base + offset, byteCount: min(Int(DirtyLog.pageSize), w.region.size - offset))
        }
        return nil
    }
}
