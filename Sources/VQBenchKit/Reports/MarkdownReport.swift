// results/<run-id>.md: the results document as Markdown tables for people, derived only from
// the JSON. Byte-identical for the same document: dictionaries are walked in sorted key order
// and every number goes through ReportFormat, never a locale.

import Mediation

public enum MarkdownReport {
    public static func render(_ doc: ResultsDocument) -> String {
        var out: [String] = []
        let notes = ModelledNotes(doc.scenarios)
        title(doc, into: &out)
        machine(doc.machine, into: &out)
        calibration(doc.calibration, into: &out)
        scenarios(doc.scenarios, notes: notes, into: &out)
        parents(doc.scenarios, controlPath: doc.controlPath ?? [], notes: notes, into: &out)
        shadowRelays(doc.scenarios, into: &out)
        dirtyLogging(doc.scenarios, doc.comparisons ?? [], into: &out)
        footnotes(notes, into: &out)
        comparisons(doc.comparisons, into: &out)
        repeatSpread(doc.repeatSpread, into: &out)
        controlPath(doc.controlPath, into: &out)
        migrations(doc.migrations, into: &out)
        gate(doc.gate, into: &out)
        return out.joined(separator: "\n") + "\n"
    }

    // MARK: - Sections

    static func title(_ doc: ResultsDocument, into out: inout [String]) {
        let t = doc.tool
        var build = "\(t.name) \(t.version)"
        if let commit = t.gitCommit { build += " (\(commit)\(t.dirty == true ? ", dirty" : ""))" }
        out += [
            "# VirtqueueBench run \(doc.runID)",
            "",
            "Suite `\(doc.suite)`, started \(doc.startedAt), took \(ReportFormat.decimal(doc.durationSeconds, 1)) s"
                + (doc.filter.map { ", filter `\($0)`" } ?? "") + ".",
            "Built by \(build) with \(t.toolchain), \(t.buildConfig) configuration; results schema version \(doc.schemaVersion).",
            "",
        ]
    }

    static func machine(_ m: ResultsDocument.Machine, into out: inout [String]) {
        let h = m.hugepages
        let uring: String
        if m.ioUring.available {
            uring = m.ioUring.ops.isEmpty ? "available, no optional ops" : m.ioUring.ops.sorted().joined(separator: ", ")
        } else {
            uring = "unavailable" + (m.ioUring.reason.map { ": \($0)" } ?? "")
        }
        out += [
            "## Machine",
            "",
            "| | |",
            "|---|---|",
            "| CPU | \(ReportFormat.cell(m.cpuModel)) |",
            "| Logical CPUs | \(m.logicalCPUs) |",
            "| Kernel | \(ReportFormat.cell(m.kernel)) |",
            "| Virtualization | \(ReportFormat.cell(m.virtualization)) |",
            "| TSC | \(ReportFormat.decimal(m.tscHz / 1e9, 3)) GHz |",
            "| Huge pages | 2 MiB: \(h.total2M) reserved, \(h.free2M) free; 1 GiB: \(h.total1G) reserved; THP \(ReportFormat.cell(h.thp)) |",
            "| io_uring ops | \(ReportFormat.cell(uring)) |",
            "| valgrind | \(ReportFormat.cell(m.valgrind ?? "not found")) |",
            "",
        ]
    }

    static func calibration(_ c: ResultsDocument.Calibration, into out: inout [String]) {
        out += [
            "## Calibration",
            "",
            "This machine's own limits, measured in the same run; every ratio below is taken against them.",
            "",
            "| Measure | p50 / median | p99 / ci95 |",
            "|---|---|---|",
            "| Cache-line round trip (ns) | \(ReportFormat.decimal(c.cachelineRoundTripNs.p50, 1)) | \(ReportFormat.decimal(c.cachelineRoundTripNs.p99, 1)) |",
            "| Bare ring (M entries/s) | \(ReportFormat.mega(c.bareRingEntriesPerSecond.median)) | \(interval(c.bareRingEntriesPerSecond.ci95, ReportFormat.mega)) |",
        ]
        for (transport, wake) in c.wakeNs.sorted(by: { $0.key < $1.key }) {
            out.append("| Doorbell wake, \(ReportFormat.cell(transport)) (µs) | \(ReportFormat.micros(wake.p50)) | \(ReportFormat.micros(wake.p99)) |")
        }
        out.append("")
        if let classes = c.placementClasses, !classes.isEmpty {
            let seen = classes.map { "\($0.name) (\($0.samples) round trips, \(ReportFormat.decimal($0.minNs, 0))–\(ReportFormat.decimal($0.maxNs, 0)) ns)" }
            out.append("Placement classes (clusters of this run's cache-line round trips): \(seen.joined(separator: ", ")).")
        }
        if let placements = c.placements, !placements.isEmpty {
            let seen = placements.sorted(by: { $0.key < $1.key }).map { "\($0.key) (\($0.value) rounds)" }
            out.append("Placements seen: \(seen.joined(separator: ", ")).")
        } else {
            out.append("Placements seen: not recorded.")
        }
        out.append("")
    }

    /// The scenario table's columns; the parameters that are not headings come first so a row
    /// reads like the scenario id it stands for.
    static let header = [
        "Mediator", "Binding", "Queue", "Batch", "Payload", "Memory", "QP", "Status",
        "Mdesc/s median [ci95]", "Gbit/s", "p50 µs", "p99 µs", "p99.9 µs",
        "Kicks/1k", "IRQs/1k", "Syscalls/1k", "CPU ns/desc", "× calibration", "× bare", "Placement",
    ]

    static func scenarios(_ all: [ScenarioResult], notes: ModelledNotes, into out: inout [String]) {
        out += ["## Scenarios", ""]
        guard !all.isEmpty else {
            out += ["No scenarios ran.", ""]
            return
        }
        if !notes.sets.isEmpty {
            out += ["Figures marked † rest on a modelled value, listed under Modelled parameters.", ""]
        }
        if all.contains(where: { $0.ratioToBare != nil }) {
            out += ["× bare: a mediated scenario's throughput over the same virtio-net device model and driver loop on bare "
                        + "rings with the same doorbell (no parent, no bus, no translation), measured in the same rounds.", ""]
        }
        let byLayout = Dictionary(grouping: all, by: \.params.layout)
        for layout in byLayout.keys.sorted() {
            out += ["### Layout \(layout)", ""]
            let byDoorbell = Dictionary(grouping: byLayout[layout]!, by: \.params.doorbell)
            for doorbell in byDoorbell.keys.sorted() {
                out += [
                    "#### \(layout) · doorbell \(doorbell)",
                    "",
                    "| " + header.joined(separator: " | ") + " |",
                    "|" + header.map { _ in "---" }.joined(separator: "|") + "|",
                ]
                for s in byDoorbell[doorbell]!.sorted(by: tableOrder) {
                    out.append("| " + row(s, mark: notes.mark(for: s)).joined(separator: " | ") + " |")
                }
                out.append("")
            }
        }
    }

    /// Mediator first (the grouping the brief asks for), then the remaining parameters, then id.
    static func tableOrder(_ a: ScenarioResult, _ b: ScenarioResult) -> Bool {
        let x = a.params, y = b.params
        if x.mediator != y.mediator { return x.mediator < y.mediator }
        if x.binding != y.binding { return x.binding < y.binding }
        if x.queueSize != y.queueSize { return x.queueSize < y.queueSize }
        if x.batch != y.batch { return x.batch < y.batch }
        if x.payloadBytes != y.payloadBytes { return x.payloadBytes < y.payloadBytes }
        if x.memory != y.memory { return x.memory < y.memory }
        if x.queuePairs != y.queuePairs { return x.queuePairs < y.queuePairs }
        return a.id < b.id
    }

    static func row(_ s: ScenarioResult, mark: String) -> [String] {
        let p = s.params
        var cells = [
            ReportFormat.cell(p.mediator), ReportFormat.cell(p.binding), String(p.queueSize), String(p.batch),
            "\(p.payloadBytes) B", ReportFormat.cell(p.memory), String(p.queuePairs),
        ]
        guard s.status == .ok else {
            cells.append(ReportFormat.cell("\(s.status.rawValue): \(s.reason ?? "no reason recorded")"))
            cells += Array(repeating: "—", count: header.count - cells.count - 1)
            cells.append(ReportFormat.cell(s.placement ?? "—"))
            return cells
        }
        // Only figures that came out of the timed loop carry the mark; the parameters and the
        // placement describe the scenario and do not depend on a model.
        func figure(_ value: Double?, _ format: (Double) -> String) -> String {
            value.map { format($0) + mark } ?? "—"
        }
        let t = s.throughput
        let l = s.latencyNs
        let c = s.counters
        cells.append("ok")
        cells.append(t.map { ReportFormat.mega($0.descPerSecond.median) + mark + " " + interval($0.descPerSecond.ci95, ReportFormat.mega) } ?? "—")
        cells.append(figure(t?.gbitPerSecond.median) { ReportFormat.decimal($0, 2) })
        cells.append(figure(l?.p50, ReportFormat.micros))
        cells.append(figure(l?.p99, ReportFormat.micros))
        cells.append(figure(l?.p999, ReportFormat.micros))
        cells.append(figure(c?.kicksPer1k) { ReportFormat.decimal($0, 1) })
        cells.append(figure(c?.interruptsPer1k) { ReportFormat.decimal($0, 1) })
        cells.append(figure(c?.syscallsPer1k) { ReportFormat.decimal($0, 1) })
        cells.append(figure(s.cpuNsPerDesc) { ReportFormat.decimal($0, 1) })
        cells.append(figure(s.ratioToCalibration) { ReportFormat.decimal($0, 3) })
        cells.append(figure(s.ratioToBare) { ReportFormat.decimal($0, 3) })
        cells.append(ReportFormat.cell(s.placement ?? "—"))
        return cells
    }

    /// Every mediated scenario of the run side by side, parents in registry order: what a user
    /// comparing vendor mediators reads first. Bring-up is the lifecycle run's median for the
    /// parent and binding; its modelled part (firmware and register times) stands apart.
    static func parents(_ all: [ScenarioResult], controlPath: [ResultsDocument.ControlPathOperation], notes: ModelledNotes,
                        into out: inout [String]) {
        // Each parent, then the same parent behind a shadow virtqueue.
        let order = ParentRegistry.names.flatMap { n in [n, ParentRegistry.shadowedName(n), ParentRegistry.loggedName(ParentRegistry.shadowedName(n))] }
        let mediated = all.filter { $0.params.mediator != "none" }.sorted { a, b in
            let (pa, pb) = (order.firstIndex(of: a.params.mediator) ?? order.count, order.firstIndex(of: b.params.mediator) ?? order.count)
            if pa != pb { return pa < pb }
            return tableOrder(a, b)
        }
        guard !mediated.isEmpty else { return }
        out += ["## Parents side by side", "",
                "Each parent's datapath as measured (× no mediator: over the same device model on bare rings, same rounds), "
                    + "and its bring-up from the control-path run (µs; † the modelled part: firmware and register times the "
                    + "parent's model parameters give, never added to the measured time).", "",
                "| Parent | Layout | Binding | Doorbell | Mpkt/s | p50 µs | p99 µs | Kicks/1k | IRQs/1k | CPU ns/desc | × no mediator [ci95] | Bring-up µs | Bring-up modelled µs † |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        func control(_ parent: String, _ op: String) -> String {
            controlPath.first { $0.parent == parent && $0.operation == op }.map { ReportFormat.decimal($0.medianNs / 1000, 1) } ?? "—"
        }
        for s in mediated {
            let p = s.params
            let mark = notes.mark(for: s)
            var cells = [ReportFormat.cell(p.mediator) + mark, ReportFormat.cell(p.layout), ReportFormat.cell(p.binding), ReportFormat.cell(p.doorbell)]
            guard s.status == .ok else {
                cells.append(ReportFormat.cell("\(s.status.rawValue): \(s.reason ?? "no reason recorded")"))
                cells += Array(repeating: "—", count: 8)
                out.append("| " + cells.joined(separator: " | ") + " |")
                continue
            }
            let modelledOp = p.binding == "vhost" ? "vhost: bring_up and reset_owner (modelled †)" : "virtio: bring_up (modelled †)"
            cells += [
                s.throughput.map { ReportFormat.mega($0.packetsPerSecond.median) } ?? "—",
                s.latencyNs.map { ReportFormat.micros($0.p50) } ?? "—",
                s.latencyNs.map { ReportFormat.micros($0.p99) } ?? "—",
                s.counters.map { ReportFormat.decimal($0.kicksPer1k, 1) } ?? "—",
                s.counters.map { ReportFormat.decimal($0.interruptsPer1k, 1) } ?? "—",
                s.cpuNsPerDesc.map { ReportFormat.decimal($0, 1) } ?? "—",
                s.ratioToBare.map { ReportFormat.decimal($0, 3) + " " + interval(s.ratioToBareCI95, { ReportFormat.decimal($0, 3) }) } ?? "—",
                control(p.mediator, "\(p.binding): bring_up"),
                control(p.mediator, modelledOp),
            ]
            out.append("| " + cells.joined(separator: " | ") + " |")
        }
        out.append("")
    }

    /// Where a shadow virtqueue's time goes: CPU per descriptor on each thread, and what
    /// the relay did per descriptor, next to its × no mediator.
    static func shadowRelays(_ all: [ScenarioResult], into out: inout [String]) {
        let relayed = all.filter { $0.status == .ok && $0.shadowRelay != nil }.sorted(by: tableOrder)
        guard !relayed.isEmpty else { return }
        out += ["## Shadow virtqueue: where the time goes", "",
                "CPU per descriptor on each thread (the relay shares the device's CPU), and per 1000 descriptors what the relay did: "
                    + "kicks it sent the device, interrupts it sent the driver, passes that found nothing (a yield or a sleep each), "
                    + "its system calls; translations are buffer addresses looked up in the IOVA tree per descriptor.", "",
                "| Mediator | Layout | Binding | Doorbell | Mpkt/s | × no mediator | CPU ns/desc driver | device | relay | Translations/desc | Device kicks/1k | Driver IRQs/1k | Idle passes/1k | Relay syscalls/1k |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in relayed {
            let p = s.params, r = s.shadowRelay!, c = s.cpuNsPerDescByThread
            let cells = [ReportFormat.cell(p.mediator), ReportFormat.cell(p.layout), ReportFormat.cell(p.binding), ReportFormat.cell(p.doorbell),
                         s.throughput.map { ReportFormat.mega($0.packetsPerSecond.median) } ?? "—",
                         s.ratioToBare.map { ReportFormat.decimal($0, 3) } ?? "—",
                         c.map { ReportFormat.decimal($0.driver, 1) } ?? "—",
                         c.map { ReportFormat.decimal($0.device, 1) } ?? "—",
                         c?.relay.map { ReportFormat.decimal($0, 1) } ?? "—",
                         ReportFormat.decimal(r.translationsPerDesc, 2), ReportFormat.decimal(r.deviceKicksPer1k, 1),
                         ReportFormat.decimal(r.driverInterruptsPer1k, 1), ReportFormat.decimal(r.idlePassesPer1k, 1),
                         ReportFormat.decimal(r.syscallsPer1k, 1)]
            out.append("| " + cells.joined(separator: " | ") + " |")
        }
        out.append("")
    }

    /// What dirty logging costs a shadowed parent: the paired ratio logged ÷ unlogged, and
    /// the relay's CPU per descriptor with the log on and off.
    static func dirtyLogging(_ all: [ScenarioResult], _ comparisons: [ResultsDocument.Comparison], into out: inout [String]) {
        let byID = Dictionary(all.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let rows = comparisons.filter { $0.kind == .feature && byID[$0.a].map { ParentRegistry.unlogged($0.params.mediator) != nil } == true }
            .sorted { $0.a < $1.a }
        guard !rows.isEmpty else { return }
        out += ["## Dirty logging: what it costs", "",
                "A shadowed parent with every page written into the driver's memory logged (used entries, received payloads; "
                    + "VHOST_F_LOG_ALL, as during a migration) ÷ the same without the log, in paired rounds; relay CPU per "
                    + "descriptor with the log on and off, and the difference.", "",
                "| Mediator | Layout | Binding | Doorbell | logged ÷ unlogged | 95% CI | Rounds | Relay CPU ns/desc logged | unlogged | difference |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for c in rows {
            guard let a = byID[c.a] else { continue }
            let b = byID[c.b]
            let on = a.cpuNsPerDescByThread?.relay, off = b?.cpuNsPerDescByThread?.relay
            let p = a.params
            let cells = [ReportFormat.cell(p.mediator), ReportFormat.cell(p.layout), ReportFormat.cell(p.binding), ReportFormat.cell(p.doorbell),
                         ReportFormat.decimal(c.ratio, 3), interval(c.ci95) { ReportFormat.decimal($0, 3) }, String(c.rounds),
                         on.map { ReportFormat.decimal($0, 1) } ?? "—", off.map { ReportFormat.decimal($0, 1) } ?? "—",
                         on.flatMap { x in off.map { ReportFormat.decimal(x - $0, 1) } } ?? "—"]
            out.append("| " + cells.joined(separator: " | ") + " |")
        }
        out.append("")
    }

    static func interval(_ ci95: [Double]?, _ format: (Double) -> String) -> String {
        guard let ci95, ci95.count == 2 else { return "[—]" }
        return "[\(format(ci95[0])), \(format(ci95[1]))]"
    }

    static func footnotes(_ notes: ModelledNotes, into out: inout [String]) {
        guard !notes.sets.isEmpty else { return }
        out += ["## Modelled parameters", ""]
        for (index, set) in notes.sets.enumerated() {
            let mark = notes.sets.count == 1 ? "†" : "†\(index + 1)"
            out.append("\(mark) Used by \(set.scenarioIDs.map { "`\($0)`" }.joined(separator: ", ")):")
            out.append("")
            for m in set.parameters {
                out.append("- `\(m.parameter)` = \(ReportFormat.compact(m.value)) — source: \(m.source)")
            }
            out.append("")
        }
    }

    static func comparisons(_ all: [ResultsDocument.Comparison]?, into out: inout [String]) {
        guard let all, !all.isEmpty else { return }
        out += [
            "## Paired comparisons",
            "",
            "a ÷ b, each from the rounds in which both were measured in the same placement class (rounds interleaved).",
            "",
            "| Kind | a | b | Ratio | ci95 | Rounds | Placement |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in all {
            let b = c.kind == .mediator ? "bare reference" : "`\(ReportFormat.cell(c.b))`"
            out.append("| \(c.kind.rawValue) | `\(ReportFormat.cell(c.a))` | \(b) | \(ReportFormat.decimal(c.ratio, 3)) | "
                + "\(interval(c.ci95) { ReportFormat.decimal($0, 3) }) | \(c.rounds) | \(ReportFormat.cell(c.placement)) |")
        }
        if all.contains(where: { $0.kind == .mediator }) {
            out.append("")
            out.append("bare reference: " + PairedComparisons.referenceNote.dropFirst(3) + ".")
        }
        out.append("")
    }

    static func repeatSpread(_ r: ResultsDocument.Repeat?, into out: inout [String]) {
        guard let r, !r.spread.isEmpty else { return }
        out += [
            "## Repeatability over \(r.runs) runs",
            "",
            "| Comparison | Median | IQR / median | Min | Max | Placements |",
            "|---|---|---|---|---|---|",
        ]
        for s in r.spread {
            out.append("| \(ReportFormat.cell(s.comparison)) | \(ReportFormat.decimal(s.median, 3)) | "
                + "\(ReportFormat.decimal(s.iqrOverMedian * 100, 1)) % | \(ReportFormat.decimal(s.min, 3)) | "
                + "\(ReportFormat.decimal(s.max, 3)) | \(ReportFormat.cell(Array(Set(s.placements)).sorted().joined(separator: ", "))) |")
        }
        out.append("")
    }

    static func controlPath(_ ops: [ResultsDocument.ControlPathOperation]?, into out: inout [String]) {
        guard let ops, !ops.isEmpty else { return }
        out += ["## Control path", "",
                "Each parent's lifecycle, timed over repetitions (µs). `virtio:` operations are the in-process binding's, "
                    + "`vhost:` ones the consumer's messages as the binding handled them; `allocate_rings` is allocating and zeroing "
                    + "ring memory, `bring_up` the configuration sequence after it.",
                "", "| Parent | Operation | Median | p99 | Min | Max | n |", "|---|---|---|---|---|---|---|"]
        for o in ops {
            let us = { (x: Double) in ReportFormat.decimal(x / 1000, 1) }
            out.append("| " + [ReportFormat.cell(o.parent), ReportFormat.cell(o.operation), us(o.medianNs), us(o.p99Ns),
                               us(o.minNs), us(o.maxNs), String(o.count)].joined(separator: " | ") + " |")
        }
        out.append("")
    }

    static func migrations(_ all: [ResultsDocument.Migration]?, into out: inout [String]) {
        guard let all, !all.isEmpty else { return }
        out += ["## Live migration", "",
                "Each pair: the guest transmits numbered, checksummed packets through the source and receives its numbered packets, "
                    + "stops with a queue's worth of transmit and receive buffers in flight, the device moves to a fresh destination under the same vhost consumer, and the guest goes on "
                    + "(medians over the repetitions, µs). Downtime is the guest's stop → the destination's first completion back at the "
                    + "guest. A source that cannot suspend, or a destination that can only take a queue's initial state, runs behind its "
                    + "shadow virtqueue (`+svq`). Modelled † is the parents' firmware and register time (never inside the measured "
                    + "steps); carried is how many in-flight buffers the destination completed; lost and duplicated count both "
                    + "directions, by packet and checksum (receive: every packet's number and bytes checked by the guest).",
                "", "| From → to | Layout | Downtime | Suspend | Save | Release | Map | Restore | Resume | Modelled † | Carried | Lost | Dup | OK |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        let us = { (x: Double?) in x.map { ReportFormat.decimal($0 / 1000, 1) } ?? "—" }
        for m in all {
            let modelled = m.modelledNs.keys.sorted().reduce(0.0) { $0 + m.modelledNs[$1]! }
            let cells = [
                ReportFormat.cell("\(m.from) → \(m.to)"), m.layout, us(m.downtimeMedianNs),
                us(m.stepsNs["suspend"]), us(m.stepsNs["save"]), us(m.stepsNs["release_source"]), us(m.stepsNs["map"]),
                us(m.stepsNs["restore"]), us(m.stepsNs["resume"]), modelled > 0 ? us(modelled) + " †" : "—",
                String(m.carriedOver), String(m.lost), String(m.duplicated), m.ok ? "yes" : "**no**",
            ]
            out.append("| " + cells.joined(separator: " | ") + " |")
        }
        out.append("")
    }

    static func gate(_ checks: [ResultsDocument.GateCheck]?, into out: inout [String]) {
        guard let checks, !checks.isEmpty else { return }
        out += ["## Gate", "", "| Check | Metric | Baseline | Observed | Tolerance | Verdict |", "|---|---|---|---|---|---|"]
        for g in checks {
            let cells = [
                ReportFormat.cell(g.check), ReportFormat.cell(g.metric),
                g.baseline.map(ReportFormat.compact) ?? "—", g.observed.map(ReportFormat.compact) ?? "—",
                ReportFormat.cell(g.tolerance), ReportFormat.cell(g.verdict),
            ]
            out.append("| " + cells.joined(separator: " | ") + " |")
        }
        out.append("")
    }
}

/// The distinct sets of modelled parameters in a run, numbered in the order of the first
/// scenario (by id) that uses each, so every report of the same run numbers them alike.
struct ModelledNotes {
    struct ParameterSet {
        var parameters: [ScenarioResult.ModelledParameter]
        var scenarioIDs: [String]
    }

    private(set) var sets: [ParameterSet] = []

    init(_ scenarios: [ScenarioResult]) {
        for s in scenarios.sorted(by: { $0.id < $1.id }) where s.dependsOnModel {
            let parameters = s.modelled.sorted(by: { $0.parameter < $1.parameter })
            if let index = sets.firstIndex(where: { $0.parameters == parameters }) {
                sets[index].scenarioIDs.append(s.id)
            } else {
                sets.append(ParameterSet(parameters: parameters, scenarioIDs: [s.id]))
            }
        }
    }

    /// "†" when the run has one set of modelled values, "†n" when a reader must tell them apart;
    /// empty for a scenario measured without any model.
    func mark(for s: ScenarioResult) -> String {
        guard s.dependsOnModel else { return "" }
        let parameters = s.modelled.sorted(by: { $0.parameter < $1.parameter })
        guard let index = sets.firstIndex(where: { $0.parameters == parameters }) else { return "" }
        return sets.count == 1 ? "†" : "†\(index + 1)"
    }
}
