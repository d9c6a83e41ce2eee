// The run in github-action-benchmark's custom formats, for CI dashboards that chart a metric
// over commits: `customBiggerIsBetter` (throughput, ratios) and `customSmallerIsBetter`
// (latency, CPU cost). Only ok scenarios appear; a missing figure is left out, never zeroed.

import Foundation

public enum GithubActionBenchmarkExport {
    /// Which of the tool's two custom tools a file is for; each file holds one direction.
    public enum Direction: String, Sendable, CaseIterable {
        case biggerIsBetter = "customBiggerIsBetter"
        case smallerIsBetter = "customSmallerIsBetter"
    }

    /// One data point, in the tool's field names.
    public struct Entry: Codable, Sendable, Equatable {
        public var name: String
        public var unit: String
        public var value: Double
        public var extra: String?
        public init(name: String, unit: String, value: Double, extra: String?) {
            self.name = name
            self.unit = unit
            self.value = value
            self.extra = extra
        }
    }

    /// Throughput and ratios, for `tool: customBiggerIsBetter` (the default the brief names).
    public static func render(_ doc: ResultsDocument) -> String {
        render(doc, .biggerIsBetter)
    }

    /// Throughput (Mdesc/s) and ratios to bare and to calibration.
    public static func biggerIsBetter(_ doc: ResultsDocument) -> String { render(doc, .biggerIsBetter) }

    /// Latency p50 and p99 (ns) and CPU cost per descriptor (ns).
    public static func smallerIsBetter(_ doc: ResultsDocument) -> String { render(doc, .smallerIsBetter) }

    public static func render(_ doc: ResultsDocument, _ direction: Direction) -> String {
        let encoder = JSONEncoder()
        // Sorted keys and unescaped slashes: the same run gives the same bytes, and ids stay readable.
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Entries hold only Strings and finite Doubles, which always encode.
        let data = try! encoder.encode(entries(doc, direction))
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    public static func entries(_ doc: ResultsDocument, _ direction: Direction) -> [Entry] {
        var out: [Entry] = []
        for s in doc.scenarios.sorted(by: { $0.id < $1.id }) where s.status == .ok {
            let extra = describe(s, doc)
            func add(_ metric: String, _ unit: String, _ value: Double?) {
                // Rounded so float noise in the last bits does not show as a change on the dashboard.
                guard let value, value.isFinite else { return }
                out.append(Entry(name: "\(s.id) \(metric)", unit: unit, value: (value * 1e4).rounded() / 1e4, extra: extra))
            }
            switch direction {
            case .biggerIsBetter:
                add("throughput", "Mdesc/s", s.throughput.map { $0.descPerSecond.median / 1e6 })
                add("ratio_to_bare", "ratio", s.ratioToBare)
                add("ratio_to_calibration", "ratio", s.ratioToCalibration)
            case .smallerIsBetter:
                add("latency p50", "ns", s.latencyNs?.p50)
                add("latency p99", "ns", s.latencyNs?.p99)
                add("cpu per desc", "ns/desc", s.cpuNsPerDesc)
            }
        }
        return out
    }

    /// What a person looking at one point on the chart needs: where it ran and what was modelled.
    static func describe(_ s: ScenarioResult, _ doc: ResultsDocument) -> String {
        var parts = ["run \(doc.runID)", "\(s.repetitions) repetitions"]
        if let ci = s.throughput?.descPerSecond.ci95, ci.count == 2 {
            parts.append("ci95 [\(ReportFormat.mega(ci[0])), \(ReportFormat.mega(ci[1]))] Mdesc/s")
        }
        if let placement = s.placement { parts.append("placement \(placement)") }
        parts.append("machine \(doc.machine.cpuModel), \(doc.machine.virtualization)")
        if s.dependsOnModel {
            let modelled = s.modelled.sorted { $0.parameter < $1.parameter }
                .map { "\($0.parameter)=\(ReportFormat.compact($0.value)) (\($0.source))" }
            parts.append("modelled: " + modelled.joined(separator: ", "))
        }
        return parts.joined(separator: "; ")
    }
}
