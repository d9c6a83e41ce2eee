// The results document round-trips through JSON with the names RESULTS-SCHEMA.md gives.

import Foundation
import Testing
@testable import VQBenchKit

struct ResultsDocumentTests {
    @Test func encodesTheSchemaNames() throws {
        let doc = ResultsDocument.sample()
        let data = try JSONEncoder().encode(doc)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["schema_version"] as? Int == 1)
        let machine = try #require(object["machine"] as? [String: Any])
        #expect((machine["hugepages"] as? [String: Any])?["2M_total"] as? Int == 512)
        let scenario = try #require((object["scenarios"] as? [[String: Any]])?.first)
        #expect(scenario["ratio_to_calibration"] as? Double == 0.5)
        #expect((scenario["params"] as? [String: Any])?["queue_size"] as? Int == 256)
        let control = try #require((object["control_path"] as? [[String: Any]])?.first)
        #expect(control["operation"] as? String == "vhost: VHOST_SET_MEM_TABLE" && control["median_ns"] as? Double == 16_800)
        let back = try JSONDecoder().decode(ResultsDocument.self, from: data)
        #expect(back == doc)
    }

    @Test func markdownShowsTheControlPathInMicroseconds() {
        let md = MarkdownReport.render(.sample())
        #expect(md.contains("## Control path"))
        #expect(md.contains("| vdpa_sim | suspend | 85.6 | 111.2 | 66.1 | 111.2 | 10 |"))
    }
}

extension ResultsDocument {
    /// A small, complete document for tests.
    static func sample() -> ResultsDocument {
        ResultsDocument(
            tool: .init(name: "vqbench", version: "0.1.0", gitCommit: "abc123", dirty: false, toolchain: "Swift 6.3.1", buildConfig: "release"),
            startedAt: "2026-11-26T00:00:00Z", durationSeconds: 1.5, suite: "quick", filter: nil,
            machine: .init(cpuModel: "Test CPU", logicalCPUs: 2, kernel: "6.18.0", virtualization: "kvm", tscHz: 2.4e9,
                           hugepages: .init(total2M: 512, free2M: 500, total1G: 0, thp: "madvise"),
                           ioUring: .init(available: true, ops: ["MSG_RING"]), valgrind: "3.19.0"),
            calibration: .init(cachelineRoundTripNs: .init(p50: 52, p99: 60),
                               bareRingEntriesPerSecond: .init(median: 4e8, ci95: [3.9e8, 4.1e8]),
                               wakeNs: ["eventfd": .init(p50: 15000, p99: 30000)], placements: ["near": 7]),
            scenarios: [
                ScenarioResult(
                    id: "split/poll/none/q256/b32/64B/hugepage-2M/qp1",
                    params: .init(layout: "split", doorbell: "poll", mediator: "none", binding: "virtio", queueSize: 256,
                                  batch: 32, payloadBytes: 64, memory: "hugepage-2M", queuePairs: 1),
                    status: .ok, repetitions: 7, durationNs: 7_000_000_000, placement: "near",
                    throughput: .init(descPerSecond: .init(median: 2e8, ci95: [1.9e8, 2.1e8]),
                                      packetsPerSecond: .init(median: 2e8), gbitPerSecond: .init(median: 102.4)),
                    latencyNs: .init(count: 1000, min: 100, mean: 200, p50: 180, p90: 300, p99: 500, p999: 900, max: 2000),
                    counters: .init(kicksPer1k: 0, interruptsPer1k: 0, descPerKick: nil, syscallsPer1k: 0, mallocsInLoop: 0),
                    cpuNsPerDesc: 10, ratioToCalibration: 0.5, ratioToBare: 1.0),
                ScenarioResult(
                    id: "packed/io_uring-msgring/none/q256/b32/64B/hugepage-2M/qp1",
                    params: .init(layout: "packed", doorbell: "io_uring-msgring", mediator: "none", binding: "virtio", queueSize: 256,
                                  batch: 32, payloadBytes: 64, memory: "hugepage-2M", queuePairs: 1),
                    status: .unavailable, reason: "io_uring MSG_RING unavailable: kernel 5.15 < 5.18"),
            ],
            controlPath: [
                .init(parent: "vdpa_sim", operation: "vhost: VHOST_SET_MEM_TABLE", count: 10, medianNs: 16_800, p99Ns: 20_400,
                      minNs: 15_400, maxNs: 20_400),
                .init(parent: "vdpa_sim", operation: "suspend", count: 10, medianNs: 85_600, p99Ns: 111_200, minNs: 66_100, maxNs: 111_200),
            ])
    }
}
