// Placement classes from recorded round trips, paired comparisons from interleaved rounds,
// their spread over repeated runs, and gate C's machine-key rule.

import Foundation
import Testing
@testable import VQBenchKit

struct PlacementClassTests {
    @Test func twoModesMakeTwoClasses() {
        let rtts: [Double] = [98, 101, 104, 99, 330, 341, 336, 102]
        let classes = PlacementClasses.cluster(rtts)
        #expect(classes.map(\.name) == ["rtt-100ns", "rtt-340ns"])
        #expect(classes.map(\.samples) == [5, 3])
        #expect(classes[0].minNs == 98 && classes[0].maxNs == 104)
    }

    @Test func threeModesAFixedThresholdWouldLumpAreThree() {
        // 70 and 100 ns both sit under the old fixed 150 ns split.
        let rtts: [Double] = [69, 71, 72, 100, 103, 97, 488, 495, 70, 101]
        let classes = PlacementClasses.cluster(rtts)
        #expect(classes.map(\.name) == ["rtt-71ns", "rtt-100ns", "rtt-490ns"])
        #expect(classes.map(\.samples) == [4, 4, 2])
    }

    @Test func aMeasurementWhosePlacementChangedHasNoClass() {
        let classes = PlacementClasses.cluster([70, 71, 100, 102])
        #expect(PlacementClasses.classify(before: 70, after: 71, in: classes)?.name == "rtt-71ns")
        #expect(PlacementClasses.classify(before: 70, after: 101, in: classes) == nil)
        // Beyond every class and not within the tolerance of any: no class.
        #expect(PlacementClasses.classify(500, in: classes) == nil)
        #expect(PlacementClasses.classify(110, in: classes)?.name == "rtt-100ns")
    }

    @Test func noRoundTripsNoClasses() {
        #expect(PlacementClasses.cluster([]).isEmpty)
        #expect(PlacementClasses.cluster([.nan, 0, -1]).isEmpty)
    }
}

struct PairedComparisonTests {
    static let split = ScenarioID(layout: "split", doorbell: "poll", memory: "4K")
    static let packed = ScenarioID(layout: "packed", doorbell: "poll", memory: "4K")
    static let eventfd = ScenarioID(layout: "split", doorbell: "eventfd", memory: "4K")
    static let sim = ScenarioID(layout: "split", doorbell: "busy-poll", mediator: "vdpa_sim", memory: "4K")
    static let simVhost = ScenarioID(layout: "split", doorbell: "busy-poll", mediator: "vdpa_sim", memory: "4K", binding: "vhost")

    static func rounds(_ rates: [Double], rtt: [Double]? = nil, pairs: [ReferencePair] = []) -> [RoundSample] {
        rates.enumerated().map { i, r in
            let t = rtt?[i] ?? 100
            return RoundSample(round: i, rate: r, toCalibration: r / 1e9, referencePairs: pairs, roundTripBeforeNs: t, roundTripAfterNs: t)
        }
    }

    @Test func pairsFollowFromTheIds() {
        let pairs = PairedComparisons.pairs([Self.split, Self.packed, Self.eventfd, Self.sim, Self.simVhost])
        let described = Set(pairs.map { "\($0.kind.rawValue) \($0.a) \($0.b)" })
        #expect(described == [
            "layout \(Self.packed) \(Self.split)",
            "doorbell \(Self.eventfd) \(Self.split)",
            "binding \(Self.simVhost) \(Self.sim)",
        ])
    }

    @Test func inOrderPairsWithItselfWithoutAndAcrossLayouts() {
        let splitIO = Self.split.with(inOrder: true)
        let packedIO = Self.packed.with(inOrder: true)
        let pairs = PairedComparisons.pairs([Self.split, splitIO, Self.packed, packedIO])
        let described = Set(pairs.map { "\($0.kind.rawValue) \($0.a) \($0.b)" })
        #expect(described == [
            "layout \(Self.packed) \(Self.split)",
            "layout \(packedIO) \(splitIO)",
            "feature \(splitIO) \(Self.split)",
            "feature \(packedIO) \(Self.packed)",
        ])
    }

    @Test func aDirtyLogPairsWithTheSameShadowedParentWithoutIt() throws {
        let svq = try ScenarioID(parsing: "packed/busy-poll/vp_vdpa+svq/q256/b32/64B/4K/qp1")
        let logged = try ScenarioID(parsing: "packed/busy-poll/vp_vdpa+svq+log/q256/b32/64B/4K/qp1")
        let splitLogged = try ScenarioID(parsing: "split/busy-poll/vp_vdpa+svq+log/q256/b32/64B/4K/qp1")
        let described = Set(PairedComparisons.pairs([svq, logged, splitLogged]).map { "\($0.kind.rawValue) \($0.a) \($0.b)" })
        #expect(described == ["feature \(logged) \(svq)", "layout \(logged) \(splitLogged)"])
    }

    @Test func ratiosComeOnlyFromRoundsInOnePlacementClass() throws {
        // Round 2 of packed ran in another placement: it pairs with nothing.
        let classes = PlacementClasses.cluster([100, 101, 102, 340, 99])
        let samples = [Self.rounds([10, 10, 10, 10]), Self.rounds([12, 12, 30, 12], rtt: [100, 101, 340, 99])]
        let comparisons = PairedComparisons.build(ids: [Self.split, Self.packed], samples: samples, classes: classes)
        let c = try #require(comparisons.first)
        #expect(comparisons.count == 1)
        #expect(c.kind == .layout && c.a == Self.packed.description && c.b == Self.split.description)
        #expect(c.rounds == 3)
        #expect(c.ratio == 1.2)
        #expect(c.placement == "rtt-100ns")
    }

    @Test func aMediatedScenarioIsComparedWithItsReferenceInShortPairs() throws {
        let classes = PlacementClasses.cluster([100, 102, 340])
        // Two pairs per round; the second of each round moved to another placement between
        // its halves (its round's own round trips did not see it): only the first counts.
        let pairs = [ReferencePair(rate: 5, ratio: 0.66, roundTripsNs: [100, 101, 100]),
                     ReferencePair(rate: 5, ratio: 0.2, roundTripsNs: [100, 340, 100])]
        let comparisons = PairedComparisons.build(ids: [Self.sim], samples: [Self.rounds([5, 5, 5], pairs: pairs)],
                                                  classes: classes)
        let c = try #require(comparisons.first)
        #expect(c.kind == .mediator && c.ratio == 0.66 && c.rounds == 3 && c.note == PairedComparisons.referenceNote)
        #expect(pairs[1].placement(in: classes) == nil && pairs[0].placement(in: classes)?.name == "rtt-100ns")
    }

    @Test func spreadIsTheIQROverTheMedian() throws {
        func run(_ r: Double) -> [ResultsDocument.Comparison] {
            [.init(a: "p", b: "s", kind: .layout, ratio: r, ci95: nil, rounds: 5, placement: "rtt-100ns", placementRoundTripNs: 100)]
        }
        let spread = try #require(PairedComparisons.spread([1.0, 1.1, 1.2, 1.3, 1.4].map(run)).first)
        #expect(spread.runs == 5 && spread.median == 1.2)
        #expect(abs(spread.iqrOverMedian - 0.2 / 1.2) < 1e-12)
        #expect(spread.min == 1.0 && spread.max == 1.4)
    }
}

struct GateMachineKeyTests {
    static func comparison(_ ratio: Double, ci: [Double]? = nil, rtt: Double = 100) -> ResultsDocument.Comparison {
        .init(a: "packed/poll/none/q256/b32/64B/4K/qp1", b: "split/poll/none/q256/b32/64B/4K/qp1", kind: .layout,
              ratio: ratio, ci95: ci ?? [ratio * 0.98, ratio * 1.02], rounds: 5, placement: PlacementClass.name(roundTripNs: rtt),
              placementRoundTripNs: rtt)
    }

    static func document(cpu: String, comparisons: [ResultsDocument.Comparison]) -> ResultsDocument {
        var doc = ResultsDocument.sample()
        doc.machine.cpuModel = cpu
        doc.machine.cpuVendor = "GenuineIntel"
        doc.scenarios = []
        doc.comparisons = comparisons
        return doc
    }

    @Test func aRatioFromAnotherMachineNeverFails() throws {
        // Recorded on a Xeon at 1.11; this is an EPYC at 0.72: another machine, no verdict.
        let baseline = Gate.updatedBaseline(observed: Self.document(cpu: "Xeon", comparisons: [Self.comparison(1.11)]),
                                            previous: nil)
        let observed = Self.document(cpu: "EPYC", comparisons: [Self.comparison(0.72)])
        let outcome = Gate.judge(observed: observed, baseline: baseline, options: GateOptions())
        let check = try #require(outcome.checks.first)
        #expect(check.verdict == "no-baseline-for-machine")
        #expect(check.tolerance.contains("no baseline for this machine"))
        #expect(outcome.exitCode == 0)
    }

    @Test func anotherPlacementClassOfTheSameCPUIsAnotherKey() throws {
        let baseline = Gate.updatedBaseline(observed: Self.document(cpu: "Xeon", comparisons: [Self.comparison(1.11, rtt: 100)]),
                                            previous: nil)
        let observed = Self.document(cpu: "Xeon", comparisons: [Self.comparison(0.5, rtt: 490)])
        let outcome = Gate.judge(observed: observed, baseline: baseline, options: GateOptions())
        #expect(outcome.checks.first?.verdict == "no-baseline-for-machine" && outcome.exitCode == 0)
    }

    @Test func theSameMachineJudgesTheWholeInterval() throws {
        let baseline = Gate.updatedBaseline(observed: Self.document(cpu: "Xeon", comparisons: [Self.comparison(1.0)]), previous: nil)
        func verdict(_ ratio: Double, _ ci: [Double]) -> (String?, Int32) {
            let o = Gate.judge(observed: Self.document(cpu: "Xeon", comparisons: [Self.comparison(ratio, ci: ci, rtt: 110)]),
                               baseline: baseline, options: GateOptions())
            return (o.checks.first?.verdict, o.exitCode)
        }
        #expect(verdict(0.98, [0.95, 1.01]) == ("pass", 0))
        #expect(verdict(0.60, [0.55, 0.65]) == ("regression", 2))
        #expect(verdict(0.70, [0.60, 0.80]) == ("inconclusive", 0))
        // A noisy ratio's improvement is reported, never a failed build.
        #expect(verdict(1.60, [1.50, 1.70]) == ("improvement", 0))
    }

    @Test func updatingKeepsOtherMachinesEntries() throws {
        let xeon = Gate.updatedBaseline(observed: Self.document(cpu: "Xeon", comparisons: [Self.comparison(1.11)]), previous: nil)
        let both = Gate.updatedBaseline(observed: Self.document(cpu: "EPYC", comparisons: [Self.comparison(0.72)]), previous: xeon)
        #expect(both.ratioBaselines?.map(\.machine.cpuModel).sorted() == ["EPYC", "Xeon"])
        let again = Gate.updatedBaseline(observed: Self.document(cpu: "EPYC", comparisons: [Self.comparison(0.80)]), previous: both)
        #expect(again.ratioBaselines?.count == 2)
        #expect(again.ratioBaselines?.first { $0.machine.cpuModel == "EPYC" }?.comparisons.first?.ratio == 0.80)
        #expect(try ResultsValidator.validate(again) == [])
    }

    @Test func resultsWithComparisonsAndSpreadConform() throws {
        var doc = Self.document(cpu: "Xeon", comparisons: [Self.comparison(1.1)])
        doc.calibration.placementClasses = PlacementClasses.cluster([100, 102])
        doc.repeatSpread = .init(runs: 2, runIDs: ["a", "b"],
                                 spread: PairedComparisons.spread([[Self.comparison(1.1)], [Self.comparison(1.2)]]))
        #expect(try ResultsValidator.validate(doc) == [])
        let back = try JSONDecoder().decode(ResultsDocument.self, from: try JSONEncoder().encode(doc))
        #expect(back == doc)
        let md = MarkdownReport.render(doc)
        #expect(md.contains("## Paired comparisons") && md.contains("## Repeatability over 2 runs"))
    }
}

struct QueueThreadingTests {
    @Test func queuesGetAThreadPairEachOnlyWhenTheCoresAllow() {
        let two = QueueThreading.plan(queues: 2, cpus: 2)
        #expect(two.threadPairs == 1 && two.queues(of: 0) == [0, 1])
        #expect(two.note?.contains("2 queues share 1 driver/device thread pair") == true)
        let roomy = QueueThreading.plan(queues: 2, cpus: 8)
        #expect(roomy.threadPairs == 2 && roomy.note == nil && roomy.queues(of: 1) == [1])
        let four = QueueThreading.plan(queues: 4, cpus: 4)
        #expect(four.threadPairs == 2 && four.queues(of: 0) == [0, 2] && four.queues(of: 1) == [1, 3])
    }

    @Test func standardSuiteMeasuresSeveralQueuePairsPolled() {
        let multi = Suite.standard.scenarios(memory: "thp").filter { $0.queuePairs > 1 }
        #expect(Set(multi.map(\.queuePairs)) == [2, 4])
        #expect(multi.allSatisfy { $0.doorbell == "poll" && $0.mediator == "none" })
    }
}

struct PairingOrderTests {
    @Test func partnersStandNextToEachOtherInARound() {
        let ids = Suite.quick.scenarios(memory: "4K")
        let order = Engine.pairingOrder(ids, Array(ids.indices)).map { ids[$0] }
        #expect(order.count == ids.count && Set(order) == Set(ids))
        for (i, id) in order.enumerated() where id.layout == "packed" {
            var split = id
            split.layout = "split"
            #expect(order[i - 1] == split, "\(id) should follow \(split)")
        }
        // vhost follows virtio of the same parent within two slots (the packed point of the
        // virtio binding stands between them when the parent runs packed rings).
        for (i, id) in order.enumerated() where id.binding == "vhost" {
            var virtio = id
            virtio.binding = "virtio"
            let j = order.firstIndex(of: virtio)!
            var packed = virtio
            packed.layout = "packed"
            #expect(i - j == (id.layout == "split" && !ids.contains(packed) ? 1 : 2), "\(id)")
        }
    }

    @Test func aPairWhoseRoundTripsDifferTooMuchIsLeftOut() {
        // One chained class spanning 100–160 ns; a at 100, b at 160 in round 1.
        let classes = PlacementClasses.cluster([100, 120, 140, 160])
        #expect(classes.count == 1)
        let a = [RoundSample(round: 0, rate: 2, toCalibration: 0, roundTripBeforeNs: 100, roundTripAfterNs: 100),
                 RoundSample(round: 1, rate: 2, toCalibration: 0, roundTripBeforeNs: 100, roundTripAfterNs: 100)]
        let b = [RoundSample(round: 0, rate: 1, toCalibration: 0, roundTripBeforeNs: 110, roundTripAfterNs: 110),
                 RoundSample(round: 1, rate: 1, toCalibration: 0, roundTripBeforeNs: 160, roundTripAfterNs: 160)]
        let c = PairedComparisons.build(ids: [PairedComparisonTests.split, PairedComparisonTests.packed], samples: [b, a],
                                        classes: classes)
        #expect(c.first?.rounds == 1)
    }
}

struct PlacementClassNameTests {
    @Test(arguments: [(44.6, "rtt-45ns"), (136.97, "rtt-140ns"), (335.0, "rtt-340ns"), (1846.0, "rtt-1800ns"), (0.0, "rtt-0ns")])
    func namesCarryTwoSignificantDigits(_ rtt: Double, _ name: String) {
        #expect(PlacementClass.name(roundTripNs: rtt) == name)
    }
}

struct ComparePairedRatioTests {
    @Test func aMoveIsFlaggedOnlyBetweenTheSameMachineKey() throws {
        let before = GateMachineKeyTests.document(cpu: "Xeon", comparisons: [GateMachineKeyTests.comparison(1.30)])
        let after = GateMachineKeyTests.document(cpu: "Xeon", comparisons: [GateMachineKeyTests.comparison(1.00)])
        let same = ResultsComparison.compare(before, after)
        let row = try #require(same.pairs.first)
        #expect(row.move == .worse && row.flagged)
        #expect(same.markdown().contains("## Paired ratios in both runs"))
        // The same move between an EPYC run and a Xeon run is shown, not flagged.
        let other = ResultsComparison.compare(GateMachineKeyTests.document(cpu: "EPYC", comparisons: [GateMachineKeyTests.comparison(1.30)]),
                                              after)
        #expect(other.pairs.first?.move == .worse && other.pairs.first?.flagged == false)
        // Overlapping intervals are no move at all.
        let noisy = ResultsComparison.compare(
            GateMachineKeyTests.document(cpu: "Xeon", comparisons: [GateMachineKeyTests.comparison(1.10, ci: [0.9, 1.3])]), after)
        #expect(noisy.pairs.first?.move == .within)
    }
}
