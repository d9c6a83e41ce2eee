// `vqbench workload`: one fixed single-thread loop and nothing else, for callgrind to count
// (the function vqb_<layout>_single_thread_loop is what --toggle-collect names).

import ArgumentParser
import VQBenchKit
import Virtqueue
import VirtioMemory

struct WorkloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workload",
        abstract: "Run one fixed single-thread ring loop (for instruction counting).")

    @Option(help: "split or packed.") var layout: String = "split"
    @Option(help: "Rounds of the loop.") var rounds = 1000
    @Option(help: "Descriptors per round.") var batch = 32
    @Option(help: "Queue size.") var queueSize = 256
    @Option(help: "Payload bytes.") var payload = 64

    func run() throws {
        guard let kind = RingLayoutKind(rawValue: layout) else { throw ValidationError("layout must be split or packed") }
        var counters = LoopCounters()
        // The device's burst array, made here so the counted loop allocates nothing.
        let chains = UnsafeMutablePointer<Chain>.allocate(capacity: max(batch, 1))
        defer { chains.deallocate() }
        // 4 KiB pages: the same memory on every machine, so counts do not depend on backing.
        switch kind {
        case .split:
            var s = try RingSetups.split(queueSize: queueSize, payloadBytes: payload, policy: .require(.smallPages))
            try s.addresses.withUnsafeBufferPointer { a throws(VirtqueueError) in
                try SingleThreadWorkload.split(&s.driver, &s.device, a, chains, UInt32(payload), batch, rounds, &counters)
            }
        case .packed:
            var s = try RingSetups.packed(queueSize: queueSize, payloadBytes: payload, policy: .require(.smallPages))
            try s.addresses.withUnsafeBufferPointer { a throws(VirtqueueError) in
                try SingleThreadWorkload.packed(&s.driver, &s.device, a, chains, UInt32(payload), batch, rounds, &counters)
            }
        }
        print("descriptors \(counters.descriptors) kicks \(counters.kicks) interrupts \(counters.interrupts)")
    }
}
