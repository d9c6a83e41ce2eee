// Writes a results document (and, from it, its reports) into the results directory, named
// by run id: the UTC start time and the short commit.

import Foundation

public enum ResultsWriter {
    public static func encode(_ doc: ResultsDocument) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(doc)
    }

    public static func decode(_ data: Data) throws -> ResultsDocument {
        try JSONDecoder().decode(ResultsDocument.self, from: data)
    }

    /// Writes `<run-id>.json` and the rendered reports; returns the paths written.
    @discardableResult
    public static func write(_ doc: ResultsDocument, to directory: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let base = directory + "/" + doc.runID
        try encode(doc).write(to: URL(fileURLWithPath: base + ".json"))
        return [base + ".json"] + (try writeReports(doc, base: base))
    }

    /// Writes the reports rendered from `doc` next to `base` (a path without extension).
    public static func writeReports(_ doc: ResultsDocument, base: String) throws -> [String] {
        var written: [String] = []
        for (suffix, text) in ReportSet.render(doc) {
            let path = base + suffix
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            written.append(path)
        }
        return written
    }
}

/// Every rendered report of a document: file suffix → contents, in a fixed order.
public enum ReportSet {
    public static func render(_ doc: ResultsDocument) -> [(String, String)] {
        var out: [(String, String)] = [(".md", MarkdownReport.render(doc))]
        for (name, svg) in SVGPlots.render(doc).sorted(by: { $0.key < $1.key }) { out.append(("-" + name, svg)) }
        out.append(("-github-benchmark-bigger.json", GithubActionBenchmarkExport.biggerIsBetter(doc)))
        out.append(("-github-benchmark-smaller.json", GithubActionBenchmarkExport.smallerIsBetter(doc)))
        return out
    }
}

/// The terminal summary at the end of a run.
public enum SummaryTable {
    public static func render(_ doc: ResultsDocument) -> String {
        var lines: [String] = []
        let c = doc.calibration
        lines.append("calibration: cache-line round trip \(fixed(c.cachelineRoundTripNs.p50, 0)) ns, bare ring \(fixed(c.bareRingEntriesPerSecond.median / 1e6, 1)) M entries/s")
        // "× no mediator": a mediated scenario over the same device model on bare rings with
        // the same doorbell, measured in the same rounds.
        let header = ["scenario", "status", "Mdesc/s", "× bare ring", "× no mediator", "p50 µs", "p99 µs", "kicks/1k", "irqs/1k",
                      "syscalls/1k", "cpu ns/desc", "placement"]
        var rows: [[String]] = [header]
        for r in doc.scenarios {
            if r.status != .ok {
                rows.append([r.id, r.status.rawValue] + Array(repeating: "-", count: header.count - 2))
                continue
            }
            rows.append([
                r.id, "ok",
                r.throughput.map { fixed($0.descPerSecond.median / 1e6, 2) } ?? "-",
                r.ratioToCalibration.map { fixed($0, 3) } ?? "-",
                r.ratioToBare.map { ratio in
                    fixed(ratio, 3) + (r.ratioToBareCI95.map { " [\(fixed($0[0], 2))–\(fixed($0[1], 2))]" } ?? "")
                } ?? "-",
                r.latencyNs.map { fixed($0.p50 / 1000, 1) } ?? "-",
                r.latencyNs.map { fixed($0.p99 / 1000, 1) } ?? "-",
                r.counters.map { fixed($0.kicksPer1k, 1) } ?? "-",
                r.counters.map { fixed($0.interruptsPer1k, 1) } ?? "-",
                r.counters.map { fixed($0.syscallsPer1k, 1) } ?? "-",
                r.cpuNsPerDesc.map { fixed($0, 1) } ?? "-",
                r.placement ?? "-",
            ])
        }
        let widths = header.indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
        for row in rows {
            lines.append(row.enumerated().map { i, cell in
                i == 0 || i == 1 ? cell + String(repeating: " ", count: widths[i] - cell.count)
                    : String(repeating: " ", count: widths[i] - cell.count) + cell
            }.joined(separator: "  "))
        }
        for r in doc.scenarios where r.status != .ok {
            lines.append("  \(r.id): \(r.status.rawValue): \(r.reason ?? "")")
        }
        if let classes = doc.calibration.placementClasses, !classes.isEmpty {
            lines.append("placement classes (clusters of this run's cache-line round trips): "
                + classes.map { "\($0.name) \(fixed($0.minNs, 0))–\(fixed($0.maxNs, 0)) ns ×\($0.samples)" }.joined(separator: ", "))
        }
        if let comparisons = doc.comparisons, !comparisons.isEmpty {
            lines.append("")
            lines.append(ComparisonTable.render(comparisons))
        }
        if let spread = doc.repeatSpread {
            lines.append("")
            lines.append(ComparisonTable.render(spread))
        }
        return lines.joined(separator: "\n")
    }
}

/// Paired ratios as the terminal prints them: one line each, a ÷ b, its interval, the rounds
/// and the placement class it came from.
public enum ComparisonTable {
    public static func render(_ comparisons: [ResultsDocument.Comparison]) -> String {
        let header = ["paired ratio (a ÷ b, same rounds, same placement)", "kind", "ratio", "95% CI", "rounds", "placement"]
        let rows = [header] + comparisons.map { c in
            [c.a + " ÷ " + (c.kind == .mediator ? "bare reference" : shortB(c)), c.kind.rawValue, fixed(c.ratio, 3),
             c.ci95.map { "\(fixed($0[0], 3))–\(fixed($0[1], 3))" } ?? "-", String(c.rounds), c.placement]
        }
        return align(rows)
    }

    public static func render(_ r: ResultsDocument.Repeat) -> String {
        let header = ["spread over \(r.runs) runs", "kind", "median", "IQR/median", "min", "max", "placements"]
        let rows = [header] + r.spread.map { s in
            [s.comparison, s.kind.rawValue, fixed(s.median, 3), fixed(s.iqrOverMedian * 100, 1) + "%", fixed(s.min, 3),
             fixed(s.max, 3), Array(Set(s.placements)).sorted().joined(separator: " ")]
        }
        return align(rows)
    }

    /// b written as the part of its id that differs from a (the layout, doorbell or binding).
    static func shortB(_ c: ResultsDocument.Comparison) -> String {
        let a = c.a.split(separator: "/", omittingEmptySubsequences: false)
        let b = c.b.split(separator: "/", omittingEmptySubsequences: false)
        guard a.count >= 8, b.count >= 8 else { return c.b }
        let differing = zip(a, b).filter { $0 != $1 }.map { String($0.1) }
        if differing.isEmpty { return b.count < a.count ? "virtio" : c.b }
        return differing.joined(separator: "/")
    }

    static func align(_ rows: [[String]]) -> String {
        let widths = rows[0].indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { i, cell in
                i <= 1 ? cell + String(repeating: " ", count: widths[i] - cell.count)
                    : String(repeating: " ", count: widths[i] - cell.count) + cell
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
