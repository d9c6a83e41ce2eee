// `vqbench lifecycle`: every control-path operation of each parent, timed.

import ArgumentParser
import Foundation
import VQBenchKit

struct LifecycleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lifecycle",
        abstract: "Time each parent's lifecycle: mdev create/remove, vdpa dev add/del, devlink port functions, bind and bring-up under virtio and vhost, suspend/resume.")

    @Option(help: "Repetitions of every lifecycle per parent.")
    var repetitions = 20

    @Flag(help: "Print the figures as JSON instead of a table.")
    var json = false

    func validate() throws {
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1") }
    }

    func run() throws {
        let figures = try LifecycleRun.run(repetitions: repetitions, placement: .current()) { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(figures), as: UTF8.self))
            return
        }
        print("Lifecycle operations, \(repetitions) repetitions per parent (µs; allocate_rings is allocating, zeroing and checking ring memory, bring_up the configuration sequence after it)")
        print("parent     operation                                      median        p99        min        max")
        for f in figures {
            let op = f.operation.padding(toLength: 44, withPad: " ", startingAt: 0)
            let cells = [f.medianNs, f.p99Ns, f.minNs, f.maxNs].map { String(format: "%10.1f", $0 / 1000) }.joined(separator: " ")
            print("\(f.parent.padding(toLength: 10, withPad: " ", startingAt: 0)) \(op) \(cells)")
        }
    }
}
