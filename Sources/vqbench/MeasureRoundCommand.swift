// `vqbench measure-round ID --descriptors N [--json]` (hidden): one throughput run of one
// scenario with the cache-line round trip just before and after, for `gate --against`, which
// runs it in a base build and in this one, round by round (AgainstRevision.swift).

import ArgumentParser
import VQBenchKit

struct MeasureRoundCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "measure-round",
        abstract: "One throughput run of one scenario, with the cache-line round trip before and after (for gate --against).",
        shouldDisplay: false)

    @Argument(help: "The scenario id, e.g. split/poll/none/q256/b32/64B/4K/qp1.") var scenario: String
    @Option(help: "Descriptors to move.") var descriptors: Int
    @Flag(help: "Print one JSON line: id, descriptors, desc_per_s, rtt_before_ns, rtt_after_ns.") var json = false
    @Flag(help: "Run a mediated scenario's bare reference (what × no mediator divides by) instead of the scenario.")
    var reference = false
    @Flag(help: "Leave out the cache-line round trips (reported as 0): for runs under callgrind, where they take ~20 s.")
    var skipRoundTrip = false

    func run() throws {
        let id = try ScenarioID(parsing: scenario)
        let sample = try MeasureRound.run(id, descriptors: descriptors, reference: reference, roundTrip: !skipRoundTrip)
        if json {
            print(try sample.jsonLine())
        } else {
            print("\(sample.id): \(fixed(sample.descPerSecond / 1e6, 2)) Mdesc/s over \(sample.descriptors) descriptors; "
                  + (skipRoundTrip ? "cache-line round trip not measured"
                     : "cache-line round trip \(fixed(sample.rttBeforeNs, 0)) ns before, \(fixed(sample.rttAfterNs, 0)) ns after"))
        }
    }
}
