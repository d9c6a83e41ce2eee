// `vqbench doctor`: whether this machine can run the suite, one line per need (ok / warn /
// missing) with the exact remedy when not ok; exit 1 listing the blockers when the default
// suite cannot run. Facts are gathered once (VQBenchKit/Doctor/DoctorFacts.swift) and judged
// by a pure function (DoctorChecks.swift).

import ArgumentParser
import Foundation
import VQBenchKit

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check what the suite needs on this machine and print the remedy for each gap.",
        discussion: """
            CPUs, CPU model, virtualization, 2 MiB and 1 GiB huge pages, THP, io_uring and its opcodes, \
            seccomp, valgrind (for vqbench gate), liburing and libhugetlbfs, and the vCPU placements the \
            cache-line round trip shows over a couple of seconds. Exits 1, listing the blockers, when the \
            default suite cannot run; warnings alone exit 0.
            """)

    @Option(help: "Seconds to sample the cache-line round trip for vCPU placements (0 skips).")
    var placementSeconds: Double = 2

    @Flag(help: "Print the checks (and the facts behind them) as JSON.")
    var json = false

    func validate() throws {
        guard placementSeconds >= 0, placementSeconds <= 60 else { throw ValidationError("--placement-seconds must be in 0...60") }
    }

    func run() throws {
        let facts = DoctorFacts.gather(placementSeconds: placementSeconds)
        let checks = Doctor.checks(facts)
        let blockers = Doctor.blockers(checks)
        if json {
            struct Document: Encodable {
                var checks: [DoctorCheck]
                var defaultSuiteCanRun: Bool
                var blockers: [String]
                var facts: DoctorFacts
                enum CodingKeys: String, CodingKey {
                    case checks, blockers, facts
                    case defaultSuiteCanRun = "default_suite_can_run"
                }
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let document = Document(checks: checks, defaultSuiteCanRun: blockers.isEmpty, blockers: blockers.map(\.name), facts: facts)
            print(String(decoding: try encoder.encode(document), as: UTF8.self))
        } else {
            let width = checks.map(\.name.count).max() ?? 0
            for check in checks { print(Self.line(check, nameWidth: width)) }
            print("")
            if blockers.isEmpty {
                let warnings = checks.filter { $0.status != .ok }.count
                print("the default suite can run" + (warnings == 0 ? "." : " (\(warnings) not ok, none blocking)."))
            }
        }
        guard blockers.isEmpty else {
            let list = blockers.map { "\($0.name): \($0.remedy ?? $0.found)" }.joined(separator: "; ")
            FileHandle.standardError.write(Data("vqbench doctor: the default suite cannot run; blockers: \(list)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// `warn     2 MiB huge pages   0 reserved, 0 free — rings fall back … — remedy: echo 512 > …`
    static func line(_ c: DoctorCheck, nameWidth: Int) -> String {
        var text = c.status.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
            + c.name.padding(toLength: nameWidth + 2, withPad: " ", startingAt: 0) + c.found
        if let effect = c.effect { text += " — " + effect }
        if let remedy = c.remedy { text += " — remedy: " + remedy }
        return text
    }
}
