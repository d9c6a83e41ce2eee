// The github-action-benchmark export: valid JSON in the tool's entry shape, one entry per
// figure of each ok scenario, in the direction its tool expects.

import Foundation
import Testing
@testable import VQBenchKit

struct GithubActionBenchmarkExportTests {
    func parse(_ json: String) throws -> [[String: Any]] {
        try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
    }

    @Test func biggerIsBetterHoldsThroughputAndRatiosOfOkScenarios() throws {
        let entries = try parse(GithubActionBenchmarkExport.render(.reportSample()))
        let names = entries.compactMap { $0["name"] as? String }
        let none32 = "split/poll/none/q256/b32/64B/hugepage-2M/qp1"
        #expect(names.contains("\(none32) throughput"))
        #expect(names.contains("\(none32) ratio_to_bare"))
        #expect(names.contains("\(none32) ratio_to_calibration"))
        // mlx5 has no ratio to bare; the unavailable and failed scenarios give nothing.
        #expect(!names.contains("split/eventfd/mlx5/q256/b32/64B/hugepage-2M/qp1 ratio_to_bare"))
        #expect(!names.contains { $0.hasPrefix("packed/") || $0.contains("vdpa-sim") })
        #expect(names.count == 5 + 5 + 4)
        #expect(Set(names).count == names.count)
        let throughput = try #require(entries.first { $0["name"] as? String == "\(none32) throughput" })
        #expect(throughput["unit"] as? String == "Mdesc/s")
        #expect(throughput["value"] as? Double == 200)
        #expect((throughput["extra"] as? String)?.contains("ci95 [190.00, 210.00] Mdesc/s") == true)
    }

    @Test func smallerIsBetterHoldsLatencyAndCPUCost() throws {
        let entries = try parse(GithubActionBenchmarkExport.smallerIsBetter(.reportSample()))
        let byName = Dictionary(uniqueKeysWithValues: entries.map { ($0["name"] as! String, $0) })
        let ifcvf = "split/poll/ifcvf/q256/b32/64B/hugepage-2M/qp1"
        #expect(byName["\(ifcvf) latency p50"]?["value"] as? Double == 480)
        #expect(byName["\(ifcvf) latency p99"]?["unit"] as? String == "ns")
        #expect(byName["\(ifcvf) cpu per desc"]?["unit"] as? String == "ns/desc")
        #expect((byName["\(ifcvf) cpu per desc"]?["extra"] as? String)?.contains("modelled: pcie_doorbell_write_ns=600") == true)
        // Three scenarios measured latency, five measured CPU cost.
        #expect(entries.count == 3 * 2 + 5)
    }

    @Test func renderIsDeterministicAndCarriesNoEscapedSlashes() {
        let doc = ResultsDocument.reportSample()
        for direction in GithubActionBenchmarkExport.Direction.allCases {
            let once = GithubActionBenchmarkExport.render(doc, direction)
            #expect(once == GithubActionBenchmarkExport.render(doc, direction))
            #expect(!once.contains("\\/"))
        }
    }

    @Test func aRunWithNothingOkExportsAnEmptyArray() throws {
        var doc = ResultsDocument.sample()
        doc.scenarios.removeAll { $0.status == .ok }
        #expect(try parse(GithubActionBenchmarkExport.biggerIsBetter(doc)).isEmpty)
    }
}
