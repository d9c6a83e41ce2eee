// results/<run-id>-*.svg: the plots of a run, drawn from the results document alone
// (latency percentiles per mediator, throughput against batch, ratios per mediator).

import Foundation

public enum SVGPlots {
    /// Every plot, keyed by the suffix of its file name (`<run-id>-latency.svg`, …).
    public static func render(_ doc: ResultsDocument) -> [String: String] {
        var plots = ["latency.svg": latency(doc), "ratios.svg": ratios(doc)]
        // A line needs two batch sizes: a run without such a series gets no batch plot at all.
        if !batchSeries(doc).isEmpty { plots["throughput-vs-batch.svg"] = throughputVsBatch(doc) }
        return plots
    }

    static let dagger = ["† rests on a modelled value", "(see the .md report)"]

    // MARK: - Latency percentiles

    /// The percentile columns on a 1/(1−p) axis, where each extra nine gets the same width, so
    /// a tail that grows by a constant factor per nine draws a straight line.
    static let percentileColumns: [(label: String, x: Double, value: @Sendable (ScenarioResult.Latency) -> Double)] = [
        ("50%", log10(2), { $0.p50 }), ("90%", 1, { $0.p90 }), ("99%", 2, { $0.p99 }), ("99.9%", 3, { $0.p999 }),
        // The max's own p depends on the sample count, so it gets a column of its own rather
        // than a place on the axis it has not earned.
        ("max", 4, { $0.max }),
    ]

    /// One line per mediator. Mediators are only comparable at equal settings, so the plot
    /// shows the configuration (all parameters but the mediator) that the most mediators
    /// share, and says which it is.
    public static func latency(_ doc: ResultsDocument) -> String {
        let title = "Latency percentiles per mediator"
        let measured = doc.scenarios.filter { $0.status == .ok && $0.latencyNs != nil }
        guard !measured.isEmpty else {
            return SVGCanvas.noData(title: title, reason: "no scenario in this run measured latency")
        }
        let groups = Dictionary(grouping: measured) { settingsLabel($0.params, includingMediator: false) }
        let chosen = groups.keys.sorted().max {
            Set(groups[$0]!.map(\.params.mediator)).count < Set(groups[$1]!.map(\.params.mediator)).count
        }!
        var lines: [ScenarioResult] = []
        for s in groups[chosen]!.sorted(by: { ($0.params.mediator, $0.id) < ($1.params.mediator, $1.id) })
        where lines.last?.params.mediator != s.params.mediator {
            lines.append(s)
        }
        // A run with one mediator (e.g. only bare rings) compares its doorbells instead:
        // one line per layout/doorbell at the same queue, batch, payload and memory.
        let oneMediator = Set(measured.map(\.params.mediator)).count == 1
        if oneMediator {
            let bySettings = Dictionary(grouping: measured) { s in
                "q\(s.params.queueSize) · b\(s.params.batch) · \(s.params.payloadBytes)B · \(s.params.memory)"
            }
            let key = bySettings.keys.sorted().max { bySettings[$0]!.count < bySettings[$1]!.count }!
            lines = bySettings[key]!.sorted { $0.id < $1.id }
        }
        let valuesUs = lines.flatMap { s in percentileColumns.map { $0.value(s.latencyNs!) / 1000 } }
        guard valuesUs.contains(where: { $0 > 0 && $0.isFinite }) else {
            return SVGCanvas.noData(title: title, reason: "every latency recorded was zero")
        }
        var subtitle = "\(doc.runID) · \(oneMediator ? "mediator \(lines[0].params.mediator), per layout/doorbell" : chosen)"
        if lines.count < measured.count { subtitle += " · \(lines.count) of \(measured.count) latency scenarios" }
        var canvas = SVGCanvas(title: title, subtitle: subtitle)
        let x = { (v: Double) in SVGCanvas.left + (v - 0.1) / 4.1 * (SVGCanvas.right - SVGCanvas.left) }
        let y = LogAxis(covering: valuesUs, from: canvas.bottom, to: SVGCanvas.top)
        canvas.frame(xLabel: "percentile (1/(1−p) scale)", yLabel: "latency (µs, log scale)")
        for column in percentileColumns { canvas.xTick(x(column.x), column.label) }
        for decade in y.decades { canvas.yTick(y.position(decade), ReportFormat.compact(decade)) }
        var legend: [(label: String, color: String)] = []
        for (index, s) in lines.enumerated() {
            let color = SVGCanvas.color(index)
            // A zero cannot sit on a log axis; it is left out rather than drawn at the edge.
            let points = percentileColumns.compactMap { column -> (x: Double, y: Double)? in
                let us = column.value(s.latencyNs!) / 1000
                return us > 0 && us.isFinite ? (x(column.x), y.position(us)) : nil
            }
            let label = (oneMediator ? "\(s.params.layout)/\(s.params.doorbell)" : s.params.mediator) + (s.dependsOnModel ? " †" : "")
            canvas.series(points, color: color, label: label)
            legend.append((label, color))
        }
        canvas.legend(legend, footnote: lines.contains(where: \.dependsOnModel) ? dagger : [])
        return canvas.svg()
    }

    // MARK: - Throughput against batch

    /// One line per series of scenarios that differ only in batch size; labels name layout,
    /// doorbell and mediator, plus any other parameter that varies in this run.
    /// Series of scenarios that differ only in batch size, keyed by label; only those with
    /// two or more batch sizes.
    static func batchSeries(_ doc: ResultsDocument) -> [String: [ScenarioResult]] {
        let measured = doc.scenarios.filter { $0.status == .ok && $0.throughput != nil && $0.params.batch > 0 }
        let varying = varyingExtras(measured.map(\.params))
        let series = Dictionary(grouping: measured) { s in
            ([s.params.layout, s.params.doorbell, s.params.mediator] + varying.map { $0.1(s.params) })
                .joined(separator: "/")
        }
        return series.filter { Set($0.value.map(\.params.batch)).count >= 2 }
    }

    public static func throughputVsBatch(_ doc: ResultsDocument) -> String {
        let title = "Throughput against batch size"
        let series = batchSeries(doc)
        guard !series.isEmpty else {
            return SVGCanvas.noData(title: title, reason: "no series in this run measured two or more batch sizes")
        }
        let measured = series.values.flatMap { $0 }
        let labels = series.keys.sorted()
        let batches = Set(measured.map(\.params.batch)).sorted()
        let mdesc = measured.map { $0.throughput!.descPerSecond.median / 1e6 }
        var canvas = SVGCanvas(title: title, subtitle: "\(doc.runID) · one line per layout/doorbell/mediator series")
        // log2 for batch: sizes are powers of two in practice, and each doubling gets equal room.
        let low = log2(Double(batches.first!)) - 0.5, high = log2(Double(batches.last!)) + 0.5
        let x = { (b: Int) in SVGCanvas.left + (log2(Double(b)) - low) / (high - low) * (SVGCanvas.right - SVGCanvas.left) }
        let y = LinearAxis(upTo: mdesc.max()!, from: canvas.bottom, to: SVGCanvas.top)
        canvas.frame(xLabel: "batch (descriptors per kick, log2 scale)", yLabel: "throughput (Mdesc/s)")
        for b in batches { canvas.xTick(x(b), String(b)) }
        for t in y.ticks { canvas.yTick(y.position(t), ReportFormat.compact(t)) }
        var legend: [(label: String, color: String)] = []
        for (index, label) in labels.enumerated() {
            let members = series[label]!.sorted { ($0.params.batch, $0.id) < ($1.params.batch, $1.id) }
            let points = members.map { (x: x($0.params.batch), y: y.position($0.throughput!.descPerSecond.median / 1e6)) }
            let shown = label + (members.contains(where: \.dependsOnModel) ? " †" : "")
            canvas.series(points, color: SVGCanvas.color(index), label: shown)
            legend.append((shown, SVGCanvas.color(index)))
        }
        canvas.legend(legend, footnote: measured.contains(where: \.dependsOnModel) ? dagger : [])
        return canvas.svg()
    }

    /// The parameters besides layout, doorbell, mediator and batch that take more than one value.
    static func varyingExtras(_ params: [ScenarioResult.Params]) -> [(String, (ScenarioResult.Params) -> String)] {
        let extras: [(String, (ScenarioResult.Params) -> String)] = [
            ("binding", { $0.binding }), ("queue", { "q\($0.queueSize)" }), ("payload", { "\($0.payloadBytes)B" }),
            ("memory", { $0.memory }), ("queue pairs", { "qp\($0.queuePairs)" }),
        ]
        return extras.filter { extra in Set(params.map(extra.1)).count > 1 }
    }

    // MARK: - Ratios

    /// One bar per scenario, grouped and coloured by mediator: the ratio to the same scenario
    /// without a mediator when the run has it, else the ratio to the bare-ring calibration.
    public static func ratios(_ doc: ResultsDocument) -> String {
        let title = "Throughput ratios per mediator"
        let measured = doc.scenarios
            .filter { $0.status == .ok && ($0.ratioToBare ?? $0.ratioToCalibration) != nil }
            .sorted(by: MarkdownReport.tableOrder)
        guard !measured.isEmpty else {
            return SVGCanvas.noData(title: title, reason: "no scenario in this run has a ratio")
        }
        let mediators = measured.map(\.params.mediator).reduce(into: [String]()) { if $0.last != $1 { $0.append($1) } }
        let rowHeight = 22.0
        let height = SVGCanvas.top + 20 + Double(measured.count + mediators.count) * rowHeight + 60
        var canvas = SVGCanvas(title: title, subtitle: "\(doc.runID) · × bare: vs the same scenario with mediator none; × calibration: vs the bare ring", height: height)
        // The bars need the width the legend takes in the line plots: ids are long.
        let labelEdge = 360.0, barEnd = SVGCanvas.width - 90
        let largest = measured.map { $0.ratioToBare ?? $0.ratioToCalibration! }.max()!
        let axis = LinearAxis(upTo: max(largest, 1), from: labelEdge, to: barEnd)
        for t in axis.ticks {
            let px = axis.position(t)
            canvas.line(px, SVGCanvas.top, px, canvas.bottom, stroke: "#DDDDDD")
            canvas.text(px, canvas.bottom + 18, ReportFormat.compact(t), size: 11, anchor: "middle")
        }
        canvas.line(axis.position(1), SVGCanvas.top, axis.position(1), canvas.bottom, stroke: "#888888", dash: "4 3")
        canvas.text((labelEdge + barEnd) / 2, height - 15, "ratio (1 = no cost)", anchor: "middle")
        var row = SVGCanvas.top + 10
        for (index, mediator) in mediators.enumerated() {
            let color = SVGCanvas.color(index)
            canvas.text(10, row + 15, mediator, size: 12, weight: "bold", fill: color)
            row += rowHeight
            for s in measured where s.params.mediator == mediator {
                let (ratio, kind) = s.ratioToBare.map { ($0, "× bare") } ?? (s.ratioToCalibration!, "× calibration")
                let mark = s.dependsOnModel ? " †" : ""
                canvas.text(labelEdge - 8, row + 14, s.id, size: 10, anchor: "end")
                canvas.rect(labelEdge, row + 3, axis.position(ratio) - labelEdge, rowHeight - 6, fill: color,
                            cssClass: "bar", title: "\(s.id): \(ReportFormat.decimal(ratio, 3)) \(kind)\(mark)")
                canvas.text(axis.position(ratio) + 5, row + 14, "\(ReportFormat.decimal(ratio, 3)) \(kind)\(mark)", size: 10)
                row += rowHeight
            }
        }
        if measured.contains(where: \.dependsOnModel) { canvas.text(10, height - 15, dagger.joined(separator: " "), size: 10, fill: "#444444") }
        return canvas.svg()
    }

    /// "split · poll · q256 · b32 · 64B · hugepage-2M · qp1 · virtio": a scenario's settings
    /// in id order, without the mediator when lines are drawn per mediator.
    static func settingsLabel(_ p: ScenarioResult.Params, includingMediator: Bool) -> String {
        var parts = [p.layout, p.doorbell]
        if includingMediator { parts.append(p.mediator) }
        parts += ["q\(p.queueSize)", "b\(p.batch)", "\(p.payloadBytes)B", p.memory, "qp\(p.queuePairs)", p.binding]
        return parts.joined(separator: " · ")
    }
}
