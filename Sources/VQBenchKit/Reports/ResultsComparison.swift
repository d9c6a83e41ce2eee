// `compare`: two results documents side by side, scenario by scenario. Ratios come first and
// are the figures to trust across runs (each was taken against a reference inside its own
// run); absolute figures are flagged only when both runs had the same machine and placement.

public enum ResultsComparison {
    /// The moves beyond `threshold` (a fraction: 0.05 flags anything more than 5 % either way).
    public static func compare(_ a: ResultsDocument, _ b: ResultsDocument, threshold: Double = 0.05) -> Comparison {
        let machineDifferences = differences(a.machine, b.machine)
        var placementDifferences: [String] = []
        let placementsA = a.calibration.placements ?? [:], placementsB = b.calibration.placements ?? [:]
        if Set(placementsA.keys) != Set(placementsB.keys) {
            placementDifferences.append("placements seen: \(describe(placementsA)) → \(describe(placementsB))")
        }
        let byIDA = Dictionary(a.scenarios.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let byIDB = Dictionary(b.scenarios.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var rows: [Comparison.Row] = []
        var statusChanges: [Comparison.StatusChange] = []
        for id in Set(byIDA.keys).intersection(byIDB.keys).sorted() {
            let x = byIDA[id]!, y = byIDB[id]!
            guard x.status == .ok, y.status == .ok else {
                statusChanges.append(.init(id: id, a: x.status, b: y.status, reasonA: x.reason, reasonB: y.reason))
                continue
            }
            let samePlacement = x.placement == y.placement
            if !samePlacement {
                placementDifferences.append("\(id): placement \(x.placement ?? "unrecorded") → \(y.placement ?? "unrecorded")")
            }
            for metric in Comparison.Metric.allCases {
                let va = metric.value(x), vb = metric.value(y)
                guard va != nil || vb != nil else { continue }
                let comparable = metric.isRatio || (machineDifferences.isEmpty && samePlacement)
                rows.append(Comparison.Row(id: id, metric: metric, a: va, b: vb, threshold: threshold, comparable: comparable))
            }
        }
        // Paired ratios first: each was measured as a pair in one placement class of its run.
        // A move is flagged only between the same machine key (CPU, CPU count, placement class).
        let pairsB = Dictionary((b.comparisons ?? []).map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        var pairs: [Comparison.PairRow] = []
        for x in a.comparisons ?? [] {
            guard let y = pairsB[x.key] else { continue }
            let keyA = a.machineKey(placement: x.placement, roundTripNs: x.placementRoundTripNs ?? 0)
            let keyB = b.machineKey(placement: y.placement, roundTripNs: y.placementRoundTripNs ?? 0)
            pairs.append(.init(comparison: x.key, a: x, b: y, threshold: threshold, comparable: keyA.matches(keyB)))
        }
        return Comparison(
            runA: a.runID, runB: b.runID, threshold: threshold,
            machineDifferences: machineDifferences, placementDifferences: placementDifferences,
            pairs: pairs, rows: rows, statusChanges: statusChanges,
            onlyInA: Set(byIDA.keys).subtracting(byIDB.keys).sorted(),
            onlyInB: Set(byIDB.keys).subtracting(byIDA.keys).sorted())
    }

    /// What about the machine differs, one "name: a → b" line each; empty for the same machine.
    static func differences(_ a: ResultsDocument.Machine, _ b: ResultsDocument.Machine) -> [String] {
        var out: [String] = []
        func note(_ name: String, _ x: String, _ y: String) { if x != y { out.append("\(name): \(x) → \(y)") } }
        note("cpu_model", a.cpuModel, b.cpuModel)
        note("logical_cpus", String(a.logicalCPUs), String(b.logicalCPUs))
        note("kernel", a.kernel, b.kernel)
        note("virtualization", a.virtualization, b.virtualization)
        // The TSC rate is itself measured on some hosts, so it wobbles in the last digits
        // between runs on one machine; only a difference beyond 0.1 % means another CPU clock.
        if abs(a.tscHz - b.tscHz) > 0.001 * max(a.tscHz, b.tscHz) {
            note("tsc_hz", ReportFormat.compact(a.tscHz), ReportFormat.compact(b.tscHz))
        }
        return out
    }

    static func describe(_ placements: [String: Int]) -> String {
        placements.isEmpty ? "none recorded" : placements.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    public struct Comparison: Sendable, Equatable {
        public enum Metric: String, Sendable, CaseIterable {
            // Ratios first: they are the comparison to read first.
            case ratioToBare = "ratio_to_bare"
            case ratioToCalibration = "ratio_to_calibration"
            case descPerSecond = "desc/s median"
            case latencyP50 = "latency p50 (ns)"
            case latencyP99 = "latency p99 (ns)"
            case cpuNsPerDesc = "cpu ns/desc"

            /// Dimensionless and taken inside one run, so comparable across machines.
            public var isRatio: Bool { self == .ratioToBare || self == .ratioToCalibration }

            public var biggerIsBetter: Bool {
                switch self {
                case .ratioToBare, .ratioToCalibration, .descPerSecond: true
                case .latencyP50, .latencyP99, .cpuNsPerDesc: false
                }
            }

            func value(_ s: ScenarioResult) -> Double? {
                switch self {
                case .ratioToBare: s.ratioToBare
                case .ratioToCalibration: s.ratioToCalibration
                case .descPerSecond: s.throughput?.descPerSecond.median
                case .latencyP50: s.latencyNs?.p50
                case .latencyP99: s.latencyNs?.p99
                case .cpuNsPerDesc: s.cpuNsPerDesc
                }
            }

            func format(_ v: Double) -> String {
                switch self {
                case .ratioToBare, .ratioToCalibration: ReportFormat.decimal(v, 3)
                case .descPerSecond: ReportFormat.mega(v) + " M"
                case .latencyP50, .latencyP99, .cpuNsPerDesc: ReportFormat.decimal(v, 1)
                }
            }
        }

        public enum Move: String, Sendable {
            case within, better, worse
        }

        public struct Row: Sendable, Equatable {
            public var id: String
            public var metric: Metric
            public var a: Double?
            public var b: Double?
            /// b / a; nil when either is missing or a is zero.
            public var ratio: Double?
            public var move: Move
            /// False for an absolute figure from runs on different machines or placements: its
            /// move is shown but not flagged, since the runs did not measure the same thing.
            public var comparable: Bool

            public var flagged: Bool { move != .within && comparable }

            public init(id: String, metric: Metric, a: Double?, b: Double?, threshold: Double, comparable: Bool) {
                self.id = id
                self.metric = metric
                self.a = a
                self.b = b
                self.comparable = comparable
                if let a, let b, a != 0 {
                    ratio = b / a
                } else {
                    ratio = nil
                }
                if let ratio, abs(ratio - 1) > threshold {
                    move = (ratio > 1) == metric.biggerIsBetter ? .better : .worse
                } else {
                    move = .within
                }
            }
        }

        /// One paired ratio in both runs.
        public struct PairRow: Sendable, Equatable {
            public var comparison: String
            public var a: ResultsDocument.Comparison
            public var b: ResultsDocument.Comparison
            public var move: Move
            /// False when the runs' machine keys differ (another CPU, CPU count or placement class).
            public var comparable: Bool
            public var flagged: Bool { move != .within && comparable }

            public init(comparison: String, a: ResultsDocument.Comparison, b: ResultsDocument.Comparison, threshold: Double,
                        comparable: Bool) {
                self.comparison = comparison
                self.a = a
                self.b = b
                self.comparable = comparable
                let r = a.ratio != 0 ? b.ratio / a.ratio : .nan
                // A move counts only when it exceeds the threshold and the two intervals do not overlap.
                let apart = (a.ci95?.last ?? a.ratio) < (b.ci95?.first ?? b.ratio) || (b.ci95?.last ?? b.ratio) < (a.ci95?.first ?? a.ratio)
                move = r.isFinite && abs(r - 1) > threshold && apart ? (r > 1 ? .better : .worse) : .within
            }
        }

        public struct StatusChange: Sendable, Equatable {
            public var id: String
            public var a: ScenarioResult.Status
            public var b: ScenarioResult.Status
            public var reasonA: String?
            public var reasonB: String?
        }

        public var runA: String
        public var runB: String
        public var threshold: Double
        /// "name: a → b" for each machine property that differs; empty on the same machine.
        public var machineDifferences: [String]
        /// Run-level and per-scenario placement changes.
        public var placementDifferences: [String]
        /// Paired ratios present in both runs.
        public var pairs: [PairRow]
        /// Scenarios ok in both runs, ratios first within each scenario.
        public var rows: [Row]
        /// Scenarios in both runs that were not ok in at least one.
        public var statusChanges: [StatusChange]
        public var onlyInA: [String]
        public var onlyInB: [String]

        public var sameMachine: Bool { machineDifferences.isEmpty }
        public var flagged: [Row] { rows.filter(\.flagged) }
        public var flaggedPairs: [PairRow] { pairs.filter(\.flagged) }

        public func markdown() -> String {
            var out = [
                "# Comparison \(runA) → \(runB)",
                "",
                "Moves beyond ±\(ReportFormat.decimal(threshold * 100, 1)) % are flagged. Ratios are dimensionless and taken "
                    + "inside each run, so they compare across machines; absolute figures compare only on the same machine and placement.",
                "",
            ]
            if !machineDifferences.isEmpty {
                out += ["**The runs came from different machines**; absolute figures are shown but not flagged:", ""]
                out += machineDifferences.map { "- \(ReportFormat.cell($0))" }
                out.append("")
            }
            if !placementDifferences.isEmpty {
                out += ["**Placements differ**; the affected absolute figures are shown but not flagged:", ""]
                out += placementDifferences.map { "- \(ReportFormat.cell($0))" }
                out.append("")
            }
            if !pairs.isEmpty {
                out += ["## Paired ratios in both runs", "",
                        "Each a ÷ b measured in the same rounds and placement class of its run; a move is flagged when it "
                            + "exceeds the threshold, the intervals do not overlap, and both runs had the same machine key.", "",
                        "| Comparison | A [ci95] | B [ci95] | B/A | Placement A → B | Move |", "|---|---|---|---|---|---|"]
                func shown(_ c: ResultsDocument.Comparison) -> String {
                    ReportFormat.decimal(c.ratio, 3) + (c.ci95.map { " [\(ReportFormat.decimal($0[0], 3)), \(ReportFormat.decimal($0[1], 3))]" } ?? "")
                }
                for p in pairs {
                    let move = p.move == .within ? "" : p.comparable ? "⚑ \(p.move.rawValue)" : "\(p.move.rawValue) (other machine key)"
                    out.append("| \(ReportFormat.cell(p.comparison)) | \(shown(p.a)) | \(shown(p.b)) | "
                        + "\(ReportFormat.decimal(p.b.ratio / p.a.ratio, 3)) | \(p.a.placement) → \(p.b.placement) | \(move) |")
                }
                out.append("")
            }
            out += ["## Scenarios in both runs", ""]
            if rows.isEmpty {
                out += ["No scenario was ok in both runs.", ""]
            } else {
                out += ["| Scenario | Metric | A | B | B/A | Move |", "|---|---|---|---|---|---|"]
                for row in rows {
                    let move: String
                    switch (row.move, row.flagged) {
                    case (.within, _): move = ""
                    case (.better, true): move = "⚑ better"
                    case (.worse, true): move = "⚑ worse"
                    case (let m, false): move = "\(m.rawValue) (not comparable)"
                    }
                    let cells = [
                        "`\(row.id)`", row.metric.rawValue,
                        row.a.map(row.metric.format) ?? "—", row.b.map(row.metric.format) ?? "—",
                        row.ratio.map { ReportFormat.decimal($0, 3) } ?? "—", move,
                    ]
                    out.append("| " + cells.joined(separator: " | ") + " |")
                }
                out.append("")
                out.append("\(flagged.count) flagged of \(rows.count) figures.")
                out.append("")
            }
            if !statusChanges.isEmpty {
                out += ["## Not ok in one or both runs", ""]
                for c in statusChanges {
                    let reasonA = c.reasonA.map { " (\($0))" } ?? "", reasonB = c.reasonB.map { " (\($0))" } ?? ""
                    out.append("- `\(c.id)`: \(c.a.rawValue)\(reasonA) → \(c.b.rawValue)\(reasonB)")
                }
                out.append("")
            }
            for (title, ids) in [("Only in A", onlyInA), ("Only in B", onlyInB)] where !ids.isEmpty {
                out += ["## \(title) (\(title == "Only in A" ? runA : runB))", ""]
                out += ids.map { "- `\($0)`" }
                out.append("")
            }
            return out.joined(separator: "\n") + "\n"
        }
    }
}
