// Hand-made results documents for the report, plot, export, compare and schema tests: the
// small `sample()` plus mediators with modelled values, a batch sweep and every optional field.

import Foundation
@testable import VQBenchKit

extension ResultsDocument {
    /// `sample()` grown into a run with something for every report to show: two modelled
    /// parameter sets, a failed scenario whose reason needs escaping, a batch sweep, a gate.
    static func reportSample() -> ResultsDocument {
        var doc = sample()
        doc.calibration.wakeNs["io_uring-msgring-busy"] = .init(p50: 1100, p99: 2500)
        doc.calibration.placements = ["near": 7, "far": 3]
        doc.gate = [.init(check: "ring-throughput", metric: "split/poll/none desc/s", baseline: 2e8, observed: 1.98e8,
                          tolerance: "5%", verdict: "pass")]
        let doorbellWrite = ScenarioResult.ModelledParameter(
            parameter: "pcie_doorbell_write_ns", value: 600, source: "PCIe 4.0 posted write, VENDOR-STRATEGIES.md")
        let firmwareCommand = ScenarioResult.ModelledParameter(
            parameter: "fw_command_ns", value: 250_000, source: "mlx5 PRM command interface")
        doc.scenarios += [
            .sweep(mediator: "none", batch: 8, descPerSecond: 1.2e8, ratioToCalibration: 0.3, ratioToBare: 1.0),
            .sweep(mediator: "ifcvf", batch: 8, descPerSecond: 1.0e8, ratioToCalibration: 0.25, ratioToBare: 0.833,
                   modelled: [doorbellWrite]),
            .sweep(mediator: "ifcvf", batch: 32, descPerSecond: 1.6e8, ratioToCalibration: 0.4, ratioToBare: 0.8,
                   modelled: [doorbellWrite],
                   latency: .init(count: 1000, min: 300, mean: 520, p50: 480, p90: 700, p99: 1200, p999: 4000, max: 25000)),
            .sweep(mediator: "mlx5", doorbell: "eventfd", batch: 32, descPerSecond: 9e7, ratioToCalibration: 0.225,
                   ratioToBare: nil, modelled: [firmwareCommand, doorbellWrite],
                   latency: .init(count: 1000, min: 9000, mean: 16000, p50: 15000, p90: 21000, p99: 30000, p999: 45000, max: 90000)),
            ScenarioResult(
                id: "split/poll/vdpa-sim/q256/b32/64B/hugepage-2M/qp1",
                params: .init(layout: "split", doorbell: "poll", mediator: "vdpa-sim", binding: "virtio", queueSize: 256,
                              batch: 32, payloadBytes: 64, memory: "hugepage-2M", queuePairs: 1),
                status: .failed, reason: "device set NEEDS_RESET | queue 0 broken"),
        ]
        return doc
    }
}

extension ScenarioResult {
    /// An ok split-ring scenario at queue 256, 64 B payloads, 2 MiB pages, one queue pair.
    static func sweep(mediator: String, doorbell: String = "poll", batch: Int, descPerSecond: Double,
                      ratioToCalibration: Double?, ratioToBare: Double?, modelled: [ModelledParameter] = [],
                      latency: Latency? = nil) -> ScenarioResult {
        ScenarioResult(
            id: "split/\(doorbell)/\(mediator)/q256/b\(batch)/64B/hugepage-2M/qp1",
            params: .init(layout: "split", doorbell: doorbell, mediator: mediator, binding: "virtio", queueSize: 256,
                          batch: batch, payloadBytes: 64, memory: "hugepage-2M", queuePairs: 1),
            status: .ok, modelled: modelled, repetitions: 7, durationNs: 7_000_000_000, placement: "near",
            throughput: .init(descPerSecond: .init(median: descPerSecond, ci95: [descPerSecond * 0.95, descPerSecond * 1.05]),
                              packetsPerSecond: .init(median: descPerSecond),
                              gbitPerSecond: .init(median: descPerSecond * 64 * 8 / 1e9)),
            latencyNs: latency,
            counters: .init(kicksPer1k: 1000 / Double(batch), interruptsPer1k: 1000 / Double(batch), descPerKick: Double(batch),
                            syscallsPer1k: doorbell == "poll" ? 0 : 2000 / Double(batch), mallocsInLoop: 0),
            cpuNsPerDesc: 1e9 / descPerSecond, ratioToCalibration: ratioToCalibration, ratioToBare: ratioToBare,
            controlPathNs: ["bring_up": 180_000, "set_map": 5000], instructionsPerDesc: 42)
    }
}
