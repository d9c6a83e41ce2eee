// `vqbench workload`: one fixed single-thread loop and nothing else, for callgrind to count
// (the function vqb_<layout>_single_thread_loop is what --toggle-collect names).

import ArgumentParser
import Mediation
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
    @Flag(help: "Run the shadow virtqueue's relay loop instead (receive buffers through the relay; vqb_svq_<layout>[_logged]_loop).")
    var relay = false
    @Flag(help: "With --relay: log dirty pages.") var logged = false

    func run() throws {
        guard let kind = RingLayoutKind(rawValue: layout) else { throw ValidationError("layout must be split or packed") }
        guard !logged || relay else { throw ValidationError("--logged needs --relay") }
        if relay {
            let moved: Int
            let pages: Int
            switch kind {
            case .split:
                var b = try ShadowRelayWorkload.split(queueSize: queueSize, batch: batch, payloadBytes: payload)
                defer { b.deallocate() }
                moved = logged ? try ShadowRelayWorkload.splitLoggedLoop(&b, rounds: rounds, batch: batch)
                    : try ShadowRelayWorkload.splitLoop(&b, rounds: rounds, batch: batch)
                pages = b.log.dirtyPageCount
            case .packed:
                var b = try ShadowRelayWorkload.packed(queueSize: queueSize, batch: batch, payloadBytes: payload)
                defer { b.deallocate() }
                moved = logged ? try ShadowRelayWorkload.packedLoggedLoop(&b, rounds: rounds, batch: batch)
                    : try ShadowRelayWorkload.packedLoop(&b, rounds: rounds, batch: batch)
                pages = b.log.dirtyPageCount
            }
            print("descriptors \(moved) dirty pages \(pages)")
            return
        }
        var counters = LoopCounters()
        // The device's burst array, made here so the counted loop allocates nothing.
        let bursts = DeviceBurstBuffers(capacity: batch)
        defer { bursts.deallocate() }
        // 4 KiB pages: the same memory on every machine, so counts do not depend on backing.
        switch kind {
        case .split:
            var s = try RingSetups.split(queueSize: queueSize, payloadBytes: payload, policy: .require(.smallPages))
            try s.addresses.withUnsafeBufferPointer { a throws(VirtqueueError) in
                try SingleThreadWorkload.split(&s.driver, &s.device, a, bursts, UInt32(payload), batch, rounds, &counters)
            }
        case .packed:
            var s = try RingSetups.packed(queueSize: queueSize, payloadBytes: payload, policy: .require(.smallPages))
            try s.addresses.withUnsafeBufferPointer { a throws(VirtqueueError) in
                try SingleThreadWorkload.packed(&s.driver, &s.device, a, bursts, UInt32(payload), batch, rounds, &counters)
            }
        }
        print("descriptors \(counters.descriptors) kicks \(counters.kicks) interrupts \(counters.interrupts)")
    }
}
