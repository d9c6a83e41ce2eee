// `gate --against`'s judge on synthetic evidence: two identical revisions pass; an injected
// regression is caught in each of A (+2 % instructions), B (+1 kick per 1000) and C (whole
// interval near 0.8); rounds whose round trips disagree are dropped; a base without
// measure-round leaves C at no-baseline. Nothing here builds a revision or times anything.

import Doorbell
import Foundation
import Testing
import Virtqueue
@testable import VQBenchKit

struct RevisionGateTests {
    static let ratioIDs = GateOptions().ratioScenarios

    /// A gate document shaped like `gate --skip-ratios` writes: A and B of both layouts, syscalls.
    static func exactCounts(instructions: (split: Double, packed: Double) = (163.2, 229.0), kicks: Double = 45.471,
                            commit: String = "aaaaaaaaaaaa") -> ResultsDocument {
        var doc = ResultsDocument.sample()
        doc.suite = "gate"
        doc.tool.gitCommit = commit
        doc.scenarios = []
        for (layout, ipd) in [(RingLayoutKind.split, instructions.split), (.packed, instructions.packed)] {
            let id = Gate.workloadID(layout)
            var r = ScenarioResult(id: id.description, params: Gate.params(id), status: .ok)
            r.instructionsPerDesc = ipd
            r.counters = .init(kicksPer1k: 0, interruptsPer1k: 0, descPerKick: nil, syscallsPer1k: 0, mallocsInLoop: 0)
            r.counters?.retainsPer1k = 0
            doc.scenarios.append(r)
            for eventIndex in [false, true] {
                let sid = Gate.scheduleID(layout, eventIndex: eventIndex)
                var s = ScenarioResult(id: sid.description, params: Gate.params(sid), status: .ok)
                s.counters = .init(kicksPer1k: kicks, interruptsPer1k: 15.137, descPerKick: 1000 / kicks, syscallsPer1k: 0,
                                   mallocsInLoop: nil)
                doc.scenarios.append(s)
            }
        }
        for transport in DoorbellTransport.all.prefix(2) {
            let id = Gate.syscallID(transport)
            var r = ScenarioResult(id: id.description, params: Gate.params(id), status: .ok)
            r.counters = .init(kicksPer1k: 1000, interruptsPer1k: 0, descPerKick: 1, syscallsPer1k: 1000, mallocsInLoop: nil)
            doc.scenarios.append(r)
        }
        return doc
    }

    static func sample(_ id: ScenarioID, rate: Double, rtt: (Double, Double)) -> MeasureRoundSample {
        MeasureRoundSample(id: id.description, descriptors: 1_000_000, descPerSecond: rate, rttBeforeNs: rtt.0, rttAfterNs: rtt.1)
    }

    /// Rounds in ABBA order whose ratios new/base are `ratios`, every round trip `rtt` unless
    /// `rtts` gives a round its own four (base before, base after, new before, new after).
    static func rounds(_ id: ScenarioID, ratios: [Double], rtt: Double = 52,
                       rtts: [Int: [Double]] = [:]) -> [RevisionRound] {
        ratios.enumerated().map { i, ratio in
            let r = rtts[i] ?? [rtt, rtt, rtt, rtt]
            let base = 4.0e6 + Double(i) * 1e4
            return RevisionRound(base: sample(id, rate: base, rtt: (r[0], r[1])),
                                 new: sample(id, rate: base * ratio, rtt: (r[2], r[3])),
                                 baseFirst: RevisionGate.baseRunsFirst(round: i))
        }
    }

    static let steady = [1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.01]

    static func evidence(new: ResultsDocument = exactCounts(), base: ResultsDocument = exactCounts(),
                         ratios: (ScenarioID) -> RevisionRatioEvidence = { .rounds(rounds($0, ratios: steady)) })
        -> RevisionEvidence {
        RevisionEvidence(baseCommit: "0123456789ab", base: base, new: new, ratios: ratioIDs.map { ($0, ratios($0)) })
    }

    func check(_ outcome: GateOutcome, _ prefix: String, _ metric: String) throws -> ResultsDocument.GateCheck {
        try #require(outcome.checks.first { $0.check.hasPrefix(prefix) && $0.metric == metric })
    }

    @Test func passesTwoIdenticalRevisions() throws {
        let outcome = RevisionGate.judge(Self.evidence(), options: RevisionGateOptions())
        #expect(outcome.exitCode == 0)
        #expect(!outcome.checks.isEmpty)
        #expect(outcome.checks.allSatisfy { $0.verdict == "pass" }, "\(outcome.checks.filter { $0.verdict != "pass" })")
        // Every kind of check is there: A, B per counter, C per ratio scenario.
        #expect(outcome.checks.filter { $0.check.hasPrefix("A ") }.count == 2)
        #expect(outcome.checks.contains { $0.metric == "kicks_per_1k" })
        #expect(outcome.checks.contains { $0.metric == "syscalls_per_1k" })
        #expect(outcome.checks.filter { $0.check.hasPrefix("C ") }.count == Self.ratioIDs.count)
        let c = try check(outcome, "C ", "desc_per_s new/base")
        #expect(c.baseline == 1.0)
        #expect(c.tolerance.contains("7/7 rounds kept"))
        #expect(outcome.checks.allSatisfy { $0.tolerance.contains("0123456789ab") })
    }

    @Test func catchesTwoPercentMoreInstructionsPerDescriptor() throws {
        let new = Self.exactCounts(instructions: (163.2 * 1.02, 229.0))
        let outcome = RevisionGate.judge(Self.evidence(new: new), options: RevisionGateOptions())
        #expect(outcome.exitCode == 2)
        let split = try #require(outcome.checks.first { $0.check == "A " + Gate.workloadID(.split).description })
        #expect(split.verdict == "regression")
        #expect(split.baseline == 163.2)
        let packed = try #require(outcome.checks.first { $0.check == "A " + Gate.workloadID(.packed).description })
        #expect(packed.verdict == "pass")
    }

    @Test func passesInstructionDriftInsideHalfAPercent() {
        let new = Self.exactCounts(instructions: (163.2 * 1.004, 229.0 * 0.996))
        let outcome = RevisionGate.judge(Self.evidence(new: new), options: RevisionGateOptions())
        #expect(outcome.exitCode == 0)
        #expect(outcome.checks.filter { $0.check.hasPrefix("A ") }.allSatisfy { $0.verdict == "pass" })
    }

    @Test func catchesOneMoreKickPerThousandDescriptors() throws {
        let new = Self.exactCounts(kicks: 45.471 + 1)
        let outcome = RevisionGate.judge(Self.evidence(new: new), options: RevisionGateOptions())
        #expect(outcome.exitCode == 2)
        let kicks = outcome.checks.filter { $0.metric == "kicks_per_1k" }
        #expect(kicks.count == 4)
        #expect(kicks.allSatisfy { $0.verdict == "regression" })
        #expect(outcome.checks.filter { $0.metric == "interrupts_per_1k" }.allSatisfy { $0.verdict == "pass" })
    }

    @Test func catchesAWholeIntervalAtPointEight() throws {
        let slow = [0.80, 0.79, 0.82, 0.81, 0.78, 0.80, 0.83]
        let outcome = RevisionGate.judge(Self.evidence(ratios: { .rounds(Self.rounds($0, ratios: slow)) }), options: RevisionGateOptions())
        #expect(outcome.exitCode == 2)
        let c = try check(outcome, "C ", "desc_per_s new/base")
        #expect(c.verdict == "regression")
        #expect(abs(try #require(c.observed) - 0.80) < 1e-9)
        #expect(outcome.checks.filter { $0.check.hasPrefix("A ") || $0.check.hasPrefix("B ") }.allSatisfy { $0.verdict == "pass" })
    }

    @Test func callsAWholeIntervalAboveTheToleranceAnImprovement() throws {
        let fast = [1.20, 1.22, 1.19, 1.21, 1.20, 1.23, 1.18]
        let outcome = RevisionGate.judge(Self.evidence(ratios: { .rounds(Self.rounds($0, ratios: fast)) }), options: RevisionGateOptions())
        #expect(outcome.exitCode == 4)
        #expect(try check(outcome, "C ", "desc_per_s new/base").verdict == "improvement")
    }

    @Test func callsAMedianOutsideWithAStraddlingIntervalInconclusive() throws {
        // Median 0.88, but rounds reach above 0.9: not clearly slower, reported, not failed.
        let mixed = [0.70, 0.88, 0.95, 0.86, 0.99, 0.88, 0.75]
        let outcome = RevisionGate.judge(Self.evidence(ratios: { .rounds(Self.rounds($0, ratios: mixed)) }), options: RevisionGateOptions())
        let c = try check(outcome, "C ", "desc_per_s new/base")
        #expect(c.verdict == "inconclusive")
        #expect(outcome.exitCode == 0)
        // A wider tolerance puts the same median inside: pass.
        var wide = RevisionGateOptions()
        wide.ratioTolerance = 0.2
        #expect(try check(RevisionGate.judge(Self.evidence(ratios: { .rounds(Self.rounds($0, ratios: mixed)) }), options: wide),
                          "C ", "desc_per_s new/base").verdict == "pass")
    }

    @Test func rejectsRoundsWhoseRoundTripsDisagree() throws {
        // Rounds 1, 3 and 5 saw the placement move (near 52 ns to far 335 ns, or within far by
        // more than 25 %), and only they are slow: dropped, the rest pass.
        let ratios = [1.0, 0.5, 1.01, 0.5, 0.99, 0.5, 1.0]
        let moved: [Int: [Double]] = [1: [52, 52, 335, 335], 3: [52, 335, 335, 335], 5: [200, 200, 200, 260]]
        let id = Self.ratioIDs[0]
        let all = Self.rounds(id, ratios: ratios, rtts: moved)
        #expect(all.map(RevisionGate.keeps) == [true, false, true, false, true, false, true])
        let c = RevisionGate.ratioCheck(id, .rounds(all), baseCommit: "0123456789ab", options: RevisionGateOptions())
        #expect(c.verdict == "pass")
        #expect(c.tolerance.contains("4/7 rounds kept"))
        #expect(abs(try #require(c.observed) - 1.0) < 1e-9)
        // Kept, the same rounds would have failed the check.
        let unfiltered = RevisionGate.ratioCheck(id, .rounds(Self.rounds(id, ratios: ratios)), baseCommit: "x",
                                                 options: RevisionGateOptions())
        #expect(abs(try #require(unfiltered.observed) - 0.99) < 1e-9)
    }

    @Test func callsTooFewKeptRoundsInconclusive() throws {
        let id = Self.ratioIDs[0]
        let moved: [Int: [Double]] = [0: [52, 335, 52, 52], 1: [52, 52, 335, 52], 2: [52, 52, 52, 335], 3: [335, 52, 52, 52], 4: [52, 335, 335, 52]]
        let rounds = Self.rounds(id, ratios: [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], rtts: moved)
        let c = RevisionGate.ratioCheck(id, .rounds(rounds), baseCommit: "0123456789ab", options: RevisionGateOptions())
        #expect(c.verdict == "inconclusive")
        #expect(c.tolerance.contains("2/7 rounds kept"))
        #expect(RevisionGate.exitCode([c]) == 0)
    }

    @Test(arguments: [
        (100.0, 125.0, true), (125.0, 100.0, true), (100.0, 126.0, false), (52.0, 335.0, false),
        (335.0, 300.0, true), (0.0, 0.0, false), (Double.nan, 100.0, false),
    ])
    func samePlacementClassIsWithinTwentyFivePercent(_ a: Double, _ b: Double, _ same: Bool) {
        #expect(PlacementClasses.samePlacement(a, b) == same)
    }

    @Test func saysNoBaselineWhenTheBaseLacksMeasureRound() throws {
        let outcome = RevisionGate.judge(Self.evidence(ratios: { _ in .baseLacksMeasureRound }), options: RevisionGateOptions())
        #expect(outcome.exitCode == 0)
        let cs = outcome.checks.filter { $0.check.hasPrefix("C ") }
        #expect(cs.count == Self.ratioIDs.count)
        #expect(cs.allSatisfy { $0.verdict == "no-baseline" && $0.observed == nil })
        #expect(cs.allSatisfy { $0.tolerance.hasPrefix("base revision has no measure-round: C not compared") })
        // A and B still decide.
        let regressed = RevisionGate.judge(Self.evidence(new: Self.exactCounts(kicks: 46.471), ratios: { _ in .baseLacksMeasureRound }),
                                           options: RevisionGateOptions())
        #expect(regressed.exitCode == 2)
    }

    @Test func alternatesTheOrderRoundByRound() {
        #expect((0..<6).map(RevisionGate.baseRunsFirst) == [true, false, true, false, true, false])
        let round = Self.rounds(Self.ratioIDs[0], ratios: [1, 1], rtts: [1: [10, 11, 12, 13]])[1]
        // New ran first in round 1, so its round trips come first.
        #expect(round.roundTrips == [12, 13, 10, 11])
    }

    @Test func sizesRunsToTheTimeWithinBounds() {
        #expect(RevisionGate.descriptorsPerRun(descPerSecond: 10e6, seconds: 0.3, batch: 32) == 3_000_000)
        #expect(RevisionGate.descriptorsPerRun(descPerSecond: 100, seconds: 0.3, batch: 32) == 32 * 64)
        #expect(RevisionGate.descriptorsPerRun(descPerSecond: 1e12, seconds: 0.3, batch: 32) == 50_000_000)
        #expect(RevisionGate.descriptorsPerRun(descPerSecond: .nan, seconds: 0.3, batch: 32) == 32 * 64)
    }

    @Test func writesAValidGateAgainstDocument() throws {
        let outcome = RevisionGate.judge(Self.evidence(), options: RevisionGateOptions())
        let doc = outcome.observed
        #expect(doc.suite == "gate-against")
        #expect(doc.gate == outcome.checks)
        let cScenario = try #require(doc.scenarios.first { $0.id == Self.ratioIDs[0].description })
        #expect(cScenario.repetitions == 7)
        #expect(cScenario.throughput != nil)
        #expect(doc.calibration.cachelineRoundTripNs.p50 == 52)
        let problems = try ResultsValidator.validate(data: try ResultsWriter.encode(doc))
        #expect(problems.isEmpty, "\(problems)")
        #expect(try ResultsWriter.decode(try ResultsWriter.encode(doc)) == doc)
    }

    @Test func readsTheMeasureRoundLineAfterOtherOutput() throws {
        let s = MeasureRoundSample(id: "split/poll/none/q256/b32/64B/4K/qp1", descriptors: 3, descPerSecond: 1.5e7,
                                   rttBeforeNs: 52.5, rttAfterNs: 60)
        let line = try s.jsonLine()
        #expect(!line.contains("\n"))
        for key in ["\"id\"", "\"descriptors\"", "\"desc_per_s\"", "\"rtt_before_ns\"", "\"rtt_after_ns\""] {
            #expect(line.contains(key), "\(key) missing from \(line)")
        }
        #expect(MeasureRoundSample.parse("note: something\n" + line + "\n") == s)
        #expect(MeasureRoundSample.parse("Error: Unexpected argument 'measure-round'\n") == nil)
    }
}
