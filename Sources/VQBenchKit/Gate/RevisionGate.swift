// `vqbench gate --against REV`, the judging half: parent vs patch (FD.io CSIT's per-patch
// method). A and B compare this build's exact counts with the base revision's, measured the
// same way on this machine; C takes per-round throughput ratios new/base from rounds that
// ran both binaries back to back on the same CPUs, so the verdict holds on any machine.
// The CLI (Sources/vqbench/AgainstRevision.swift) builds the base and runs the rounds.

import Foundation

/// One round of C: the base binary and this build, each one `measure-round` run.
public struct RevisionRound: Sendable, Equatable, Codable {
    public var base: MeasureRoundSample
    public var new: MeasureRoundSample
    /// Whether the base ran first in this round (ABBA: alternating from round to round).
    public var baseFirst: Bool

    enum CodingKeys: String, CodingKey { case base, new, baseFirst = "base_first" }

    public init(base: MeasureRoundSample, new: MeasureRoundSample, baseFirst: Bool) {
        self.base = base
        self.new = new
        self.baseFirst = baseFirst
    }

    /// The four round trips of the round, in the order they were measured.
    public var roundTrips: [Double] {
        baseFirst ? [base.rttBeforeNs, base.rttAfterNs, new.rttBeforeNs, new.rttAfterNs]
                  : [new.rttBeforeNs, new.rttAfterNs, base.rttBeforeNs, base.rttAfterNs]
    }

    /// Throughput of this build over the base's.
    public var ratio: Double { new.descPerSecond / base.descPerSecond }
}

/// What C has for one ratio scenario.
public enum RevisionRatioEvidence: Sendable, Equatable {
    /// Every round run, kept or not (the judge decides which it keeps).
    case rounds([RevisionRound])
    /// The base binary has no `measure-round` subcommand (a revision older than it).
    case baseLacksMeasureRound
    /// This machine cannot run the scenario (the reason `measure-round` gave).
    case unavailable(String)
}

/// Everything `gate --against` measured: both builds' A and B documents and C's rounds.
public struct RevisionEvidence: Sendable {
    /// The base revision's commit (as printed in the table).
    public var baseCommit: String
    /// The base build's `gate --skip-ratios` document.
    public var base: ResultsDocument
    /// This build's, from ``Gate/measure(_:ratios:log:)`` with `ratios: false`.
    public var new: ResultsDocument
    /// C, per ratio scenario, in the gate's order.
    public var ratios: [(id: ScenarioID, evidence: RevisionRatioEvidence)]

    public init(baseCommit: String, base: ResultsDocument, new: ResultsDocument,
                ratios: [(id: ScenarioID, evidence: RevisionRatioEvidence)]) {
        self.baseCommit = baseCommit
        self.base = base
        self.new = new
        self.ratios = ratios
    }
}

public struct RevisionGateOptions: Sendable {
    /// A's instruction tolerance and the ratio scenarios come from the ordinary gate's options.
    public var gate = GateOptions()
    /// C: regression when the whole interval of new/base lies below 1 − this, improvement above 1 + this.
    public var ratioTolerance = 0.10
    /// C: rounds per scenario, each running both binaries once.
    public var rounds = 7
    /// C: fewer kept rounds than this cannot decide (inconclusive).
    public var minimumKeptRounds = 3
    /// C: the length each binary's run is sized to, seconds.
    public var secondsPerRun = 0.3
    public init() {}
}

public enum RevisionGate {
    /// A round counts only when all four of its round trips are in one placement class: a
    /// placement change during the round would show up as a throughput change of one binary.
    public static func keeps(_ round: RevisionRound) -> Bool {
        let rtts = round.roundTrips
        for i in rtts.indices {
            for j in rtts.indices where j > i {
                if !PlacementClasses.samePlacement(rtts[i], rtts[j]) { return false }
            }
        }
        return true
    }

    /// ABBA: round 0 runs base then new, round 1 new then base, and so on, so neither binary
    /// always runs on a CPU warmed (or throttled) by the other.
    public static func baseRunsFirst(round: Int) -> Bool { round % 2 == 0 }

    /// Descriptors per run so one run lasts about `seconds` at `descPerSecond`, at least 64
    /// batches and at most 50 M.
    public static func descriptorsPerRun(descPerSecond: Double, seconds: Double, batch: Int) -> Int {
        let wanted = descPerSecond.isFinite ? descPerSecond * seconds : 0
        return Int(min(max(wanted, Double(batch * 64)), 50_000_000))
    }

    /// A and B: this build's counts against the base's, by the ordinary gate's own rules (A
    /// ±instruction tolerance, B exact), with the base commit in the tolerance text.
    public static func exactChecks(new: ResultsDocument, base: ResultsDocument, baseCommit: String,
                                   options: RevisionGateOptions) -> [ResultsDocument.GateCheck] {
        Gate.judge(observed: new, baseline: base, options: options.gate).checks
            .filter { $0.check.hasPrefix("A ") || $0.check.hasPrefix("B ") }
            .map { check in
                var c = check
                c.tolerance += " vs \(baseCommit)"
                return c
            }
    }

    /// C for one scenario: the median of the kept rounds' ratios new/base and its bootstrap 95 %
    /// interval, against 1 ± the tolerance.
    public static func ratioCheck(_ id: ScenarioID, _ evidence: RevisionRatioEvidence, baseCommit: String,
                                  options: RevisionGateOptions) -> ResultsDocument.GateCheck {
        let check = "C \(id)"
        let metric = "desc_per_s new/base"
        let tolerance = "±\(fixed(options.ratioTolerance * 100, 0))% (95% CI)"
        switch evidence {
        case .baseLacksMeasureRound:
            return .init(check: check, metric: metric, baseline: nil, observed: nil,
                         tolerance: "base revision has no measure-round: C not compared (\(baseCommit))",
                         verdict: GateVerdict.noBaseline.rawValue)
        case let .unavailable(why):
            return .init(check: check, metric: metric, baseline: nil, observed: nil,
                         tolerance: "not run on this machine: \(why)", verdict: GateVerdict.noBaseline.rawValue)
        case let .rounds(rounds):
            let kept = rounds.filter(keeps)
            let keptText = "\(kept.count)/\(rounds.count) rounds kept, vs \(baseCommit)"
            let ratios = kept.map(\.ratio).filter(\.isFinite)
            guard ratios.count >= options.minimumKeptRounds else {
                return .init(check: check, metric: metric, baseline: 1.0, observed: ratios.isEmpty ? nil : median(ratios),
                             tolerance: tolerance + ", " + keptText + " (fewer than \(options.minimumKeptRounds): placement moved)",
                             verdict: GateVerdict.inconclusive.rawValue)
            }
            let interval = bootstrapInterval(ratios)
            let lo = interval.ci95?.first ?? interval.median
            let hi = interval.ci95?.last ?? interval.median
            let floor = 1 - options.ratioTolerance
            let ceiling = 1 + options.ratioTolerance
            let verdict: GateVerdict
            if hi < floor { verdict = .regression }
            else if lo > ceiling { verdict = .improvement }
            else if interval.median < floor || interval.median > ceiling { verdict = .inconclusive }
            else { verdict = .pass }
            return .init(check: check, metric: metric, baseline: 1.0, observed: interval.median,
                         tolerance: tolerance + " [\(fixed(lo, 3)), \(fixed(hi, 3))], " + keptText, verdict: verdict.rawValue)
        }
    }

    /// 2 when anything regressed, else 4 when anything improved, else 0: rows without a base
    /// (no-baseline) and undecided ones (inconclusive) are reported, never failed.
    public static func exitCode(_ checks: [ResultsDocument.GateCheck]) -> Int32 {
        let verdicts = Set(checks.map(\.verdict))
        return verdicts.contains(GateVerdict.regression.rawValue) ? 2
            : verdicts.contains(GateVerdict.improvement.rawValue) ? 4 : 0
    }

    /// Every check, the exit code, and a results document (suite "gate-against") holding this
    /// build's A and B figures, C's throughput of this build in kept rounds, and the checks.
    public static func judge(_ evidence: RevisionEvidence, options: RevisionGateOptions) -> GateOutcome {
        var checks = exactChecks(new: evidence.new, base: evidence.base, baseCommit: evidence.baseCommit, options: options)
        var scenarios = evidence.new.scenarios
        var roundTrips: [Double] = []
        for (id, ratioEvidence) in evidence.ratios {
            let c = ratioCheck(id, ratioEvidence, baseCommit: evidence.baseCommit, options: options)
            checks.append(c)
            scenarios.append(scenario(id, ratioEvidence, check: c))
            if case let .rounds(rounds) = ratioEvidence { roundTrips += rounds.filter(keeps).flatMap(\.roundTrips) }
        }
        let classes = PlacementClasses.cluster(roundTrips)
        scenarios = scenarios.map { r in
            var r = r
            if let rtt = r.placement.flatMap(Double.init) { r.placement = PlacementClasses.classify(rtt, in: classes)?.name }
            return r
        }
        var doc = evidence.new
        doc.comparisons = evidence.ratios.compactMap { id, e in comparison(id, e, baseCommit: evidence.baseCommit, classes: classes) }
        doc.suite = "gate-against"
        doc.filter = nil
        doc.scenarios = scenarios
        let sorted = roundTrips.sorted()
        doc.calibration = .init(cachelineRoundTripNs: .init(p50: quantile(sorted: sorted, 0.5).finiteOrZero,
                                                            p99: quantile(sorted: sorted, 0.99).finiteOrZero),
                                bareRingEntriesPerSecond: .init(median: 0), wakeNs: [:])
        doc.calibration.placementClasses = classes
        doc.gate = checks
        return GateOutcome(observed: doc, checks: checks, exitCode: exitCode(checks))
    }

    /// C's evidence as a paired comparison (kind `revision`): this build ÷ the base, kept rounds.
    static func comparison(_ id: ScenarioID, _ evidence: RevisionRatioEvidence, baseCommit: String,
                           classes: [PlacementClass]) -> ResultsDocument.Comparison? {
        guard case let .rounds(rounds) = evidence else { return nil }
        let kept = rounds.filter(keeps)
        let ratios = kept.map(\.ratio).filter(\.isFinite)
        guard !ratios.isEmpty else { return nil }
        let interval = bootstrapInterval(ratios)
        let cls = kept.first.flatMap { PlacementClasses.classify($0.new.rttBeforeNs, in: classes) }
        return .init(a: id.description + " @ this build", b: id.description + " @ " + baseCommit, kind: .revision,
                     ratio: interval.median, ci95: interval.ci95, rounds: ratios.count, placement: cls?.name ?? "unclassified",
                     placementRoundTripNs: cls?.roundTripNs)
    }

    /// C's row in the document: this build's throughput over the kept rounds.
    static func scenario(_ id: ScenarioID, _ evidence: RevisionRatioEvidence, check: ResultsDocument.GateCheck) -> ScenarioResult {
        let params = ScenarioResult.Params(layout: id.layout, doorbell: id.doorbell, mediator: id.mediator, binding: id.binding,
                                           queueSize: id.queueSize, batch: id.batch, payloadBytes: id.payloadBytes,
                                           memory: id.memory, queuePairs: id.queuePairs)
        switch evidence {
        case .baseLacksMeasureRound:
            return ScenarioResult(id: id.description, params: params, status: .skipped, reason: check.tolerance)
        case let .unavailable(why):
            return ScenarioResult(id: id.description, params: params, status: .unavailable, reason: why)
        case let .rounds(rounds):
            let kept = rounds.filter(keeps)
            var r = ScenarioResult(id: id.description, params: params, status: .ok,
                                   reason: "new/base \(check.observed.map { fixed($0, 3) } ?? "-"): \(check.verdict)",
                                   repetitions: kept.count)
            if !kept.isEmpty {
                let rates = bootstrapInterval(kept.map(\.new.descPerSecond))
                let gbit = { (x: Double) in x * Double(id.payloadBytes) * 8 / 1e9 }
                r.throughput = .init(descPerSecond: rates, packetsPerSecond: rates,
                                     gbitPerSecond: .init(median: gbit(rates.median), ci95: rates.ci95.map { $0.map(gbit) }))
                // The round trip for now; judge() turns it into the class name once all are clustered.
                r.placement = kept.first.map { String($0.new.rttBeforeNs) }
            }
            return r
        }
    }
}

extension Double {
    fileprivate var finiteOrZero: Double { isFinite ? self : 0 }
}
