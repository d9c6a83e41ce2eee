// Measures one scenario: rounds of the scenario alternated with the bare-ring reference
// (ABAB), the cache-line round trip before and after each round to catch a change of vCPU
// placement, then a closed-loop latency run. Turns the rounds into a ScenarioResult. A
// mediated scenario's round is itself short pairs of the scenario and its bare reference.

import CPlatform
import Doorbell
import Histogram
import Virtqueue
import VirtioMemory

/// How long and how often to measure each scenario.
public struct MeasurementPlan: Sendable {
    /// Wall time budget per scenario, seconds (warm-up, rounds and latency run together).
    public var secondsPerScenario: Double = 2.5
    /// Timed rounds after the warm-up round.
    public var rounds = 7
    /// Closed-loop batches timed for the latency percentiles.
    public var latencyBatches = 2_000
    /// Short back-to-back pairs of a mediated scenario and its bare reference per round
    /// (the round's descriptors split between them). On a VM whose vCPUs move every few
    /// seconds a placement change inside a long pair goes unseen by the round trips around
    /// it; short pairs, each half bracketed, lose one pair to it instead of a round.
    public var referencePairs = 6
    public init() {}
}

/// Runs one throughput or latency run of a scenario with fresh ring halves.
struct RoundVisitor: DoorbellPairVisitor {
    let id: ScenarioID
    let backing: MemoryBacking
    let descriptors: Int
    let mode: DatapathMode
    let placement: ThreadPlacement

    func visit<KN: DoorbellNotifier, KW: DoorbellWaiter, CN: DoorbellNotifier, CW: DoorbellWaiter>(
        kick: (KN, KW), call: (CN, CW), sleeps: Bool) throws -> DatapathOutcome {
        let payload = UInt32(id.payloadBytes)
        switch RingLayoutKind(rawValue: id.ringLayout) {
        case .split:
            let s = try RingSetups.split(queueSize: id.queueSize, payloadBytes: id.payloadBytes,
                                         policy: .require(backing), eventIndex: sleeps, inOrder: id.inOrder)
            // The halves point into the setup's arena: it stays mapped until the run ends.
            return try withExtendedLifetime(s) { () throws -> DatapathOutcome in
                try runDatapath(driver: s.driver, device: s.device, kick: kick, call: call, sleeps: sleeps,
                                addresses: s.addresses, payloadBytes: payload, batch: id.batch,
                                descriptors: descriptors, mode: mode, placement: placement)
            }
        case .packed:
            let s = try RingSetups.packed(queueSize: id.queueSize, payloadBytes: id.payloadBytes,
                                          policy: .require(backing), eventIndex: sleeps, inOrder: id.inOrder)
            // The halves point into the setup's arena: it stays mapped until the run ends.
            return try withExtendedLifetime(s) { () throws -> DatapathOutcome in
                try runDatapath(driver: s.driver, device: s.device, kick: kick, call: call, sleeps: sleeps,
                                addresses: s.addresses, payloadBytes: payload, batch: id.batch,
                                descriptors: descriptors, mode: mode, placement: placement)
            }
        case nil:
            throw ScenarioError.unknownValue(part: "layout", value: id.layout, known: RingLayoutKind.allCases.map(\.rawValue))
        }
    }
}

public struct ScenarioRunner {
    public let plan: MeasurementPlan
    public let probe: DoorbellProbe
    public let placement: ThreadPlacement
    /// Bare ring entries per second from calibration: sizes each round's reference run.
    public let bareRingRate: Double
    /// Rounds kept per placement, over every scenario run by this runner.
    public private(set) var placementsSeen: [String: Int] = [:]

    public init(plan: MeasurementPlan, probe: DoorbellProbe, placement: ThreadPlacement, bareRingRate: Double) {
        self.plan = plan
        self.probe = probe
        self.placement = placement
        self.bareRingRate = bareRingRate
    }

    func params(_ id: ScenarioID) -> ScenarioResult.Params {
        .init(layout: id.layout, doorbell: id.doorbell, mediator: id.mediator, binding: id.binding, queueSize: id.queueSize,
              batch: id.batch, payloadBytes: id.payloadBytes, memory: id.memory, queuePairs: id.queuePairs)
    }

    /// Why the scenario cannot run on this machine, or nil.
    func unavailability(_ id: ScenarioID) -> String? {
        if let why = DoorbellDispatch.unavailability(of: id.doorbell, probe: probe) { return why }
        if id.inOrder && id.mediator != "none" {
            return "in_order is measured on bare rings; a parent negotiates its own features"
        }
        guard let backing = MemoryBacking(rawValue: id.memory) else {
            return "unknown memory backing '\(id.memory)'; one of \(MemoryBacking.allCases.map(\.rawValue).joined(separator: ", "))"
        }
        do {
            // A vhost consumer shares its memory with the device as memfds.
            _ = try HugepageRegion(bytes: 4 << 20, policy: .require(backing), shareable: id.binding == "vhost")
        } catch {
            return "\(error)"
        }
        if id.mediator != "none", let why = MediatedRun.unavailability(mediator: id.mediator, doorbell: id.doorbell) { return why }
        if id.mediator == "none" && id.binding != "virtio" {
            return "binding '\(id.binding)' needs a mediated device: a bare ring (mediator none) is not on a bus"
        }
        if id.queuePairs > 1 && (id.mediator != "none" || id.doorbell != "poll") {
            return "several queue pairs are measured on bare polled rings (doorbell poll, mediator none) so far: one thread "
                + "waiting on several sleeping doorbells, and a mediated device's extra queue pairs, are not built yet"
        }
        return nil
    }

    func run(_ id: ScenarioID, descriptors: Int, mode: DatapathMode) throws -> DatapathOutcome {
        if id.mediator != "none" {
            let outcome = try MediatedRun.run(id, backing: MemoryBacking(rawValue: id.memory)!, descriptors: descriptors,
                                              mode: mode, placement: placement, probe: probe).datapath
            if !outcome.errors.isEmpty { throw RunnerError.runFailed(id: id.description, errors: outcome.errors) }
            return outcome
        }
        if id.queuePairs > 1 { return try multiQueue(id, descriptors: descriptors, mode: mode) }
        let visitor = RoundVisitor(id: id, backing: MemoryBacking(rawValue: id.memory)!, descriptors: descriptors,
                                   mode: mode, placement: placement)
        let outcome = try DoorbellDispatch.dispatch(id.doorbell, probe: probe, visitor)
        if !outcome.errors.isEmpty { throw RunnerError.runFailed(id: id.description, errors: outcome.errors) }
        return outcome
    }

    /// How a multi-queue scenario's queues are spread over this machine's cores.
    var threading: (Int) -> QueueThreading {
        { QueueThreading.plan(queues: $0, cpus: Int(cplatform_allowed_cpu_count())) }
    }

    /// qpN on bare rings: N independent queues, all polled (MultiQueueRun).
    func multiQueue(_ id: ScenarioID, descriptors: Int, mode: DatapathMode) throws -> DatapathOutcome {
        let backing = MemoryBacking(rawValue: id.memory)!
        let perQueue = max(id.batch, descriptors / id.queuePairs)
        func run<D: VirtqueueDriverHalf, V: VirtqueueDeviceHalf>(_ setup: () throws -> RingSetup<D, V>) throws -> DatapathOutcome {
            let qs = try (0..<id.queuePairs).map { _ in try setup() }
            // The halves hold raw pointers into each setup's arena: keep every arena mapped
            // until the threads are joined (a lifetime ends at its last use otherwise, and
            // the run read unmapped ring memory).
            return try withExtendedLifetime(qs) { () throws -> DatapathOutcome in try runMultiQueuePolled(queues: qs.map { ($0.driver, $0.device, $0.addresses) }, payloadBytes: UInt32(id.payloadBytes),
                                           batch: id.batch, descriptorsPerQueue: perQueue, mode: mode,
                                           threading: threading(id.queuePairs), placement: placement) }
        }
        let outcome: DatapathOutcome
        switch RingLayoutKind(rawValue: id.ringLayout) {
        case .split:
            outcome = try run { try RingSetups.split(queueSize: id.queueSize, payloadBytes: id.payloadBytes, policy: .require(backing),
                                                     inOrder: id.inOrder) }
        case .packed:
            outcome = try run { try RingSetups.packed(queueSize: id.queueSize, payloadBytes: id.payloadBytes, policy: .require(backing),
                                                      inOrder: id.inOrder) }
        case nil:
            throw ScenarioError.unknownValue(part: "layout", value: id.layout, known: RingLayoutKind.allCases.map(\.rawValue))
        }
        if !outcome.errors.isEmpty { throw RunnerError.runFailed(id: id.description, errors: outcome.errors) }
        return outcome
    }

    /// One throughput run of a mediated scenario's bare reference (``MediatedRun/reference``).
    func referenceRun(_ id: ScenarioID, descriptors: Int) throws -> DatapathOutcome {
        let r = try MediatedRun.reference(id, backing: MemoryBacking(rawValue: id.memory)!, descriptors: descriptors,
                                          mode: .throughput, placement: placement, probe: probe)
        if !r.errors.isEmpty { throw RunnerError.runFailed(id: id.description + " (bare reference)", errors: r.errors) }
        return r
    }

    /// Its descriptors per second.
    func referenceRate(_ id: ScenarioID, descriptors: Int) throws -> Double {
        try referenceRun(id, descriptors: descriptors).descriptorsPerSecond
    }

    /// A scenario that can be measured here, warmed up, with its rounds sized; or the
    /// result that says why it cannot be (unavailable, or failed in its warm-up).
    public func prepare(_ id: ScenarioID) -> Result<PreparedScenario, ScenarioFailure> {
        if let why = unavailability(id) {
            return .failure(.init(ScenarioResult(id: id.description, params: params(id), status: .unavailable, reason: why)))
        }
        do {
            let started = cplatform_monotonic_ns()
            // Warm-up round, which also sizes the timed rounds to the budget.
            let warm = try run(id, descriptors: max(id.batch * 64, 100_000), mode: .throughput)
            let roundSeconds = plan.secondsPerScenario * 0.7 / Double(max(plan.rounds, 1))
            let perRound = Int(min(max(warm.descriptorsPerSecond * roundSeconds * 0.8, Double(id.batch * 64)), 50_000_000))
            let bareEntries = Int(min(max(bareRingRate * roundSeconds * 0.2, 100_000), 50_000_000))
            return .success(PreparedScenario(id: id, descriptorsPerRound: perRound, bareRingEntries: bareEntries,
                                             busyNanoseconds: cplatform_monotonic_ns() - started))
        } catch {
            return .failure(.init(ScenarioResult(id: id.description, params: params(id), status: .failed, reason: "\(error)")))
        }
    }

    /// One timed round: the scenario (for a mediated one, in short pairs with its bare
    /// reference), then the bare calibration ring, each bracketed by the cache-line round
    /// trip that tells the placement.
    public func measureRound(_ p: PreparedScenario, round: Int) throws -> (RoundSample, DatapathOutcome) {
        let id = p.id
        let probe = { try CachelineRoundTrip.measure(samples: 5, perSample: 500, placement: placement).medianNanoseconds }
        let before = try probe()
        var a = DatapathOutcome()
        var pairs: [ReferencePair] = []
        if id.mediator == "none" {
            a = try run(id, descriptors: p.descriptorsPerRound, mode: .throughput)
        } else {
            // The same device model and driver loop on bare rings with the same doorbell,
            // paired with the scenario; which goes first alternates, so neither always runs
            // warm after the other.
            let pairCount = max(plan.referencePairs, 1)
            let perHalf = max(p.descriptorsPerRound / pairCount, id.batch * 64)
            var last = before
            for k in 0..<pairCount {
                let referenceFirst = (round + k) % 2 == 1
                let first = referenceFirst ? try referenceRate(id, descriptors: perHalf) : nil
                let scenario = referenceFirst ? nil : try run(id, descriptors: perHalf, mode: .throughput)
                let between = try probe()
                let mediated = try scenario ?? run(id, descriptors: perHalf, mode: .throughput)
                let reference = try first ?? referenceRate(id, descriptors: perHalf)
                let end = try probe()
                pairs.append(ReferencePair(rate: mediated.descriptorsPerSecond, ratio: mediated.descriptorsPerSecond / reference, roundTripsNs: [last, between, end]))
                a.absorb(mediated)
                last = end
            }
        }
        let bare = try BareRing.measure(entries: p.bareRingEntries, placement: placement)
        let after = try probe()
        // A mediated round's rate is its pairs' median: a placement change inside one short
        // run, unseen by the round trips, moves it less than it moves their sum.
        let rate = pairs.isEmpty ? a.descriptorsPerSecond : median(pairs.map(\.rate))
        let sample = RoundSample(round: round, rate: rate, toCalibration: rate / bare,
                                 referencePairs: pairs, roundTripBeforeNs: before, roundTripAfterNs: after)
        return (sample, a)
    }

    /// Turns a scenario's rounds into its result: figures from the rounds of the placement
    /// class most of them were in, then the latency run and, when mediated, one timed bring-up.
    public mutating func finish(_ p: PreparedScenario, rounds: [(RoundSample, DatapathOutcome)],
                                classes: [PlacementClass]) -> ScenarioResult {
        let id = p.id
        do {
            let started = cplatform_monotonic_ns()
            let placed = rounds.compactMap { r in r.0.placement(in: classes).map { (cls: $0, sample: r.0, outcome: r.1) } }
            guard !placed.isEmpty else { throw RunnerError.noStableRound(id: id.description, rounds: rounds.count) }
            var byClass: [PlacementClass: Int] = [:]
            for k in placed { byClass[k.cls, default: 0] += 1 }
            for (c, n) in byClass { placementsSeen[c.name, default: 0] += n }
            let main = byClass.max { ($0.value, -$0.key.roundTripNs) < ($1.value, -$1.key.roundTripNs) }!.key
            let chosen = placed.filter { $0.cls == main }
            let discarded = rounds.count - placed.count

            let latency = try run(id, descriptors: id.batch * plan.latencyBatches, mode: .latency)

            let descriptors = chosen.reduce(0) { $0 + $1.outcome.descriptors }
            let kick = chosen.reduce(DoorbellCounters()) { $0 + $1.outcome.kick }
            let call = chosen.reduce(DoorbellCounters()) { $0 + $1.outcome.call }
            let driverCPU = chosen.reduce(UInt64(0)) { $0 + $1.outcome.driverCPUNanoseconds }
            let deviceCPU = chosen.reduce(UInt64(0)) { $0 + $1.outcome.deviceCPUNanoseconds }
            let relay = chosen.compactMap(\.outcome.relay).reduce(nil as DatapathOutcome.RelayTally?) { ($0 ?? .init()) + $1 }
            let cpu = driverCPU + deviceCPU + (relay?.cpuNanoseconds ?? 0)
            let perK = 1000 / Double(max(descriptors, 1))
            let rates = bootstrapInterval(chosen.map(\.sample.rate))
            let gbit = { (x: Double) in x * Double(id.payloadBytes) * 8 / 1e9 }

            var result = ScenarioResult(id: id.description, params: params(id), status: .ok)
            if id.mediator != "none" {
                result.modelled = MediatedRun.modelled(id.mediator)
                // Bring-up through the config ops, measured on one more binding.
                result.controlPathNs = try MediatedRun.run(id, backing: MemoryBacking(rawValue: id.memory)!, descriptors: id.batch,
                                                           mode: .throughput, placement: placement, probe: probe).controlPath
            }
            result.repetitions = chosen.count
            let roundsNs: UInt64 = rounds.reduce(0) { $0 + $1.1.nanoseconds }
            result.durationNs = p.busyNanoseconds + roundsNs + (cplatform_monotonic_ns() - started)
            result.placement = main.name
            result.throughput = .init(
                descPerSecond: rates, packetsPerSecond: rates,
                gbitPerSecond: .init(median: gbit(rates.median), ci95: rates.ci95.map { $0.map(gbit) }))
            if let h = latency.roundTrips, h.totalCount > 0 {
                result.latencyNs = .init(count: Int(h.totalCount), min: Double(h.min), mean: h.mean,
                                         p50: Double(h.valueAtPercentile(50)), p90: Double(h.valueAtPercentile(90)),
                                         p99: Double(h.valueAtPercentile(99)), p999: Double(h.valueAtPercentile(99.9)),
                                         max: Double(h.max))
            }
            result.counters = .init(
                kicksPer1k: Double(kick.notificationsSent) * perK,
                interruptsPer1k: Double(call.notificationsSent) * perK,
                descPerKick: kick.notificationsSent > 0 ? Double(descriptors) / Double(kick.notificationsSent) : nil,
                syscallsPer1k: Double(kick.syscalls + call.syscalls) * perK,
                mallocsInLoop: nil)
            let perDesc = 1 / Double(max(descriptors, 1))
            result.cpuNsPerDesc = Double(cpu) * perDesc
            result.cpuNsPerDescByThread = .init(driver: Double(driverCPU) * perDesc, device: Double(deviceCPU) * perDesc,
                                                relay: relay.map { Double($0.cpuNanoseconds) * perDesc })
            if let r = relay {
                result.shadowRelay = .init(translationsPerDesc: Double(r.translations) * perDesc,
                                           deviceKicksPer1k: Double(r.deviceKicks) * perK,
                                           driverInterruptsPer1k: Double(r.driverInterrupts) * perK,
                                           idlePassesPer1k: Double(r.idlePasses) * perK, syscallsPer1k: Double(r.syscalls) * perK)
            }
            let ratios = bootstrapInterval(chosen.map(\.sample.toCalibration))
            result.ratioToCalibration = ratios.median
            result.ratioToCalibrationCI95 = ratios.ci95
            // × no mediator from every short pair (of any round) that stayed in the main class.
            let toBare = rounds.flatMap { $0.0.referenceRatios(in: classes) }.filter { $0.0 == main }.map(\.1)
            if !toBare.isEmpty {
                let r = bootstrapInterval(toBare)
                result.ratioToBare = r.median
                result.ratioToBareCI95 = r.ci95
            }
            let elsewhere = placed.count - chosen.count
            var notes: [String] = []
            if discarded > 0 { notes.append("\(discarded) round(s) discarded: the vCPU placement changed during them") }
            if elsewhere > 0 { notes.append("\(elsewhere) round(s) in another placement class left out of the figures") }
            if id.queuePairs > 1, let shared = threading(id.queuePairs).note { notes.append(shared) }
            if !notes.isEmpty { result.reason = notes.joined(separator: "; ") }
            return result
        } catch {
            return ScenarioResult(id: id.description, params: params(id), status: .failed, reason: "\(error)")
        }
    }

    /// Measures one scenario on its own: its rounds back to back, classes from its own
    /// round trips. A run of several scenarios interleaves their rounds instead (Engine).
    public mutating func measure(_ id: ScenarioID) -> ScenarioResult {
        switch prepare(id) {
        case let .failure(f): return f.result
        case let .success(p):
            var rounds: [(RoundSample, DatapathOutcome)] = []
            do {
                for r in 0..<plan.rounds { rounds.append(try measureRound(p, round: r)) }
            } catch {
                return ScenarioResult(id: id.description, params: params(id), status: .failed, reason: "\(error)")
            }
            let classes = PlacementClasses.cluster(rounds.flatMap { [$0.0.roundTripBeforeNs, $0.0.roundTripAfterNs] })
            return finish(p, rounds: rounds, classes: classes)
        }
    }

    /// A failed round's result.
    func failed(_ id: ScenarioID, _ error: any Error) -> ScenarioResult {
        ScenarioResult(id: id.description, params: params(id), status: .failed, reason: "\(error)")
    }
}

/// A scenario ready to be measured in rounds.
public struct PreparedScenario: Sendable {
    public let id: ScenarioID
    public private(set) var descriptorsPerRound: Int
    public private(set) var bareRingEntries: Int
    /// Time spent on it so far (the warm-up).
    public let busyNanoseconds: UInt64

    /// The same scenario with its rounds `factor` as long (never below a few batches).
    func scaled(by factor: Double) -> PreparedScenario {
        var p = self
        p.descriptorsPerRound = max(Int(Double(descriptorsPerRound) * factor), id.batch * 64)
        p.bareRingEntries = max(Int(Double(bareRingEntries) * factor), 100_000)
        return p
    }
}

/// Why a scenario is not measured: its result already says so.
public struct ScenarioFailure: Error, Sendable {
    public let result: ScenarioResult
    init(_ result: ScenarioResult) { self.result = result }
}

public enum RunnerError: Error, CustomStringConvertible {
    case runFailed(id: String, errors: [String])
    case noStableRound(id: String, rounds: Int)

    public var description: String {
        switch self {
        case let .runFailed(id, errors): return "\(id): " + errors.joined(separator: "; ")
        case let .noStableRound(id, rounds): return "\(id): the vCPU placement changed during all \(rounds) rounds"
        }
    }
}
