// `vqbench report` regenerates a run's markdown and SVG reports from its JSON;
// `vqbench compare` tabulates what moved between two runs.

import ArgumentParser
import Foundation
import VQBenchKit

/// Reads and validates a results file, or fails with one clear message.
func loadResults(_ path: String) throws -> ResultsDocument {
    guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("cannot read \(path)") }
    let problems: [String]
    do { problems = try ResultsValidator.validate(data: data) } catch { throw CLIError("\(path) is not a results document: \(error)") }
    guard problems.isEmpty else {
        throw CLIError("\(path) does not match the results schema:\n  " + problems.prefix(10).joined(separator: "\n  "))
    }
    do { return try ResultsWriter.decode(data) } catch { throw CLIError("\(path) could not be decoded: \(error)") }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Regenerate the markdown and SVG reports of a results JSON.")
    @Argument(help: "A results/<run-id>.json file.") var path: String

    func run() throws {
        let doc = try loadResults(path)
        let base = path.hasSuffix(".json") ? String(path.dropLast(5)) : path
        for f in try ResultsWriter.writeReports(doc, base: base) { print("wrote \(f)") }
    }
}

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare", abstract: "Compare two runs scenario by scenario (ratios first).")
    @Argument(help: "The earlier run's JSON.") var a: String
    @Argument(help: "The later run's JSON.") var b: String
    @Option(help: "Flag moves larger than this fraction.") var threshold: Double = 0.05

    func run() throws {
        let comparison = ResultsComparison.compare(try loadResults(a), try loadResults(b), threshold: threshold)
        print(comparison.markdown())
    }
}
