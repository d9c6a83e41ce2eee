// Shared by the doorbell tests: the skip rules (io_uring denied, one CPU) and a bounded
// random pause, so every test states why it did not run instead of passing silently.

import CPlatform
import Doorbell
import Glibc
import Testing

/// Every doorbell suite runs inside this one, one test at a time: their threads pin to
/// both CPUs and some spin, so two running at once would oversubscribe a 2-CPU machine.
@Suite(.serialized)
enum DoorbellSuites {}

/// Skips (with the reason printed) when this machine cannot run `transport` as the test
/// needs: the probe rejects it, or its waiter spins and there is no second CPU to answer.
func skipUnlessRunnable(_ transport: DoorbellTransport) throws {
    if let reason = DoorbellProbe.current.unavailability(of: transport) {
        try Test.cancel("\(transport) unavailable here: \(reason)")
    }
    if !transport.blocks || transport.id.hasPrefix("hybrid-"), cplatform_allowed_cpu_count() < 2 {
        try Test.cancel("\(transport) spins; this process has one CPU, so its peer could not answer")
    }
}

/// A generous bound on one wait: long enough that no slow CI machine trips it, short
/// enough that a lost wakeup fails the test instead of hanging it.
let generousTimeout: UInt64 = 10_000_000_000

/// xorshift64*: a per-thread random source that allocates nothing.
struct Pauses {
    var state: UInt64

    init(seed: UInt64) { state = seed | 1 }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    /// Mostly nothing; sometimes a spin of up to ~2000 relax hints; rarely a yield of the
    /// CPU. Bounded, so the stress stays short on two shared cores.
    mutating func pause() {
        let r = next()
        if r % 8 == 0 {
            for _ in 0..<(r >> 8) % 2048 { cplatform_cpu_relax() }
        } else if r % 509 == 0 {
            sched_yield()
        }
    }
}
