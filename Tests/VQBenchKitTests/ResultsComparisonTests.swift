// `compare` on two hand-made runs: which figures moved, which way, which are flagged, which
// ids only one run has, and what it says when the machines or placements differ.

import Testing
@testable import VQBenchKit

struct ResultsComparisonTests {
    static let none32 = "split/poll/none/q256/b32/64B/hugepage-2M/qp1"
    static let ifcvf32 = "split/poll/ifcvf/q256/b32/64B/hugepage-2M/qp1"

    /// B: none's throughput +10 %, ifcvf's ratio to bare −10 % and p99 +20 %, ifcvf's CPU cost
    /// +2 % (inside the threshold); the failed scenario gone, a new one added.
    static func pair() -> (ResultsDocument, ResultsDocument) {
        let a = ResultsDocument.reportSample()
        var b = a
        b.startedAt = "2026-11-27T00:00:00Z"
        b.tool.gitCommit = "def4567890"
        for i in b.scenarios.indices {
            switch b.scenarios[i].id {
            case none32:
                b.scenarios[i].throughput!.descPerSecond.median *= 1.10
            case ifcvf32:
                b.scenarios[i].ratioToBare = 0.72
                b.scenarios[i].latencyNs!.p99 *= 1.2
                b.scenarios[i].cpuNsPerDesc! *= 1.02
            default:
                break
            }
        }
        b.scenarios.removeAll { $0.params.mediator == "vdpa-sim" }
        b.scenarios.append(.sweep(mediator: "none", batch: 64, descPerSecond: 2.2e8, ratioToCalibration: 0.55, ratioToBare: 1))
        return (a, b)
    }

    func row(_ c: ResultsComparison.Comparison, _ id: String, _ metric: ResultsComparison.Comparison.Metric) throws
        -> ResultsComparison.Comparison.Row {
        try #require(c.rows.first { $0.id == id && $0.metric == metric })
    }

    @Test func flagsMovesBeyondTheThresholdInTheRightDirection() throws {
        let (a, b) = Self.pair()
        let c = ResultsComparison.compare(a, b)
        #expect(c.sameMachine && c.placementDifferences.isEmpty)
        let throughput = try row(c, Self.none32, .descPerSecond)
        #expect(throughput.a == 2e8 && throughput.move == .better && throughput.flagged)
        #expect(abs(throughput.ratio! - 1.1) < 1e-12)
        let bare = try row(c, Self.ifcvf32, .ratioToBare)
        #expect(bare.move == .worse && bare.flagged && abs(bare.ratio! - 0.9) < 1e-12)
        #expect(try row(c, Self.ifcvf32, .latencyP99).move == .worse)
        let cpu = try row(c, Self.ifcvf32, .cpuNsPerDesc)
        #expect(cpu.move == .within && !cpu.flagged)
        #expect(c.flagged.map { "\($0.id) \($0.metric.rawValue)" } == [
            "\(Self.ifcvf32) ratio_to_bare", "\(Self.ifcvf32) latency p99 (ns)", "\(Self.none32) desc/s median",
        ])
    }

    @Test func comparesOnlyScenariosInBothAndListsTheRest() throws {
        let (a, b) = Self.pair()
        let c = ResultsComparison.compare(a, b)
        #expect(c.onlyInA == ["split/poll/vdpa-sim/q256/b32/64B/hugepage-2M/qp1"])
        #expect(c.onlyInB == ["split/poll/none/q256/b64/64B/hugepage-2M/qp1"])
        #expect(c.statusChanges.map(\.id) == ["packed/io_uring-msgring/none/q256/b32/64B/hugepage-2M/qp1"])
        #expect(Set(c.rows.map(\.id)).count == 5)
        // Ratios lead each scenario's rows; absent figures (mlx5's ratio to bare) get no row.
        #expect(c.rows.filter { $0.id == Self.none32 }.map(\.metric) == ResultsComparison.Comparison.Metric.allCases)
        #expect(!c.rows.contains { $0.id.contains("mlx5") && $0.metric == .ratioToBare })
    }

    @Test func aThresholdCanBeWidened() {
        let (a, b) = Self.pair()
        let c = ResultsComparison.compare(a, b, threshold: 0.15)
        #expect(c.flagged.map(\.metric) == [.latencyP99])
    }

    @Test func onDifferentMachinesFlagsOnlyRatios() throws {
        var (a, b) = Self.pair()
        b.machine.cpuModel = "Other CPU"
        b.machine.tscHz = 3.0e9
        a.machine.tscHz = 2.4e9
        let c = ResultsComparison.compare(a, b)
        #expect(c.machineDifferences == ["cpu_model: Test CPU → Other CPU", "tsc_hz: 2400000000 → 3000000000"])
        #expect(c.flagged.map(\.metric) == [.ratioToBare])
        let throughput = try row(c, Self.none32, .descPerSecond)
        #expect(throughput.move == .better && !throughput.comparable)
        let md = c.markdown()
        #expect(md.contains("**The runs came from different machines**"))
        #expect(md.contains("- cpu_model: Test CPU → Other CPU\n"))
        #expect(md.contains("| `\(Self.none32)` | desc/s median | 200.00 M | 220.00 M | 1.100 | better (not comparable) |\n"))
        #expect(md.contains("| `\(Self.ifcvf32)` | ratio_to_bare | 0.800 | 0.720 | 0.900 | ⚑ worse |\n"))
    }

    @Test func aTSCWobbleIsNotAnotherMachine() {
        var (a, b) = Self.pair()
        a.machine.tscHz = 2.4e9
        b.machine.tscHz = 2.4e9 * 1.0004
        #expect(ResultsComparison.compare(a, b).sameMachine)
    }

    @Test func aPlacementChangeStopsFlaggingThatScenariosAbsoluteFigures() throws {
        var (a, b) = Self.pair()
        a.calibration.placements = ["near": 10]
        let i = b.scenarios.firstIndex { $0.id == Self.ifcvf32 }!
        b.scenarios[i].placement = "far"
        let c = ResultsComparison.compare(a, b)
        #expect(c.placementDifferences == [
            "placements seen: near 10 → far 3, near 7",
            "\(Self.ifcvf32): placement near → far",
        ])
        #expect(try !row(c, Self.ifcvf32, .latencyP99).flagged)
        #expect(try row(c, Self.ifcvf32, .ratioToBare).flagged)
        #expect(try row(c, Self.none32, .descPerSecond).flagged)
        #expect(c.markdown().contains("**Placements differ**"))
    }

    @Test func markdownNamesRunsFlagsAndLeftovers() {
        let (a, b) = Self.pair()
        let md = ResultsComparison.compare(a, b).markdown()
        #expect(md.hasPrefix("# Comparison 20261126T000000Z-abc123 → 20261127T000000Z-def4567\n"))
        #expect(md.contains("| `\(Self.none32)` | desc/s median | 200.00 M | 220.00 M | 1.100 | ⚑ better |\n"))
        #expect(md.contains("| `\(Self.ifcvf32)` | cpu ns/desc | 6.3 | 6.4 | 1.020 |  |\n"))
        #expect(md.contains("3 flagged of "))
        #expect(md.contains("## Only in A (20261126T000000Z-abc123)\n\n- `split/poll/vdpa-sim/q256/b32/64B/hugepage-2M/qp1`\n"))
        #expect(md.contains("## Only in B (20261127T000000Z-def4567)\n\n- `split/poll/none/q256/b64/64B/hugepage-2M/qp1`\n"))
        #expect(!md.contains("different machines"))
    }
}
