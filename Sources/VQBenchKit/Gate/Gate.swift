// The CI performance gate: A — instructions per descriptor of fixed loops (callgrind,
// exact on every CPU); B — exact counters (kicks, interrupts, syscalls, allocations and
// reference counting in the loop); C — paired ratios measured in interleaved rounds in one
// placement class (packed ÷ split, a doorbell ÷ polling, a mediator ÷ its bare reference,
// vhost ÷ virtio), judged only against a baseline recorded on the same machine key (CPU,
// CPU count, placement class). Compared with results/baseline.json; exit codes follow
// ordo-one/benchmark: 0 pass, 2 regression, 4 improvement of an exact count, 5 no baseline.

import Doorbell
import Foundation
import Mediation
import Synchronization
import Virtqueue

public struct GateOptions: Sendable {
    /// Gate C: which engine scenarios (4 KiB pages: the same ids on every machine), and how
    /// long each. Their paired comparisons are what C judges: packed ÷ split and
    /// hybrid-eventfd ÷ poll on bare rings, each mediator ÷ its bare reference (the
    /// passthrough parent under virtio, the software-IOTLB parent under both bindings), and
    /// vdpa_sim's vhost ÷ virtio.
    public var ratioScenarios: [ScenarioID] = [
        ScenarioID(layout: "split", doorbell: "poll", memory: "4K"),
        ScenarioID(layout: "packed", doorbell: "poll", memory: "4K"),
        ScenarioID(layout: "split", doorbell: "hybrid-eventfd", memory: "4K"),
        ScenarioID(layout: "split", doorbell: "busy-poll", mediator: "vp_vdpa", memory: "4K"),
        ScenarioID(layout: "packed", doorbell: "busy-poll", mediator: "vdpa_sim", memory: "4K"),
        ScenarioID(layout: "packed", doorbell: "busy-poll", mediator: "vdpa_sim", memory: "4K", binding: "vhost"),
    ]
    public var ratioSecondsPerScenario = 1.0
    /// Gate B's specialisation check: datapaths run under callgrind (a mediated one also as
    /// its bare reference), none of which may execute a generic loop body or a hot-protocol
    /// witness: the bare engine loop, a passthrough parent under each binding on each
    /// binding (split under virtio, packed under vhost), the software-IOTLB parent on a
    /// sleeping doorbell. Each callgrind run takes ~3 s (measure-round --skip-round-trip: the
    /// cross-thread round trips around a run took ~20 s under valgrind).
    public var specialisationScenarios: [ScenarioID] = [
        ScenarioID(layout: "split", doorbell: "poll", memory: "4K"),
        ScenarioID(layout: "split", doorbell: "busy-poll", mediator: "vp_vdpa", memory: "4K"),
        ScenarioID(layout: "packed", doorbell: "busy-poll", mediator: "ifcvf", memory: "4K", binding: "vhost"),
        ScenarioID(layout: "packed", doorbell: "eventfd", mediator: "vdpa_sim", memory: "4K"),
    ]
    public var specialisationDescriptors = 5_000
    /// Gate A also counts the shadow virtqueue's relay loop, with dirty logging off and on.
    public var relayLoops = true
    public var ratioRounds = 7
    /// Instruction workloads: rounds of 32 descriptors at the two sizes whose difference is used.
    public var smallRounds = 250
    public var largeRounds = 500
    public var instructionTolerance = 0.005
    public var ratioTolerance = 0.25
    public init() {}
}

public enum GateVerdict: String, Sendable {
    case pass, regression, improvement, inconclusive
    case noBaseline = "no-baseline"
    /// A C row with no ratio baseline recorded on this machine key: reported, never failing.
    case noBaselineForMachine = "no-baseline-for-machine"
}

public struct GateOutcome: Sendable {
    public var observed: ResultsDocument
    public var checks: [ResultsDocument.GateCheck]
    public var exitCode: Int32
}

public enum Gate {
    static let workloadFunction: [RingLayoutKind: String] = [
        .split: "vqb_split_single_thread_loop", .packed: "vqb_packed_single_thread_loop",
    ]

    static func workloadID(_ layout: RingLayoutKind) -> ScenarioID {
        ScenarioID(layout: layout.rawValue, doorbell: "none", memory: "4K")
    }

    /// One loop gate A counts: the slope of its instructions between two round counts.
    struct CountedLoop {
        var id: ScenarioID
        var name: String
        var function: String
        var smallRounds: Int
        var largeRounds: Int
        var batch: Int
        var arguments: @Sendable (Int) -> [String]

        /// Its two callgrind runs (the small round count, then the large).
        func jobs(_ counter: InstructionCounter) -> [@Sendable () throws -> CallgrindJobResult] {
            [smallRounds, largeRounds].map { rounds in
                let function = function, arguments = arguments(rounds)
                return { .count(try counter.count(function: function, arguments: arguments)) }
            }
        }

        /// Instructions per descriptor: the slope between the two runs, so set-up cancels.
        func perDescriptor(small: CallgrindCount, large: CallgrindCount) -> Double {
            Double(large.instructions - small.instructions) / Double((largeRounds - smallRounds) * batch)
        }
    }

    /// What gate A counts: each layout's ring loop (driver and device halves on one thread),
    /// and the shadow virtqueue's relay loop with dirty logging off and on (mediator
    /// `svq-relay`, `svq-relay+log`: the same round through the relay, `vqbench svq-cost`).
    static func countedLoops(_ options: GateOptions) -> [CountedLoop] {
        var loops: [CountedLoop] = []
        for layout in RingLayoutKind.allCases {
            loops.append(CountedLoop(id: workloadID(layout), name: layout.rawValue, function: workloadFunction[layout]!,
                                     smallRounds: options.smallRounds, largeRounds: options.largeRounds, batch: 32) { rounds in
                ["workload", "--layout", layout.rawValue, "--rounds", String(rounds), "--batch", "32"]
            })
        }
        guard options.relayLoops else { return loops }
        for layout in RingLayoutKind.allCases {
            for logged in [false, true] {
                let id = ScenarioID(layout: layout.rawValue, doorbell: "none", mediator: logged ? "svq-relay+log" : "svq-relay", memory: "4K")
                loops.append(CountedLoop(id: id, name: "\(layout.rawValue) relay\(logged ? " logged" : "")",
                                         function: ShadowRelayWorkload.functionName(layout, logged: logged),
                                         smallRounds: RelayCost.smallRounds, largeRounds: RelayCost.largeRounds, batch: RelayCost.batch) { rounds in
                    ["workload", "--relay", "--layout", layout.rawValue, "--rounds", String(rounds), "--batch", String(RelayCost.batch)]
                        + (logged ? ["--logged"] : [])
                })
            }
        }
        return loops
    }

    static func scheduleID(_ layout: RingLayoutKind, eventIndex: Bool) -> ScenarioID {
        ScenarioID(layout: layout.rawValue, doorbell: eventIndex ? "suppression-event-idx" : "suppression-flags",
                   batch: 16, memory: "4K")
    }

    static func syscallID(_ transport: DoorbellTransport) -> ScenarioID {
        ScenarioID(layout: "none", doorbell: transport.id, queueSize: 1, batch: 1, payloadBytes: 1, memory: "4K")
    }

    static func params(_ id: ScenarioID) -> ScenarioResult.Params {
        .init(layout: id.layout, doorbell: id.doorbell, mediator: id.mediator, binding: "virtio", queueSize: id.queueSize,
              batch: id.batch, payloadBytes: id.payloadBytes, memory: id.memory, queuePairs: id.queuePairs)
    }

    /// Measures everything the gate checks, as a results document (suite "gate").
    /// `exact`: measure A and B (false: C alone, as a re-run of ratio checks does — exact
    /// counts come out the same every time, so measuring them again only costs minutes).
    public static func measure(_ options: GateOptions, ratios: Bool, exact: Bool = true, log: (String) -> Void) throws -> ResultsDocument {
        let started = Date()
        var scenarios: [ScenarioResult] = []
        let probe = DoorbellProbe.current
        if exact { try measureExact(options, probe: probe, into: &scenarios, log: log) }

        // C: in-run ratios from the engine.
        var calibration = ResultsDocument.Calibration(cachelineRoundTripNs: .init(p50: 0, p99: 0),
                                                      bareRingEntriesPerSecond: .init(median: 0), wakeNs: [:])
        var comparisons: [ResultsDocument.Comparison]? = nil
        if ratios {
            var run = RunOptions()
            run.scenarios = options.ratioScenarios
            run.plan.secondsPerScenario = options.ratioSecondsPerScenario
            run.plan.rounds = options.ratioRounds
            run.lifecycleRepetitions = 0
            run.migrationRepetitions = 0
            let doc = try Engine.run(run) { log("C " + $0) }
            calibration = doc.calibration
            scenarios += doc.scenarios
            comparisons = doc.comparisons
        }

        let git = MachineInfo.gitState()
        let probeInfo = ResultsDocument.IOUring(available: probe.ioUring.available, ops: probe.ioUring.ops, reason: probe.ioUring.reason)
        return ResultsDocument(
            tool: .init(name: "vqbench", version: RunOptions().toolVersion, gitCommit: git.commit, dirty: git.dirty,
                        toolchain: MachineInfo.toolchain(), buildConfig: Gate.buildConfig),
            startedAt: ISO8601DateFormatter().string(from: started),
            durationSeconds: Date().timeIntervalSince(started), suite: "gate", filter: nil,
            machine: MachineInfo.collect(ioUring: probeInfo), calibration: calibration, scenarios: scenarios,
            comparisons: comparisons)
    }

    /// A (instructions per descriptor, allocations, reference counting) and B (specialised
    /// datapaths, suppression counts, system calls per notification): exact counts.
    static func measureExact(_ options: GateOptions, probe: DoorbellProbe, into scenarios: inout [ScenarioResult],
                             log: (String) -> Void) throws {
        // A + the allocation / reference-counting part of B, and B's specialisation check:
        // every callgrind run at once, as many at a time as there are CPUs. Valgrind runs a
        // process's threads one at a time, so one run uses one CPU; the counts are the
        // same whatever runs beside them (A's loops are single-threaded and deterministic,
        // the specialisation check only asks which functions ran).
        let counter = try InstructionCounter()
        var jobs: [@Sendable () throws -> CallgrindJobResult] = []
        let loops = countedLoops(options)
        for loop in loops { jobs += loop.jobs(counter) }
        var specialisation: [(id: ScenarioID, jobs: Range<Int>)] = []
        for id in options.specialisationScenarios {
            if let why = ScenarioRunner(plan: MeasurementPlan(), probe: probe, placement: .current(), bareRingRate: 0).unavailabilityReason(id) {
                scenarios.append(ScenarioResult(id: id.description, params: params(id), status: .unavailable, reason: why))
                continue
            }
            let first = jobs.count
            for reference in id.mediator == "none" ? [false] : [false, true] {
                let arguments = ["measure-round", id.description, "--descriptors", String(options.specialisationDescriptors),
                                 "--skip-round-trip"] + (reference ? ["--reference"] : [])
                jobs.append { .functions(try counter.functionsRun(arguments: arguments)) }
            }
            specialisation.append((id, first..<jobs.count))
        }
        let results = try CallgrindJobResult.runAll(jobs, width: max(1, ProcessInfo.processInfo.activeProcessorCount))

        for (i, loop) in loops.enumerated() {
            guard case let .count(small) = results[2 * i], case let .count(large) = results[2 * i + 1] else { continue }
            let perDesc = loop.perDescriptor(small: small, large: large)
            let descriptors = Double(loop.largeRounds * loop.batch)
            var r = ScenarioResult(id: loop.id.description, params: params(loop.id), status: .ok)
            r.instructionsPerDesc = perDesc
            r.counters = .init(kicksPer1k: 0, interruptsPer1k: 0, descPerKick: nil, syscallsPer1k: 0,
                               mallocsInLoop: Int(large.allocations))
            r.counters?.retainsPer1k = Double(large.referenceCounting) * 1000 / descriptors
            r.repetitions = 2
            scenarios.append(r)
            log("A \(loop.name): \(fixed(perDesc, 2)) instructions/descriptor (\(small.instructions) / \(large.instructions)), allocations \(large.allocations), retain/release \(large.referenceCounting)")
        }

        // B: every datapath ran specialised (no generic loop body, no hot-protocol witness).
        for (id, range) in specialisation {
            var ran: Set<String> = []
            for case let .functions(names) in results[range] { ran.formUnion(names) }
            var r = ScenarioResult(id: id.description, params: params(id), status: .ok)
            r.genericDatapathFunctions = SpecialisedDatapath.offenders(ran)
            r.repetitions = 1
            scenarios.append(r)
            log("B specialised \(id)\(id.mediator == "none" ? "" : " and its bare reference"): "
                + (r.genericDatapathFunctions!.isEmpty ? "no generic loop body or hot-protocol witness ran (\(ran.count) functions)"
                   : r.genericDatapathFunctions!.joined(separator: "; ")))
        }

        // B: kicks and interrupts under each suppression mode.
        for layout in RingLayoutKind.allCases {
            for eventIndex in [false, true] {
                let (kicks, irqs, moved) = try SuppressionSchedule.run(layout: layout, eventIndex: eventIndex)
                let id = scheduleID(layout, eventIndex: eventIndex)
                var r = ScenarioResult(id: id.description, params: params(id), status: .ok)
                r.counters = .init(kicksPer1k: kicks, interruptsPer1k: irqs, descPerKick: kicks > 0 ? 1000 / kicks : nil,
                                   syscallsPer1k: 0, mallocsInLoop: nil)
                r.repetitions = 1
                scenarios.append(r)
                log("B \(id.doorbell) \(layout.rawValue): \(fixed(kicks, 3)) kicks/1k, \(fixed(irqs, 3)) interrupts/1k over \(moved) descriptors")
            }
        }
        // B: syscalls per 1000 notifications of each doorbell this machine has.
        for transport in DoorbellTransport.all {
            let id = syscallID(transport)
            if let why = probe.unavailability(of: transport) {
                scenarios.append(ScenarioResult(id: id.description, params: params(id), status: .unavailable, reason: why))
                continue
            }
            let syscalls = try DoorbellSyscalls.per1000(transport, probe: probe)
            var r = ScenarioResult(id: id.description, params: params(id), status: .ok)
            r.counters = .init(kicksPer1k: 1000, interruptsPer1k: 0, descPerKick: 1, syscallsPer1k: syscalls, mallocsInLoop: nil)
            r.repetitions = 1
            scenarios.append(r)
        }
        log("B syscalls/1000 notifications: " + scenarios.filter { $0.params.layout == "none" && $0.status == .ok }
            .map { "\($0.params.doorbell) \(fixed($0.counters!.syscallsPer1k, 0))" }.joined(separator: ", "))
    }

    public static var buildConfig: String {
        #if DEBUG
        return "debug"
        #else
        return "release"
        #endif
    }

    /// Compares `observed` with `baseline` (nil: none committed) and decides the exit code.
    public static func judge(observed: ResultsDocument, baseline: ResultsDocument?, options: GateOptions) -> GateOutcome {
        var checks: [ResultsDocument.GateCheck] = []
        let base = Dictionary((baseline?.scenarios ?? []).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        // Instruction counts are only comparable under the same compiler and valgrind.
        let sameTools = baseline.map { $0.tool.toolchain == observed.tool.toolchain && $0.machine.valgrind == observed.machine.valgrind } ?? false
        let toolNote = baseline.map { "baseline from \($0.tool.toolchain), valgrind \($0.machine.valgrind ?? "none")" } ?? "no baseline"

        func exact(_ check: String, _ metric: String, _ b: Double?, _ o: Double?, lowerIsBetter: Bool = true) {
            guard let o else { return }
            guard let b else {
                checks.append(.init(check: check, metric: metric, baseline: nil, observed: o, tolerance: "exact", verdict: GateVerdict.noBaseline.rawValue))
                return
            }
            let verdict: GateVerdict = o == b ? .pass : ((o > b) == lowerIsBetter ? .regression : .improvement)
            checks.append(.init(check: check, metric: metric, baseline: b, observed: o, tolerance: "exact", verdict: verdict.rawValue))
        }

        for s in observed.scenarios where s.status == .ok {
            let b = base[s.id]
            if let ipd = s.instructionsPerDesc {
                let tolerance = "±\(fixed(options.instructionTolerance * 100, 1))%"
                if let bi = b?.instructionsPerDesc, sameTools {
                    let verdict: GateVerdict = ipd > bi * (1 + options.instructionTolerance) ? .regression
                        : ipd < bi * (1 - options.instructionTolerance) ? .improvement : .pass
                    checks.append(.init(check: "A \(s.id)", metric: "instructions_per_desc", baseline: bi, observed: ipd,
                                        tolerance: tolerance, verdict: verdict.rawValue))
                } else {
                    checks.append(.init(check: "A \(s.id)", metric: "instructions_per_desc", baseline: b?.instructionsPerDesc,
                                        observed: ipd, tolerance: tolerance + " (" + toolNote + ")", verdict: GateVerdict.noBaseline.rawValue))
                }
                // Allocations and reference counting in the loop must stay at their baseline (zero).
                exact("B \(s.id)", "mallocs_in_loop", b?.counters?.mallocsInLoop.map(Double.init) ?? (baseline == nil ? nil : 0),
                      s.counters?.mallocsInLoop.map(Double.init))
                exact("B \(s.id)", "retains_per_1k", b?.counters?.retainsPer1k ?? (baseline == nil ? nil : 0), s.counters?.retainsPer1k)
            } else if s.params.doorbell.hasPrefix("suppression-") {
                exact("B \(s.id)", "kicks_per_1k", b?.counters?.kicksPer1k, s.counters?.kicksPer1k)
                exact("B \(s.id)", "interrupts_per_1k", b?.counters?.interruptsPer1k, s.counters?.interruptsPer1k)
            } else if let generic = s.genericDatapathFunctions {
                // Absolute, no baseline needed: a generic loop body in the datapath is always a regression.
                let verdict: GateVerdict = generic.isEmpty ? .pass : .regression
                checks.append(.init(check: "B \(s.id)", metric: "generic_datapath_functions", baseline: 0, observed: Double(generic.count),
                                    tolerance: generic.isEmpty ? "exact (must be 0)" : "exact (must be 0): " + generic.prefix(3).joined(separator: "; "),
                                    verdict: verdict.rawValue))
            } else if s.params.layout == "none" {
                exact("B \(s.id)", "syscalls_per_1k", b?.counters?.syscallsPer1k, s.counters?.syscallsPer1k)
            }
        }
        for c in observed.comparisons ?? [] {
            checks.append(ratioCheck(c, key: observed.machineKey(placement: c.placement, roundTripNs: c.placementRoundTripNs ?? 0),
                                     baselines: baseline?.ratioBaselines ?? [], options))
        }
        let outcome = GateOutcome(observed: observed, checks: [], exitCode: 0).withChecks(checks)
        return baseline == nil ? GateOutcome(observed: outcome.observed, checks: checks, exitCode: 5) : outcome
    }

    /// The C check's name for a comparison.
    public static func checkName(_ c: ResultsDocument.Comparison) -> String { "C " + c.key }

    /// C: a paired ratio against the one recorded on this machine key, if any. Fails only
    /// when the whole bootstrap interval lies beyond the tolerance.
    static func ratioCheck(_ c: ResultsDocument.Comparison, key: ResultsDocument.MachineKey,
                           baselines: [ResultsDocument.RatioBaseline], _ options: GateOptions) -> ResultsDocument.GateCheck {
        let tolerance = "±\(fixed(options.ratioTolerance * 100, 0))% (95% CI, \(c.rounds) rounds, \(c.placement))"
        let entry = baselines.first { $0.machine.matches(key) }
        guard let b = entry?.comparisons.first(where: { $0.key == c.key }) else {
            return .init(check: checkName(c), metric: "ratio", baseline: nil, observed: c.ratio,
                         tolerance: "no baseline for this machine (\(key.description))",
                         verdict: GateVerdict.noBaselineForMachine.rawValue)
        }
        let lo = c.ci95?.first ?? c.ratio
        let hi = c.ci95?.last ?? c.ratio
        let floor = b.ratio * (1 - options.ratioTolerance)
        let ceiling = b.ratio * (1 + options.ratioTolerance)
        let verdict: GateVerdict
        if hi < floor { verdict = .regression }
        else if lo > ceiling { verdict = .improvement }
        else if c.ratio < floor || c.ratio > ceiling { verdict = .inconclusive }
        else { verdict = .pass }
        return .init(check: checkName(c), metric: "ratio", baseline: b.ratio, observed: c.ratio, tolerance: tolerance,
                     verdict: verdict.rawValue)
    }

    /// The baseline to commit after `--update`: this run's exact counts, and this machine's
    /// ratio entries replaced (one per placement class seen) while every other machine's stay.
    public static func updatedBaseline(observed: ResultsDocument, previous: ResultsDocument?) -> ResultsDocument {
        var fresh = observed
        fresh.gate = nil
        var entries = previous?.ratioBaselines ?? []
        var byClass: [String: (key: ResultsDocument.MachineKey, comparisons: [ResultsDocument.Comparison])] = [:]
        for c in observed.comparisons ?? [] {
            let key = observed.machineKey(placement: c.placement, roundTripNs: c.placementRoundTripNs ?? 0)
            byClass[c.placement, default: (key, [])].comparisons.append(c)
        }
        for (_, group) in byClass.sorted(by: { $0.key < $1.key }) {
            entries.removeAll { $0.machine.matches(group.key) }
            entries.append(.init(machine: group.key, recordedAt: observed.startedAt, gitCommit: observed.tool.gitCommit,
                                 comparisons: group.comparisons))
        }
        fresh.ratioBaselines = entries.isEmpty ? nil : entries
        return fresh
    }

    /// C checks against the committed ratio baselines, made advisory: a ratio outside its
    /// tolerance is reported as inconclusive, saying so, and fails nothing. A ratio baseline
    /// is from another day on a VM whose two vCPUs may sit differently at the same round
    /// trip (packed ÷ split on poll has measured 0.75 and 1.21 in one placement class on one
    /// AMD EPYC host, unchanged code): CI takes C's verdict from `gate --against`, which
    /// measures both builds interleaved in the same rounds. A and B rows are untouched.
    public static func advisory(_ checks: [ResultsDocument.GateCheck]) -> [ResultsDocument.GateCheck] {
        checks.map { c in
            guard c.check.hasPrefix("C "), c.verdict == GateVerdict.regression.rawValue || c.verdict == GateVerdict.improvement.rawValue else {
                return c
            }
            var a = c
            a.tolerance += " — advisory: was \(c.verdict); gate --against judges C"
            a.verdict = GateVerdict.inconclusive.rawValue
            return a
        }
    }

    /// The checks as JSON (`--json`) or as the table a person reads.
    public static func render(_ checks: [ResultsDocument.GateCheck], json: Bool) throws -> String {
        guard json else { return table(checks) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(checks), as: UTF8.self)
    }

    /// The gate table a person reads.
    public static func table(_ checks: [ResultsDocument.GateCheck]) -> String {
        let header = ["check", "metric", "baseline", "observed", "tolerance", "verdict"]
        let rows = [header] + checks.map { c in
            [c.check, c.metric, c.baseline.map { fixed($0, 3) } ?? "-", c.observed.map { fixed($0, 3) } ?? "-", c.tolerance, c.verdict]
        }
        let widths = header.indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { i, cell in cell + String(repeating: " ", count: widths[i] - cell.count) }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

extension GateOutcome {
    /// The same outcome with `checks` replaced and the exit code recomputed from them. A C
    /// row fails only on a regression: an improvement of a noisy ratio, or a machine with no
    /// ratio baseline, is reported but does not fail a build.
    public func withChecks(_ checks: [ResultsDocument.GateCheck]) -> GateOutcome {
        let verdicts = Set(checks.map(\.verdict))
        let exactVerdicts = Set(checks.filter { !$0.check.hasPrefix("C ") }.map(\.verdict))
        let code: Int32 = verdicts.contains("regression") ? 2 : exactVerdicts.contains("improvement") ? 4
            : exactVerdicts.contains("no-baseline") ? 5 : 0
        var doc = observed
        doc.gate = checks
        return GateOutcome(observed: doc, checks: checks, exitCode: code)
    }
}

/// One callgrind run's answer: a count (gate A) or the functions that ran (B's specialisation check).
enum CallgrindJobResult: Sendable {
    case count(CallgrindCount)
    case functions(Set<String>)

    /// Runs `jobs`, at most `width` at a time, and returns their results in order; the first
    /// job's error (in job order) is thrown after every job has finished.
    static func runAll(_ jobs: [@Sendable () throws -> CallgrindJobResult], width: Int) throws -> [CallgrindJobResult] {
        let next = Mutex(0)
        let results = Mutex([Result<CallgrindJobResult, any Error>?](repeating: nil, count: jobs.count))
        DispatchQueue.concurrentPerform(iterations: min(width, jobs.count)) { _ in
            while true {
                let i = next.withLock { n -> Int in defer { n += 1 }; return n }
                guard i < jobs.count else { return }
                let r = Result { try jobs[i]() }
                results.withLock { $0[i] = r }
            }
        }
        return try results.withLock { $0 }.map { try $0!.get() }
    }
}
