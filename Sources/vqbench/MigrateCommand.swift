// `vqbench migrate`: moves a running device from one parent to another under a vhost
// consumer and prints the timeline — each control step, the downtime the guest saw, and
// what was lost or duplicated (must be nothing). `--matrix` runs every pair of the
// migration matrix on both layouts and prints the table.

import ArgumentParser
import Foundation
import Mediation
import Virtqueue
import VQBenchKit

struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Live-migrate a device between parents under traffic and print the timeline (downtime, control steps, lost/duplicated).",
        discussion: """
            The guest (a vhost consumer) transmits numbered, checksummed packets through FROM, posts a last burst, \
            stops with those buffers in flight (--while-traffic; otherwise idle), and the device moves to a fresh \
            TO: suspend, save each queue's position and the config space, release the source, bring the destination \
            up on the same guest memory, kick fds and call doorbells with the saved positions, resume. A source that \
            cannot suspend runs behind its shadow virtqueue from the start (PARENT+svq), as QEMU migrates it. \
            Times marked † are modelled (firmware, register flights), never inside the measured ones.
            """)

    @Option(help: "The source parent (vqbench list shows them).") var from: String?
    @Option(help: "The destination parent.") var to: String?
    @Option(help: "Ring layout: split or packed.") var layout: String = "split"
    @Flag(help: "Stop the guest with a queue's worth of buffers in flight (otherwise every buffer is back before the stop).")
    var whileTraffic = false
    @Flag(help: "Every pair of \(MigrationRun.matrixParents.joined(separator: ", ")) on both layouts, with buffers in flight.")
    var matrix = false
    @Option(help: "Packets through the source before the stop, and through the destination after.") var packets: Int = 100_000
    @Option(help: "Queue size.") var queueSize: Int = 256
    @Option(help: "Pre-copy rounds of dirty-log harvest and page copy while the guest receives, before the stop (a source behind its shadow virtqueue).")
    var precopyRounds: Int = 0
    @Option(help: "With --matrix: migrations per pair (the table shows medians).") var repetitions: Int = 3
    @Flag(help: "With --matrix: print the figures as JSON (the results document's `migrations` entries) instead of the table.")
    var json = false
    @Flag(help: "Time a destination's map of the guest's memory (VHOST_SET_MEM_TABLE) as it grows, per DMA strategy.")
    var mapSweep = false
    @Option(help: "With --map-sweep: the largest guest memory, in GiB (1, 2, 4, … up to it; needs that much free memory).")
    var maxGib: Int = 8
    @Flag(help: "With --map-sweep: guest memory of 2 MiB huge pages (reserve them first: /proc/sys/vm/nr_hugepages).")
    var hugetlb = false

    func run() throws {
        if matrix {
            try runMatrix()
            return
        }
        if mapSweep {
            try runMapSweep()
            return
        }
        guard let from, let to else { throw CLIError("give --from PARENT and --to PARENT, or --matrix") }
        guard let kind = RingLayoutKind(rawValue: layout) else { throw CLIError("--layout must be split or packed, not \(layout)") }
        var options = MigrationRun.Options(from: from, to: to, layout: kind)
        options.packetsBefore = packets
        options.packetsAfter = packets
        options.queueSize = queueSize
        options.inFlight = whileTraffic ? queueSize : 0
        guard precopyRounds >= 0 else { throw CLIError("--precopy-rounds must not be negative") }
        options.precopyRounds = precopyRounds
        print("migrate \(from) → \(to), \(kind), queue \(queueSize), \(options.inFlight) buffers in flight at the stop\(Self.buildNote)")
        let out = try MigrationRun.run(options)
        print(Self.timeline(out))
        if !out.ok { throw ExitCode(2) }
    }

    static var buildNote: String {
        #if DEBUG
        " (debug build: times are not figures)"
        #else
        ""
        #endif
    }

    static func us(_ ns: UInt64) -> String { fixed(Double(ns) / 1000, 1) + " µs" }

    static func timeline(_ out: MigrationRun.Outcome) -> String {
        var lines: [String] = []
        let o = out.options
        lines.append("  traffic before: \(o.packetsBefore) packets at \(fixed(out.beforePacketsPerSecond / 1e6, 2)) Mpkt/s")
        for (i, r) in out.precopy.enumerated() {
            lines.append("  pre-copy round \(i + 1): \(r.pages) dirty pages harvested and copied in \(us(r.nanoseconds)) while the guest receives")
        }
        if let r = out.precopyRefusal { lines.append("  no pre-copy: \(r)") }
        lines.append("  guest stops after its last kick: \(min(o.inFlight, o.queueSize)) transmit and as many receive buffers in flight")
        for s in out.record.steps {
            let modelled = s.modelledNanoseconds > 0 ? "   + \(fixed(s.modelledNanoseconds / 1000, 1)) µs modelled †" : ""
            lines.append("  " + s.name.padding(toLength: 18, withPad: " ", startingAt: 0) + us(s.nanoseconds).leftPadded(12) + modelled)
        }
        lines.append("  downtime (guest's stop → the destination's first completion): \(us(out.downtimeNanoseconds)); "
                     + "control steps \(us(out.record.controlNanoseconds))"
                     + (out.record.modelledNanoseconds > 0 ? " + \(fixed(out.record.modelledNanoseconds / 1000, 1)) µs modelled †" : ""))
        if !out.precopy.isEmpty { lines.append("  stop and copy: \(out.finalDirtyPages) pages dirty at the stop") }
        lines.append("  carried over: \(out.carriedOver) buffers the source had not consumed, completed by the destination")
        lines.append("  traffic after: \(fixed(out.afterPacketsPerSecond / 1e6, 2)) Mpkt/s")
        lines.append("  consumed by source \(out.bySource), by destination \(out.byDestination); the guest posted \(out.sent), got back \(out.reclaimed); "
                     + "lost \(out.lost), duplicated \(out.duplicated); checksums \(out.checksumsAgree ? "agree" : "DIFFER")"
                     + (out.refusal == nil ? "; config \(out.configCarried ? "carried" : "NOT carried")" : ""))
        lines.append("  receive: filled by source \(out.receivedBySource), by destination \(out.receivedByDestination) "
                     + "(\(out.receiveCarriedOver) of the buffers in flight); the guest posted \(out.receivePosted), got back "
                     + "\(out.receiveReclaimed), every packet's number and bytes checked; lost \(out.receiveLost), duplicated \(out.receiveDuplicated)")
        for e in out.errors { lines.append("  error: \(e)") }
        if let r = out.refusal {
            lines.append("  migration refused before the source was released: \(r)")
            lines.append(out.intact ? "  the guest went on through the source: nothing lost" : "  the guest's traffic after the refusal FAILED")
        } else {
            lines.append(out.ok ? "  migration: ok" : "  migration: FAILED")
        }
        return lines.joined(separator: "\n")
    }

    func runMapSweep() throws {
        guard maxGib >= 1 else { throw CLIError("--max-gib must be at least 1") }
        let sizes = sequence(first: 1) { $0 * 2 <= maxGib ? $0 * 2 : nil }.map { $0 }
        print("map time as guest memory grows (VHOST_SET_MEM_TABLE of one region of touched memfd pages, "
              + "\(hugetlb ? "2 MiB huge pages" : "4 KiB pages"); median of 3)\(Self.buildNote)")
        let figures = try MapTimeRun.run(gibibytes: sizes, hugetlb: hugetlb) { print($0) }
        print("strategy (parent) | GiB | map | per GiB | modelled †")
        for f in figures {
            let ms = Double(f.mapNanoseconds) / 1e6
            print("\(f.strategy) (\(f.parent)) | \(f.gibibytes) | \(fixed(ms, 2)) ms | \(fixed(ms / Double(f.gibibytes), 2)) ms | "
                  + (f.modelledNanoseconds > 0 ? "\(fixed(f.modelledNanoseconds / 1000, 1)) µs †" : "—"))
        }
    }

    func runMatrix() throws {
        if json {
            let figures = try MigrationRun.matrix(repetitions: repetitions, packets: packets, queueSize: queueSize, placement: .current())
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try e.encode(figures), as: UTF8.self))
            if figures.contains(where: { !$0.ok }) { throw ExitCode(2) }
            return
        }
        print("migration matrix: \(MigrationRun.matrixParents.joined(separator: ", ")); a source that cannot suspend and a destination "
              + "that cannot restore a queue's position run as PARENT+svq; queue \(queueSize), \(queueSize) buffers in flight at the stop, "
              + "\(packets) packets before and after, medians of \(repetitions)\(Self.buildNote)")
        let figures = try MigrationRun.matrix(repetitions: repetitions, packets: packets, queueSize: queueSize, placement: .current())
        print("from → to | layout | downtime | suspend | save | release | map | restore | resume | modelled † | carried | lost | dup | ok")
        let us = { (x: Double?) in x.map { fixed($0 / 1000, 1) + " µs" } ?? "—" }
        for m in figures {
            let modelled = m.modelledNs.values.reduce(0, +)
            print("\(m.from) → \(m.to) | \(m.layout) | \(us(m.downtimeMedianNs)) | \(us(m.stepsNs["suspend"])) | \(us(m.stepsNs["save"])) | "
                  + "\(us(m.stepsNs["release_source"])) | \(us(m.stepsNs["map"])) | \(us(m.stepsNs["restore"])) | \(us(m.stepsNs["resume"])) | "
                  + "\(modelled > 0 ? us(modelled) + " †" : "—") | \(m.carriedOver) | \(m.lost) | \(m.duplicated) | \(m.ok ? "yes" : "NO")")
            for e in m.errors ?? [] { print("    \(e)") }
        }
        if figures.contains(where: { !$0.ok }) { throw ExitCode(2) }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
