// A whole run: machine facts, calibration, then every chosen scenario, into one results
// document (RESULTS-SCHEMA.md). The CLI writes it out and renders the reports from it.

import CPlatform
import Doorbell
import Foundation

public struct RunOptions: Sendable {
    public var suite: Suite = .quick
    public var filter: String?
    /// Exactly these scenarios instead of the suite's (the gate's fixed ids).
    public var scenarios: [ScenarioID]?
    public var plan = MeasurementPlan()
    /// When set, the scenarios share this many seconds (each gets at most the plan's own
    /// budget): the quick suite compares every parent within its 90 s by shortening each
    /// scenario's rounds, never by dropping scenarios.
    public var scenarioPhaseSeconds: Double?
    /// Repetitions of each parent's lifecycle timed after the scenarios when any scenario
    /// is mediated (0: none).
    public var lifecycleRepetitions = 10
    /// Repetitions of each pair of the live-migration matrix (0: none), when the run has mediated scenarios.
    public var migrationRepetitions = 3
    /// Packets through the source before each migration, and through the destination after.
    public var migrationPackets = 50_000
    public var toolVersion = "0.1.0"
    public var buildConfig = "release"
    public init() {}
}

public enum Engine {
    /// The scenarios a run would measure, after the filter.
    public static func scenarios(_ options: RunOptions, memory: String = Suite.bestMemory()) throws(ScenarioError) -> [ScenarioID] {
        let all = options.scenarios ?? options.suite.scenarios(memory: memory)
        guard let pattern = options.filter else { return all }
        let filter = ScenarioFilter(pattern)
        let chosen = all.filter(filter.matches)
        guard !chosen.isEmpty else { throw .filterMatchesNothing(pattern, suite: options.suite.rawValue) }
        return chosen
    }

    /// Calibration: cache-line round trip, bare ring, and every available doorbell's wake-up.
    public static func calibrate(probe: DoorbellProbe, placement: ThreadPlacement,
                                 log: (String) -> Void) throws -> CalibrationResult {
        let (rtt, bare) = try Calibrate.rings(placement: placement)
        log("calibration: cache-line round trip \(fixed(rtt.medianNanoseconds, 0)) ns, bare ring \(fixed(median(bare) / 1e6, 1)) M entries/s")
        var wake: [String: ResultsDocument.Percentiles] = [:]
        for transport in DoorbellTransport.all where probe.unavailability(of: transport) == nil {
            let report = try WakeupRoundTrip.run(transport, iterations: 2_000, warmup: 200,
                                                 timeoutNanoseconds: 5_000_000_000, probe: probe)
            guard report.failure == nil, !report.samplesNanoseconds.isEmpty else { continue }
            let sorted = report.samplesNanoseconds.map { Double($0) }.sorted()
            wake[transport.id] = .init(p50: quantile(sorted: sorted, 0.5), p99: quantile(sorted: sorted, 0.99))
        }
        log("calibration: wake-up round trip p50 " + wake.sorted { $0.key < $1.key }
            .map { "\($0.key) \(fixed($0.value.p50 / 1000, 1)) µs" }.joined(separator: ", "))
        return CalibrationResult(cacheline: rtt, bareRingSamples: bare, wakeNanoseconds: wake)
    }

    public static func run(_ options: RunOptions, log: (String) -> Void) throws -> ResultsDocument {
        let startedAt = Date()
        let t0 = cplatform_monotonic_ns()
        let probe = DoorbellProbe.current
        let placement = ThreadPlacement.current()
        if let note = placement.note { log("note: \(note)") }
        let ids = try scenarios(options)
        let machine = MachineInfo.collect(ioUring: .init(available: probe.ioUring.available, ops: probe.ioUring.ops,
                                                         reason: probe.ioUring.reason))
        let calibration = try calibrate(probe: probe, placement: placement, log: log)
        var plan = options.plan
        if let phase = options.scenarioPhaseSeconds, !ids.isEmpty {
            plan.secondsPerScenario = min(plan.secondsPerScenario, phase / Double(ids.count))
            log("each scenario gets \(fixed(plan.secondsPerScenario, 2)) s (\(ids.count) share \(fixed(phase, 0)) s)")
        }
        var runner = ScenarioRunner(plan: plan, probe: probe, placement: placement,
                                    bareRingRate: median(calibration.bareRingSamples))
        let measured = measureInterleaved(ids, runner: &runner, calibrationRoundTripNs: calibration.cacheline.medianNanoseconds,
                                          log: log)
        let results = measured.results
        var controlPath: [ResultsDocument.ControlPathOperation]?
        if options.lifecycleRepetitions > 0 && ids.contains(where: { $0.mediator != "none" }) {
            let t = cplatform_monotonic_ns()
            controlPath = try LifecycleRun.run(repetitions: options.lifecycleRepetitions, placement: placement, probe: probe)
            log("control path: \(LifecycleRun.parents.count) parents' lifecycles × \(options.lifecycleRepetitions) (\(fixed(Double(cplatform_monotonic_ns() - t) / 1e9, 1)) s)")
        }
        var migrations: [ResultsDocument.Migration]?
        if options.migrationRepetitions > 0 && ids.contains(where: { $0.mediator != "none" }) {
            let t = cplatform_monotonic_ns()
            migrations = try MigrationRun.matrix(repetitions: options.migrationRepetitions, packets: options.migrationPackets,
                                                 placement: placement, probe: probe, log: log)
            log("migrations took \(fixed(Double(cplatform_monotonic_ns() - t) / 1e9, 1)) s")
        }
        var doc = calibration.document
        doc.placements = runner.placementsSeen
        doc.placementClasses = measured.classes
        let git = MachineInfo.gitState()
        var document = ResultsDocument(
            tool: .init(name: "vqbench", version: options.toolVersion, gitCommit: git.commit, dirty: git.dirty,
                        toolchain: MachineInfo.toolchain(), buildConfig: options.buildConfig),
            startedAt: ISO8601DateFormatter().string(from: startedAt),
            durationSeconds: Double(cplatform_monotonic_ns() - t0) / 1e9,
            suite: options.suite.rawValue, filter: options.filter, machine: machine,
            calibration: doc, scenarios: results, controlPath: controlPath, comparisons: measured.comparisons)
        document.migrations = migrations
        return document
    }

    /// Measurement order within a round (indices into `ids`): by mediator and the settings
    /// a pair shares, then doorbell and binding (in the order they first appear), layout last,
    /// so that packed follows split directly and vhost follows virtio closely.
    static func pairingOrder(_ ids: [ScenarioID], _ indices: [Int]) -> [Int] {
        var rank: [String: Int] = [:]
        func r(_ part: String, _ value: String) -> Int { rank[part + "=" + value]! }
        for id in ids {
            for (part, value) in [("m", id.mediator), ("mem", id.memory), ("d", id.doorbell), ("b", id.binding)]
            where rank[part + "=" + value] == nil {
                rank[part + "=" + value] = rank.count
            }
        }
        func key(_ i: Int) -> [Int] {
            let id = ids[i]
            return [r("m", id.mediator), id.queueSize, id.payloadBytes, r("mem", id.memory), id.queuePairs, id.batch,
                    r("d", id.doorbell), r("b", id.binding), id.ringLayout == "split" ? 0 : 1, id.inOrder ? 1 : 0, i]
        }
        return indices.sorted { key($0).lexicographicallyPrecedes(key($1)) }
    }

    /// Every scenario once per round, rounds alternating in direction (ABC CBA …) so drift
    /// falls evenly on all; then placement classes from all the round trips the rounds
    /// recorded, each scenario's figures, and the paired comparisons.
    static func measureInterleaved(_ ids: [ScenarioID], runner: inout ScenarioRunner, calibrationRoundTripNs: Double,
                                   log: (String) -> Void)
        -> (results: [ScenarioResult], classes: [PlacementClass], comparisons: [ResultsDocument.Comparison]) {
        var prepared: [PreparedScenario?] = []
        var results: [ScenarioResult?] = []
        for id in ids {
            switch runner.prepare(id) {
            case let .success(p): prepared.append(p); results.append(nil)
            case let .failure(f): prepared.append(nil); results.append(f.result)
            }
        }
        // Partners of a comparison stand next to each other in a round: split beside packed
        // at the same settings, then each binding, then the doorbells in turn.
        let live = pairingOrder(ids, prepared.indices.filter { prepared[$0] != nil })
        log("measuring \(live.count) scenario(s) in \(runner.plan.rounds) interleaved round(s)"
            + (live.count < ids.count ? "; \(ids.count - live.count) not measurable here" : ""))
        var rounds = [[(RoundSample, DatapathOutcome)]](repeating: [], count: ids.count)
        let t0 = cplatform_monotonic_ns()
        // The rounds' wall-time cap: the scenarios' whole budget. Rounds are sized from each
        // scenario's warm-up rate; when the vCPUs move to a slower placement (or a round's
        // fixed costs weigh more than planned) the rounds left are shortened to fit, so a
        // run's length holds on any machine — fewer descriptors per round, never fewer
        // scenarios or rounds.
        let roundsBudget = Double(live.count) * runner.plan.secondsPerScenario
        for r in 0..<runner.plan.rounds {
            let roundStart = cplatform_monotonic_ns()
            for i in (r % 2 == 0 ? live : live.reversed()) where results[i] == nil {
                do {
                    rounds[i].append(try runner.measureRound(prepared[i]!, round: r))
                } catch {
                    results[i] = runner.failed(ids[i], error)
                }
            }
            let now = cplatform_monotonic_ns()
            let elapsed = Double(now - t0) / 1e9
            let left = runner.plan.rounds - r - 1
            var note = ""
            if left > 0 {
                let lastRound = Double(now - roundStart) / 1e9
                let allowed = max(roundsBudget - elapsed, 0) / Double(left)
                if lastRound > allowed * 1.05 {
                    let factor = max(allowed / lastRound, 0.25)
                    for i in live { prepared[i] = prepared[i]?.scaled(by: factor) }
                    note = "; rounds shortened to \(fixed(factor * 100, 0)) % to stay within \(fixed(roundsBudget, 0)) s"
                }
            }
            log("round \(r + 1)/\(runner.plan.rounds) (\(fixed(elapsed, 1)) s, ETA \(fixed(elapsed / Double(r + 1) * Double(left), 0)) s\(note))")
        }
        func cluster() -> [PlacementClass] {
            PlacementClasses.cluster([calibrationRoundTripNs] + rounds.joined().flatMap(\.0.roundTripsNs))
        }
        var classes = cluster()
        // A scenario none of whose rounds stayed in one placement (a VM whose vCPUs move
        // every second) gets rounds of its own, up to as many again, before it is given up.
        func unplaced(_ candidates: [Int]) -> [Int] {
            candidates.filter { i in results[i] == nil && !rounds[i].contains { $0.0.placement(in: classes) != nil } }
        }
        var retry = unplaced(live)
        var extra = 0
        while !retry.isEmpty && extra < runner.plan.rounds {
            for i in retry {
                do {
                    rounds[i].append(try runner.measureRound(prepared[i]!, round: runner.plan.rounds + extra))
                } catch {
                    results[i] = runner.failed(ids[i], error)
                }
            }
            extra += 1
            classes = cluster()
            retry = unplaced(retry)
        }
        if extra > 0 {
            log("\(extra) extra round(s) for the scenario(s) whose every round saw the placement move")
        }
        log("placement classes: " + classes.map { "\($0.name) (\($0.samples) round trips, \(fixed($0.minNs, 0))–\(fixed($0.maxNs, 0)) ns)" }
            .joined(separator: ", "))
        for (n, i) in ids.indices.enumerated() {
            if results[i] == nil { results[i] = runner.finish(prepared[i]!, rounds: rounds[i], classes: classes) }
            log("[\(n + 1)/\(ids.count)] \(ScenarioSummary.line(results[i]!))")
        }
        let ok = ids.indices.filter { results[$0]?.status == .ok }
        let comparisons = PairedComparisons.build(ids: ok.map { ids[$0] }, samples: ok.map { rounds[$0].map(\.0) },
                                                  classes: classes)
        return (results.map { $0! }, classes, comparisons)
    }
}

/// One line per scenario for progress and summaries.
public enum ScenarioSummary {
    public static func line(_ r: ScenarioResult) -> String {
        switch r.status {
        case .ok:
            let rate = r.throughput.map { fixed($0.descPerSecond.median / 1e6, 2) + " Mdesc/s" } ?? "-"
            let ratio = r.ratioToCalibration.map { fixed($0, 3) + "× bare ring" } ?? ""
            let p50 = r.latencyNs.map { "p50 " + fixed($0.p50 / 1000, 1) + " µs" } ?? ""
            return "\(r.id): \(rate), \(ratio), \(p50) [\(r.placement ?? "?")]"
        default:
            return "\(r.id): \(r.status.rawValue): \(r.reason ?? "")"
        }
    }
}
