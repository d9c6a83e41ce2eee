// `vqbench doorbells`: the wake-up round trip of every doorbell transport, two threads
// pinned to two CPUs, percentiles from an HdrHistogram and system calls per round trip.

import ArgumentParser
import Doorbell
import Foundation
import Histogram

struct DoorbellsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doorbells",
        abstract: "Measure the wake-up round trip of each doorbell transport.",
        discussion: """
            Two threads pinned to CPUs 0 and 1 ping-pong over two doorbells of the same \
            transport: notify, the peer wakes and notifies back, this side wakes. The transports \
            run in alternating rounds, so a change in background load between them shows in \
            all alike and the ratios to eventfd stay fair (DESIGN.md: ratios inside one run). \
            A transport the capability probe rejects is reported as unavailable with the reason.
            """)

    @Option(help: "Measured round trips per transport.")
    var iterations = 100_000

    @Option(help: "Round trips run first and not measured, per round.")
    var warmup = 1_000

    @Option(help: "Alternating rounds; each transport runs iterations/rounds round trips per round.")
    var rounds = 10

    @Option(name: .customLong("hybrid-spin-ns"), help: "How long a hybrid waiter spins before it sleeps.")
    var hybridSpinNanoseconds: UInt64 = 20_000

    @Option(help: "Only these transports, comma-separated ids (e.g. eventfd,io_uring-msgring-busy).")
    var transports: String?

    @Flag(help: "Print the probe and every figure as JSON instead of a table.")
    var json = false

    struct Row: Encodable {
        var transport: String
        var status: String
        var reason: String?
        var latencyNs: [String: UInt64]?
        var syscallsPerRoundTrip: Double?
        var ratioToEventfdP50: Double?

        enum CodingKeys: String, CodingKey {
            case transport, status, reason
            case latencyNs = "latency_ns"
            case syscallsPerRoundTrip = "syscalls_per_round_trip"
            case ratioToEventfdP50 = "ratio_to_eventfd_p50"
        }
    }

    func run() throws {
        let selected = try selectedTransports()
        let probe = DoorbellProbe.current
        if !json {
            print("doorbell probe: \(probe)")
            let cpus = WakeupRoundTrip.defaultCPUs.map { "pinned to CPUs \($0.0) and \($0.1)" } ?? "unpinned (one CPU)"
            print("wake-up round trip, \(iterations) round trips in \(rounds) alternating rounds "
                  + "(\(warmup) warm-up each), \(cpus), "
                  + "hybrid spin \(hybridSpinNanoseconds) ns; times in µs")
            print(pad("transport", 24) + ["p50", "p90", "p99", "p99.9", "max"].map { lpad($0, 9) }.joined()
                  + lpad("syscalls/rt", 13) + lpad("p50/eventfd", 13))
        }
        var rows: [Row] = []
        var available: [DoorbellTransport] = []
        for transport in selected {
            if let reason = probe.unavailability(of: transport) {
                rows.append(Row(transport: transport.id, status: "unavailable", reason: reason))
            } else {
                available.append(transport)
            }
        }
        var histograms = [DoorbellTransport: Histogram<UInt64>]()
        var syscalls = [DoorbellTransport: UInt64]()
        var completed = [DoorbellTransport: Int]()
        var failures = [DoorbellTransport: String]()
        let perRound = max(1, iterations / max(1, rounds))
        for _ in 0..<max(1, rounds) {
            for transport in available where failures[transport] == nil {
                let report = try WakeupRoundTrip.run(transport, iterations: perRound, warmup: warmup,
                                                     hybridSpinNanoseconds: hybridSpinNanoseconds)
                if let failure = report.failure {
                    failures[transport] = failure
                    continue
                }
                var histogram = histograms[transport]
                    ?? Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
                for sample in report.samplesNanoseconds { _ = histogram.record(sample) }
                histograms[transport] = histogram
                syscalls[transport, default: 0] += report.total.syscalls
                completed[transport, default: 0] += report.completed
            }
        }
        let eventfdMedian = histograms[.eventfd]?.valueAtPercentile(50)
        for transport in available {
            if let failure = failures[transport] {
                rows.append(Row(transport: transport.id, status: "failed", reason: failure))
                continue
            }
            guard let histogram = histograms[transport] else { continue }
            let figures: [(String, UInt64)] = [
                ("p50", histogram.valueAtPercentile(50)), ("p90", histogram.valueAtPercentile(90)),
                ("p99", histogram.valueAtPercentile(99)), ("p999", histogram.valueAtPercentile(99.9)),
                ("max", histogram.max),
            ]
            let perRoundTrip = Double(syscalls[transport] ?? 0) / Double(max(1, completed[transport] ?? 0))
            rows.append(Row(transport: transport.id, status: "ok", reason: nil,
                            latencyNs: Dictionary(uniqueKeysWithValues: figures),
                            syscallsPerRoundTrip: perRoundTrip,
                            ratioToEventfdP50: eventfdMedian.map { Double(figures[0].1) / Double($0) }))
        }
        let order = Dictionary(uniqueKeysWithValues: selected.enumerated().map { ($1.id, $0) })
        rows.sort { order[$0.transport, default: 0] < order[$1.transport, default: 0] }
        if !json {
            for row in rows {
                guard let latency = row.latencyNs else {
                    print(pad(row.transport, 24) + "\(row.status): \(row.reason ?? "")")
                    continue
                }
                print(pad(row.transport, 24)
                      + ["p50", "p90", "p99", "p999", "max"].map { lpad(String(format: "%.2f", Double(latency[$0] ?? 0) / 1000), 9) }.joined()
                      + lpad(String(format: "%.2f", row.syscallsPerRoundTrip ?? 0), 13)
                      + lpad(row.ratioToEventfdP50.map { String(format: "%.2f×", $0) } ?? "-", 13))
            }
        }
        if json {
            struct Document: Encodable {
                var probe: DoorbellProbe
                var iterations: Int
                var warmup: Int
                var rounds: Int
                var hybridSpinNs: UInt64
                var doorbells: [Row]
                enum CodingKeys: String, CodingKey {
                    case probe, iterations, warmup, rounds, doorbells
                    case hybridSpinNs = "hybrid_spin_ns"
                }
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(Document(probe: probe, iterations: iterations, warmup: warmup,
                                                   rounds: rounds, hybridSpinNs: hybridSpinNanoseconds, doorbells: rows))
            print(String(decoding: data, as: UTF8.self))
        }
    }

    /// eventfd first: the others are reported against its median from the same run.
    func selectedTransports() throws -> [DoorbellTransport] {
        guard let transports else { return DoorbellTransport.all }
        return try transports.split(separator: ",").map { id in
            guard let transport = DoorbellTransport(id: String(id)) else {
                throw ValidationError("unknown transport '\(id)'; one of \(DoorbellTransport.all.map(\.id).joined(separator: ", "))")
            }
            if case let .hybrid(inner) = transport, !inner.blocks || inner.id.hasPrefix("hybrid-") {
                throw ValidationError("\(transport): a hybrid needs a blocking inner transport")
            }
            return transport
        }
    }

    func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    func lpad(_ text: String, _ width: Int) -> String {
        text.count >= width ? " " + text : String(repeating: " ", count: width - text.count) + text
    }
}
