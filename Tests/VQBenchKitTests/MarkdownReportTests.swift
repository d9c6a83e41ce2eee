// The Markdown report: the same JSON gives the same bytes, and the rows, marks and footnotes
// a reader relies on are there.

import Foundation
import Testing
@testable import VQBenchKit

struct MarkdownReportTests {
    @Test func sameJSONGivesByteIdenticalMarkdown() throws {
        let data = try JSONEncoder().encode(ResultsDocument.reportSample())
        let first = MarkdownReport.render(try JSONDecoder().decode(ResultsDocument.self, from: data))
        let second = MarkdownReport.render(try JSONDecoder().decode(ResultsDocument.self, from: data))
        #expect(first == second)
    }

    @Test func dictionaryInsertionOrderDoesNotReachTheOutput() {
        var forward = ResultsDocument.reportSample()
        var backward = forward
        // Rebuild every dictionary from its entries in opposite orders; a report that walked a
        // dictionary in storage order would now differ between the two.
        let wake = forward.calibration.wakeNs.sorted { $0.key < $1.key }
        forward.calibration.wakeNs = Dictionary(uniqueKeysWithValues: wake)
        backward.calibration.wakeNs = Dictionary(uniqueKeysWithValues: wake.reversed())
        let placements = forward.calibration.placements!.sorted { $0.key < $1.key }
        forward.calibration.placements = Dictionary(uniqueKeysWithValues: placements)
        backward.calibration.placements = Dictionary(uniqueKeysWithValues: placements.reversed())
        backward.scenarios.reverse()
        #expect(MarkdownReport.render(forward) == MarkdownReport.render(backward))
    }

    @Test func headsTheReportWithRunSuiteAndDate() {
        let md = MarkdownReport.render(.reportSample())
        #expect(md.hasPrefix("# VirtqueueBench run 20261126T000000Z-abc123\n"))
        #expect(md.contains("Suite `quick`, started 2026-11-26T00:00:00Z, took 1.5 s."))
    }

    @Test func describesMachineAndCalibration() {
        let md = MarkdownReport.render(.reportSample())
        for line in [
            "| CPU | Test CPU |",
            "| TSC | 2.400 GHz |",
            "| Huge pages | 2 MiB: 512 reserved, 500 free; 1 GiB: 0 reserved; THP madvise |",
            "| io_uring ops | MSG_RING |",
            "| valgrind | 3.19.0 |",
            "| Cache-line round trip (ns) | 52.0 | 60.0 |",
            "| Bare ring (M entries/s) | 400.00 | [390.00, 410.00] |",
            "| Doorbell wake, eventfd (µs) | 15.00 | 30.00 |",
            "| Doorbell wake, io_uring-msgring-busy (µs) | 1.100 | 2.500 |",
            "Placements seen: far (3 rounds), near (7 rounds).",
        ] {
            #expect(md.contains(line + "\n"), "missing: \(line)")
        }
    }

    @Test func groupsTablesByLayoutThenDoorbellThenMediator() throws {
        let md = MarkdownReport.render(.reportSample())
        let headings = md.split(separator: "\n").filter { $0.hasPrefix("### ") || $0.hasPrefix("#### ") }
        #expect(headings == [
            "### Layout packed", "#### packed · doorbell io_uring-msgring",
            "### Layout split", "#### split · doorbell eventfd", "#### split · doorbell poll",
        ])
        let poll = try #require(md.range(of: "#### split · doorbell poll"))
        let table = md[poll.upperBound...].split(separator: "\n\n")[0]
        let mediators = table.split(separator: "\n").filter { $0.hasPrefix("| ") && !$0.hasPrefix("| Mediator") }
            .map { $0.split(separator: "|")[0].trimmingCharacters(in: .whitespaces) }
        #expect(mediators == ["ifcvf", "ifcvf", "none", "none", "vdpa-sim"])
    }

    @Test func marksModelledFiguresAndListsTheirSources() {
        let md = MarkdownReport.render(.reportSample())
        // Two distinct modelled sets, so the marks are numbered; unmodelled rows carry none.
        #expect(md.contains(
            "| ifcvf | virtio | 256 | 32 | 64 B | hugepage-2M | 1 | ok | 160.00†2 [152.00, 168.00] | 81.92†2 | 0.480†2 | 1.200†2 | 4.000†2 "
                + "| 31.3†2 | 31.3†2 | 0.0†2 | 6.3†2 | 0.400†2 | 0.800†2 | near |\n"))
        #expect(md.contains(
            "| none | virtio | 256 | 32 | 64 B | hugepage-2M | 1 | ok | 200.00 [190.00, 210.00] | 102.40 | 0.180 | 0.500 | 0.900 "
                + "| 0.0 | 0.0 | 0.0 | 10.0 | 0.500 | 1.000 | near |\n"))
        #expect(md.contains("†1 Used by `split/eventfd/mlx5/q256/b32/64B/hugepage-2M/qp1`:\n"))
        #expect(md.contains("- `fw_command_ns` = 250000 — source: mlx5 PRM command interface\n"))
        #expect(md.contains(
            "†2 Used by `split/poll/ifcvf/q256/b32/64B/hugepage-2M/qp1`, `split/poll/ifcvf/q256/b8/64B/hugepage-2M/qp1`:\n"))
        #expect(md.contains("- `pcie_doorbell_write_ns` = 600 — source: PCIe 4.0 posted write, VENDOR-STRATEGIES.md\n"))
    }

    @Test func oneModelledSetIsMarkedWithAPlainDagger() {
        var doc = ResultsDocument.reportSample()
        doc.scenarios.removeAll { $0.params.mediator == "mlx5" }
        let md = MarkdownReport.render(doc)
        #expect(md.contains("| 160.00† [152.00, 168.00] | 81.92† |"))
        #expect(md.contains("† Used by `split/poll/ifcvf/"))
        #expect(!md.contains("†1") && !md.contains("†2"))
    }

    @Test func showsStatusAndReasonOfScenariosThatDidNotRun() {
        let md = MarkdownReport.render(.reportSample())
        #expect(md.contains("| none | virtio | 256 | 32 | 64 B | hugepage-2M | 1 | unavailable: io_uring MSG_RING unavailable: "
            + "kernel 5.15 < 5.18 | — | — | — | — | — | — | — | — | — | — | — | — |\n"))
        // The reason's own `|` is escaped so it cannot split the cell.
        #expect(md.contains("| failed: device set NEEDS_RESET \\| queue 0 broken |"))
    }

    @Test func aShadowVirtqueueGetsItsTimeBrokenDownByThreadAndRelayWork() throws {
        var doc = ResultsDocument.reportSample()
        let ok = try #require(doc.scenarios.firstIndex { $0.status == .ok && $0.params.mediator != "none" })
        var s = doc.scenarios[ok]
        s.params.mediator = "vp_vdpa+svq"
        s.cpuNsPerDescByThread = .init(driver: 12.5, device: 20.26, relay: 300)
        s.shadowRelay = .init(translationsPerDesc: 1, deviceKicksPer1k: 31.26, driverInterruptsPer1k: 7.5, idlePassesPer1k: 40,
                              syscallsPer1k: 71.26)
        doc.scenarios.append(s)
        let md = MarkdownReport.render(doc)
        #expect(md.contains("## Shadow virtqueue: where the time goes"))
        #expect(md.contains("| vp_vdpa+svq | split | virtio | poll | "))
        #expect(md.contains(" | 12.5 | 20.3 | 300.0 | 1.00 | 31.3 | 7.5 | 40.0 | 71.3 |"), "\(md)")
        // Without a relay there is no such section.
        #expect(!MarkdownReport.render(.reportSample()).contains("Shadow virtqueue"))
        // And the document with the new names still conforms to the published schema.
        #expect(try ResultsValidator.validate(doc).isEmpty)
    }

    @Test func dirtyLoggingGetsItsCostNextToTheUnloggedRun() throws {
        var doc = ResultsDocument.reportSample()
        let ok = try #require(doc.scenarios.firstIndex { $0.status == .ok && $0.params.mediator != "none" })
        var off = doc.scenarios[ok]
        off.params.mediator = "vdpa_sim+svq"
        off.params.doorbell = "busy-poll"
        off.id = "split/busy-poll/vdpa_sim+svq/q256/b32/64B/4K/qp1"
        off.cpuNsPerDescByThread = .init(driver: 10, device: 20, relay: 200)
        var on = off
        on.params.mediator = "vdpa_sim+svq+log"
        on.id = "split/busy-poll/vdpa_sim+svq+log/q256/b32/64B/4K/qp1"
        on.cpuNsPerDescByThread = .init(driver: 10, device: 20, relay: 212.25)
        doc.scenarios += [off, on]
        doc.comparisons = (doc.comparisons ?? []) + [.init(a: on.id, b: off.id, kind: .feature, ratio: 0.9512, ci95: [0.93, 0.97], rounds: 7,
                                                           placement: "rtt-70ns", placementRoundTripNs: 70)]
        let md = MarkdownReport.render(doc)
        #expect(md.contains("## Dirty logging: what it costs"))
        #expect(md.contains("| vdpa_sim+svq+log | split | virtio | busy-poll | 0.951 | [0.930, 0.970] | 7 | 212.3 | 200.0 | 12.3 |"), "\(md)")
        #expect(!MarkdownReport.render(.reportSample()).contains("Dirty logging"))
    }

    @Test func liveMigrationsGetATableWithModelledTimeMarkedAndFailuresInBold() throws {
        var doc = ResultsDocument.reportSample()
        doc.migrations = [
            .init(from: "vdpa_sim", to: "mlx5_vnet", layout: "split", repetitions: 3, queueSize: 256, inFlight: 256,
                  downtimeMedianNs: 812_340, downtimeMaxNs: 900_000,
                  stepsNs: ["suspend": 120_000, "save": 15_000, "release_source": 22_000, "map": 80_000, "restore": 30_000, "resume": 95_500],
                  modelledNs: ["map": 1_164_000, "resume": 1_160_000], carriedOver: 400, packets: 300_768, lost: 0, duplicated: 0, ok: true),
            .init(from: "vp_vdpa+svq", to: "ifcvf", layout: "packed", repetitions: 3, queueSize: 256, inFlight: 256,
                  downtimeMedianNs: 1_000, downtimeMaxNs: 2_000, stepsNs: [:], modelledNs: [:], carriedOver: 0, packets: 10, lost: 2,
                  duplicated: 0, ok: false, errors: ["lost"]),
        ]
        let md = MarkdownReport.render(doc)
        #expect(md.contains("## Live migration"))
        #expect(md.contains("| vdpa_sim → mlx5_vnet | split | 812.3 | 120.0 | 15.0 | 22.0 | 80.0 | 30.0 | 95.5 | 2324.0 † | 400 | 0 | 0 | yes |"), "\(md)")
        #expect(md.contains("| vp_vdpa+svq → ifcvf | packed | 1.0 | — | — | — | — | — | — | — | 0 | 2 | 0 | **no** |"), "\(md)")
        #expect(!MarkdownReport.render(.reportSample()).contains("Live migration"))
        #expect(try ResultsValidator.validate(doc).isEmpty)
    }

    @Test func everyTableRowHasAsManyCellsAsTheHeader() {
        let md = MarkdownReport.render(.reportSample())
        let rows = md.split(separator: "\n").filter { $0.hasPrefix("| ") && $0.contains(" | 64 B | ") }
        #expect(rows.count == 7)
        for row in rows {
            let cells = row.replacingOccurrences(of: "\\|", with: "").split(separator: "|", omittingEmptySubsequences: false)
            #expect(cells.count - 2 == MarkdownReport.header.count, "\(row)")
        }
    }
}
