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
            transport: notify, the peer wakes and notifies back, this side wakes. A transport \
            the capability probe rejects is reported as unavailable with the reason.
            """)

    @Option(help: "Measured round trips per transport.")
    var iterations = 100_000

    @Option(help: "Round trips run first and not measured.")
    var warmup = 5_000

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
            print("wake-up round trip, \(iterations) round trips after \(warmup) warm-up, \(cpus), "
                  + "hybrid spin \(hybridSpinNanoseconds) ns; times in µs")
            print(pad("transport", 24) + ["p50", "p90", "p99", "p99.9", "max"].map { lpad($0, 9) }.joined()
                  + lpad("syscalls/rt", 13) + lpad("p50/eventfd", 13))
        }
        var rows: [Row] = []
        var eventfdMedian: UInt64?
        for transport in selected {
            if let reason = probe.unavailability(of: transport) {
                rows.append(Row(transport: transport.id, status: "unavailable", reason: reason))
                if !json { print(pad(transport.id, 24) + "unavailable: \(reason)") }
                continue
            }
            let report = try WakeupRoundTrip.run(transport, iterations: iterations, warmup: warmup,
                                                 hybridSpinNanoseconds: hybridSpinNanoseconds)
            if let failure = report.failure {
                rows.append(Row(transport: transport.id, status: "failed", reason: failure))
                if !json { print(pad(transport.id, 24) + "failed: \(failure)") }
                continue
            }
            var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
            for sample in report.samplesNanoseconds { _ = histogram.record(sample) }
            let figures: [(String, UInt64)] = [
                ("p50", histogram.valueAtPercentile(50)), ("p90", histogram.valueAtPercentile(90)),
                ("p99", histogram.valueAtPercentile(99)), ("p999", histogram.valueAtPercentile(99.9)),
                ("max", histogram.max),
            ]
            if transport == .eventfd { eventfdMedian = figures[0].1 }
            let ratio = eventfdMedian.map { Double(figures[0].1) / Double($0) }
            rows.append(Row(transport: transport.id, status: "ok", reason: nil,
                            latencyNs: Dictionary(uniqueKeysWithValues: figures),
                            syscallsPerRoundTrip: report.syscallsPerRoundTrip, ratioToEventfdP50: ratio))
            if !json {
                print(pad(transport.id, 24)
                      + figures.map { lpad(String(format: "%.2f", Double($0.1) / 1000), 9) }.joined()
                      + lpad(String(format: "%.2f", report.syscallsPerRoundTrip), 13)
                      + lpad(ratio.map { String(format: "%.2f×", $0) } ?? "-", 13))
            }
        }
        if json {
            struct Document: Encodable {
                var probe: DoorbellProbe
                var iterations: Int
                var warmup: Int
                var hybridSpinNs: UInt64
                var doorbells: [Row]
                enum CodingKeys: String, CodingKey {
                    case probe, iterations, warmup, doorbells
                    case hybridSpinNs = "hybrid_spin_ns"
                }
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(Document(probe: probe, iterations: iterations, warmup: warmup,
                                                   hybridSpinNs: hybridSpinNanoseconds, doorbells: rows))
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
