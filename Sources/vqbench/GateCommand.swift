// `vqbench gate`: the CI performance gate. Measures instruction counts, exact counters and
// in-run ratios, compares them with the committed baseline and prints a table.
// Exit codes: 0 pass, 2 regression, 4 improvement beyond tolerance, 5 no baseline.

import ArgumentParser
import Foundation
import VQBenchKit

struct GateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gate",
        abstract: "Check this build against results/baseline.json (exit 0 pass, 2 regression, 4 improvement of an exact count, 5 no baseline).")

    @Option(help: "The baseline results document.") var baseline: String = "results/baseline.json"
    @Flag(help: "Write what was measured as the new baseline (review and commit it).") var update = false
    @Flag(help: "Skip gate C (in-run ratios), which takes a few seconds per scenario.") var skipRatios = false
    @Flag(help: "Skip gate B's specialisation check (seven datapath runs under callgrind, ~10 s): it needs no baseline, so a run that already passed it need not repeat it.")
    var skipSpecialisation = false
    @Flag(help: "Report gate C's checks against the committed ratio baselines without failing on them (scripts/gate in CI: `gate --against` judges C there, both builds interleaved in the same rounds).")
    var advisoryRatios = false
    @Option(name: .customLong("specialisation-scenario"),
            help: "Run gate B's specialisation check on this scenario id only (repeatable; default: its four scenarios).")
    var specialisationScenario: [String] = []
    @Option(help: "Where to write the gate's own results document.") var output: String = "results"
    @Flag(help: "Print the checks as JSON.") var json = false
    @Option(help: "Compare with revision REV instead of the baseline: build it, measure both here (exit 0 pass, 2 regression, 4 improvement, 3 base not built).")
    var against: String?
    @Option(help: "With --against: C fails when the whole interval of new/base lies below 1 - this.") var againstTolerance = 0.10
    @Option(help: "With --against: rounds per ratio scenario, each running both builds (ABBA).") var againstRounds = 7
    @Option(help: "With --against: REV's release vqbench, already built from REV's tree (skips the build).") var againstBuild: String?

    func run() throws {
        #if DEBUG
        throw CLIError("the gate counts a release build's instructions: build with `swift build -c release`")
        #else
        if let against {
            try runAgainst(against)
            return
        }
        var options = GateOptions()
        if !specialisationScenario.isEmpty {
            options.specialisationScenarios = try specialisationScenario.map { text in
                do { return try ScenarioID(parsing: text) } catch {
                    throw CLIError("--specialisation-scenario \(text): \(error)")
                }
            }
        }
        if skipSpecialisation { options.specialisationScenarios = [] }
        let observed = try Gate.measure(options, ratios: !skipRatios) { if !json { print($0) } }
        var base: ResultsDocument? = nil
        if FileManager.default.fileExists(atPath: baseline) {
            base = try loadResults(baseline)
        }
        var outcome = Gate.judge(observed: observed, baseline: base, options: options)
        // C rows that were neither clearly in nor clearly out get one re-run, of the scenarios
        // their comparisons pair and of C alone (A and B are exact); the re-run's verdict stands.
        let unsure = outcome.checks.filter { $0.check.hasPrefix("C ") && ($0.verdict == "inconclusive" || $0.verdict == "regression") }
        if !unsure.isEmpty && !skipRatios {
            if !json { print("re-running \(unsure.count) ratio check(s) once") }
            let pairs = (observed.comparisons ?? []).filter { c in unsure.contains { $0.check == Gate.checkName(c) } }
            var again = options
            again.ratioScenarios = options.ratioScenarios.filter { id in
                pairs.contains { $0.a == id.description || $0.b == id.description }
            }
            let rerun = try Gate.measure(again, ratios: true, exact: false) { if !json { print($0) } }
            let second = Gate.judge(observed: rerun, baseline: base, options: options)
            for (i, check) in outcome.checks.enumerated() where unsure.contains(check) {
                if let replacement = second.checks.first(where: { $0.check == check.check }) {
                    outcome.checks[i] = replacement
                }
            }
            outcome = outcome.withChecks(outcome.checks)
        }
        if advisoryRatios { outcome = outcome.withChecks(Gate.advisory(outcome.checks)) }
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let path = output + "/gate-" + outcome.observed.runID + ".json"
        try ResultsWriter.encode(outcome.observed).write(to: URL(fileURLWithPath: path))
        print(try Gate.render(outcome.checks, json: json))
        if !json { print("wrote \(path)") }
        if update {
            let fresh = Gate.updatedBaseline(observed: outcome.observed, previous: base)
            try ResultsWriter.encode(fresh).write(to: URL(fileURLWithPath: baseline))
            print("baseline updated: \(baseline) — review and commit it")
            return
        }
        let verdict = ["0": "pass", "2": "regression", "4": "improvement beyond tolerance: ratchet the baseline with --update",
                       "5": "no baseline for some checks: create it with --update"][String(outcome.exitCode)] ?? ""
        print("gate: \(verdict)")
        if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
        #endif
    }
}
