// `vqbench ring`: split and packed rings, single-thread ns/descriptor and two-thread polled
// throughput, with the packed/split ratio taken from alternating rounds of one placement.

import ArgumentParser
import VQBenchKit
import Virtqueue

struct RingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ring",
        abstract: "Measure split and packed rings: single-thread cost and two-thread polled throughput.")

    @Option(help: "Queue size.") var queueSize = 256
    @Option(help: "Payload bytes per descriptor.") var payload = 64
    @Option(parsing: .upToNextOption, help: "Batch sizes.") var batch: [Int] = [1, 8, 32]
    @Option(help: "Descriptors per timed two-thread run.") var descriptors = 2_000_000
    @Option(help: "Timed rounds (after one warm-up round).") var rounds = 7
    @Flag(help: "Print every round.") var verbose = false

    func run() throws {
        var config = RingBenchmarkConfig()
        config.queueSize = queueSize
        config.payloadBytes = payload
        config.batches = batch
        config.twoThreadDescriptors = descriptors
        config.singleThreadDescriptors = descriptors
        config.rounds = rounds
        let report = try RingBenchmark.run(config) { line in if verbose { print("  " + line) } }
        print("ring memory: \(report.backing); q\(queueSize), \(payload) B payload; \(report.discardedRounds) rounds discarded for a placement change")
        if let note = report.placementNote { print("note: \(note)") }
        print("placement classes: " + report.placementClasses.map { "\($0.name) (\(fixed($0.minNs, 0))–\(fixed($0.maxNs, 0)) ns, \($0.samples) round trips)" }
            .joined(separator: ", "))
        print("layout  batch  single-thread ns/desc  two-thread Mdesc/s (median, per placement)  cpu ns/desc")
        for f in report.figures {
            let tt = f.twoThreadDescriptorsPerSecond.sorted { $0.key < $1.key }
                .map { "\($0.key): \(fixed(median($0.value) / 1e6, 1)) (n=\($0.value.count))" }
                .joined(separator: ", ")
            print("\(f.layout.rawValue.padding(8))\(String(f.batch).padding(7))\(fixed(f.singleThreadNsPerDescriptor, 2).padding(23))\(tt.padding(44))\(fixed(f.cpuNsPerDescriptor, 1))")
        }
        for r in report.ratios.sorted(by: { ($0.batch, $0.placement) < ($1.batch, $1.placement) }) {
            print("packed/split two-thread, batch \(r.batch), \(r.placement): \(fixed(median(r.packedOverSplit), 3))× (rounds: \(r.packedOverSplit.map { fixed($0, 2) }.joined(separator: " ")))")
        }
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}
