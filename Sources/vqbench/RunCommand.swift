// `vqbench run`: calibration and a suite of scenarios, written to results/<run-id>.json
// (and its markdown and SVG reports), with a summary table at the end.

import ArgumentParser
import Foundation
import Doorbell
import VQBenchKit

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Calibrate, measure a suite of scenarios, write results/<run-id>.json and reports.")

    @Option(help: "quick (default), standard or full.") var suite: String = "quick"
    @Option(help: "Only scenario ids matching this glob (',' separates several).") var filter: String?
    @Option(help: "Seconds per scenario (default 2.5).") var duration: Double?
    @Option(help: "Timed interleaved rounds (default 7): every scenario is measured once per round.") var rounds: Int?
    @Option(help: "Directory for results.") var output: String = "results"
    @Option(help: "Repetitions of each parent's lifecycle timed after mediated scenarios (0: skip).")
    var lifecycleRepetitions: Int = 10
    @Option(help: "Repetitions of each parent pair of the live-migration matrix, run after mediated scenarios (0: skip).")
    var migrationRepetitions: Int = 3
    @Option(name: .customLong("repeat"),
            help: "Run the suite N times; the last run's document also gets each paired ratio's median and spread (IQR / median) over the N.")
    var repeatCount: Int = 1
    @Flag(help: "Print the results document to standard output as well.") var json = false

    func run() throws {
        guard repeatCount >= 1 else { throw CLIError("--repeat must be at least 1") }
        guard let suite = Suite(rawValue: suite) else {
            throw CLIError(ScenarioError.unknownSuite(self.suite, known: Suite.allCases.map(\.rawValue)).description)
        }
        var options = RunOptions()
        options.suite = suite
        options.filter = filter
        if let duration {
            guard duration > 0 else { throw CLIError("--duration must be positive") }
            options.plan.secondsPerScenario = duration
        } else if suite == .quick {
            // The default suite stays within 90 s with calibration and the lifecycles.
            options.scenarioPhaseSeconds = Suite.quickScenarioSeconds
        }
        if let rounds {
            guard rounds > 0 else { throw CLIError("--rounds must be positive") }
            options.plan.rounds = rounds
        }
        guard lifecycleRepetitions >= 0 else { throw CLIError("--lifecycle-repetitions must not be negative") }
        options.lifecycleRepetitions = lifecycleRepetitions
        guard migrationRepetitions >= 0 else { throw CLIError("--migration-repetitions must not be negative") }
        options.migrationRepetitions = migrationRepetitions
        #if DEBUG
        options.buildConfig = "debug"
        print("warning: a debug build; quoted figures must come from `swift build -c release`")
        #endif
        do {
            _ = try Engine.scenarios(options)
        } catch {
            throw CLIError(error.description)
        }
        var runs: [ResultsDocument] = []
        var failed = false
        for n in 1...repeatCount {
            if repeatCount > 1 { print("run \(n) of \(repeatCount)") }
            var document = try Engine.run(options) { print($0); fflush(nil) }
            runs.append(document)
            if n == repeatCount && repeatCount > 1 {
                document.repeatSpread = .init(runs: runs.count, runIDs: runs.map(\.runID),
                                              spread: PairedComparisons.spread(runs.map { $0.comparisons ?? [] }))
            }
            let files = try ResultsWriter.write(document, to: output)
            print("")
            print(SummaryTable.render(document))
            for f in files { print("wrote \(f)") }
            if json { print(String(decoding: try ResultsWriter.encode(document), as: UTF8.self)) }
            failed = failed || document.scenarios.contains(where: { $0.status == .failed })
        }
        if failed { throw ExitCode(1) }
    }
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the scenario ids of a suite.")
    @Option(help: "quick, standard or full.") var suite: String = "quick"
    @Option(help: "Only ids matching this glob.") var filter: String?
    @Flag(help: "As a JSON array.") var json = false

    func run() throws {
        guard let suite = Suite(rawValue: suite) else {
            throw CLIError(ScenarioError.unknownSuite(self.suite, known: Suite.allCases.map(\.rawValue)).description)
        }
        var options = RunOptions()
        options.suite = suite
        options.filter = filter
        let ids: [ScenarioID]
        do { ids = try Engine.scenarios(options) } catch { throw CLIError(error.description) }
        if json {
            let data = try JSONEncoder().encode(ids.map(\.description))
            print(String(decoding: data, as: UTF8.self))
        } else {
            for id in ids { print(id) }
        }
    }
}

struct CalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate", abstract: "Measure this machine's limits: cache-line round trip, bare ring, doorbell wake-ups.")
    @Flag(help: "As JSON.") var json = false

    func run() throws {
        let probe = DoorbellProbe.current
        let result = try Engine.calibrate(probe: probe, placement: .current()) { if !json { print($0) } }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(result.document), as: UTF8.self))
        }
    }
}

/// A user-facing error: one message, exit code 2, no stack trace.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
