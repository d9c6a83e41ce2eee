// The wake-up round trip of a doorbell: two threads on two CPUs ping-pong over two pairs
// of the same transport. The calibration's wake_ns, the benchmark's figures and the
// tests' exact-count checks all come from this one loop.

import Atomics
import CPlatform

/// What one ping-pong run did.
public struct RoundTripReport: Sendable {
    public var transport: DoorbellTransport
    /// Round trips both threads completed, warm-up included.
    public var completed: Int
    /// One sample per measured round trip (after warm-up): notify → peer wakes → peer
    /// notifies back → this side wakes, in nanoseconds of CLOCK_MONOTONIC.
    public var samplesNanoseconds: [UInt64]
    /// The ping doorbell's ends (pinger rings, ponger waits) and the pong doorbell's.
    public var pingNotifier = DoorbellCounters()
    public var pingWaiter = DoorbellCounters()
    public var pongNotifier = DoorbellCounters()
    public var pongWaiter = DoorbellCounters()
    /// Why the run stopped early, if it did (a timeout, a doorbell error).
    public var failure: String?
    /// The CPUs the two threads were pinned to, if they were.
    public var cpus: (pinger: Int32, ponger: Int32)?

    /// All four ends' counters summed.
    public var total: DoorbellCounters { pingNotifier + pingWaiter + pongNotifier + pongWaiter }

    public var syscallsPerRoundTrip: Double {
        completed == 0 ? 0 : Double(total.syscalls) / Double(completed)
    }
}

public enum WakeupRoundTrip {
    /// The two CPUs a measurement pins to: 0 and 1 when the process may use two CPUs.
    public static var defaultCPUs: (Int32, Int32)? {
        cplatform_allowed_cpu_count() >= 2 ? (0, 1) : nil
    }

    /// Runs `warmup + iterations` round trips of `doorbell` between two threads.
    ///
    /// With `timeoutNanoseconds`, every wait is a timed wait and a round trip that takes
    /// longer stops the run with `failure` set instead of hanging (tests). Without it the
    /// waits are the plain blocking ones the figures should measure (benchmarks).
    public static func run<D: Doorbell>(
        _ doorbell: D.Type,
        configuration: D.Configuration,
        iterations: Int,
        warmup: Int = 0,
        timeoutNanoseconds: UInt64? = nil,
        cpus: (Int32, Int32)? = defaultCPUs,
        probe: DoorbellProbe = .current
    ) throws(DoorbellError) -> RoundTripReport {
        let (pingNotifier, pingWaiter) = try D.makePair(configuration, probe: probe)
        let (pongNotifier, pongWaiter) = try D.makePair(configuration, probe: probe)
        let run = Run<D>(total: warmup + iterations, warmup: warmup, timeout: timeoutNanoseconds,
                         ends: (pingNotifier, pingWaiter, pongNotifier, pongWaiter))
        let ponger = try PinnedThread(cpu: cpus?.1) { run.pong() }
        let pinger = try PinnedThread(cpu: cpus?.0) { run.ping() }
        pinger.join()
        ponger.join()
        var report = RoundTripReport(transport: D.transport(configuration), completed: run.completed,
                                     samplesNanoseconds: Array(run.samples.prefix(max(0, run.completed - warmup))))
        report.pingNotifier = run.pingNotifierCounters
        report.pingWaiter = run.pingWaiterCounters
        report.pongNotifier = run.pongNotifierCounters
        report.pongWaiter = run.pongWaiterCounters
        report.failure = run.failureSummary
        report.cpus = cpus.map { (pinger: $0.0, ponger: $0.1) }
        return report
    }

    /// The state the two threads share. Each thread takes its own two ends out before it
    /// starts and puts its counters back when it ends; only `stop` is touched by both
    /// while they run.
    final class Run<D: Doorbell>: @unchecked Sendable {
        let total: Int
        let warmup: Int
        let timeout: UInt64?
        let stop = ManagedAtomic<Bool>(false)
        var samples: [UInt64]
        var completed = 0
        var pingFailure: String?
        var pongFailure: String?
        var pingNotifierCounters = DoorbellCounters()
        var pingWaiterCounters = DoorbellCounters()
        var pongNotifierCounters = DoorbellCounters()
        var pongWaiterCounters = DoorbellCounters()
        private var pingEnds: (D.Notifier, D.Waiter)?
        private var pongEnds: (D.Waiter, D.Notifier)?

        init(total: Int, warmup: Int, timeout: UInt64?, ends: (D.Notifier, D.Waiter, D.Notifier, D.Waiter)) {
            self.total = total
            self.warmup = warmup
            self.timeout = timeout
            samples = [UInt64](repeating: 0, count: max(0, total - warmup))
            pingEnds = (ends.0, ends.3)
            pongEnds = (ends.1, ends.2)
        }

        /// Waits with or without the timeout; false means the peer did not answer in time.
        @inline(__always)
        func answered(_ waiter: inout D.Waiter) throws(DoorbellError) -> Bool {
            if let timeout { return try waiter.wait(timeoutNanoseconds: timeout) }
            try waiter.wait()
            return true
        }

        func ping() {
            guard var (notifier, waiter) = pingEnds else { return }
            pingEnds = nil
            var done = 0
            do throws(DoorbellError) {
                try samples.withUnsafeMutableBufferPointer { (samples) throws(DoorbellError) in
                    for i in 0..<total {
                        if stop.load(ordering: .relaxed) { break }
                        let start = cplatform_monotonic_ns()
                        try notifier.notify()
                        guard try answered(&waiter) else {
                            pingFailure = "no pong for round trip \(i) within \(Double(timeout ?? 0) / 1e9) s"
                            break
                        }
                        let end = cplatform_monotonic_ns()
                        if i >= warmup { samples[i - warmup] = end &- start }
                        done = i + 1
                    }
                }
            } catch {
                pingFailure = "pinger: \(error)"
            }
            if pingFailure != nil {
                // Wake the ponger so it sees `stop` instead of waiting out its timeout.
                stop.store(true, ordering: .sequentiallyConsistent)
                try? notifier.notify()
            }
            completed = done
            pingNotifierCounters = notifier.counters
            pingWaiterCounters = waiter.counters
        }

        func pong() {
            guard var (waiter, notifier) = pongEnds else { return }
            pongEnds = nil
            do throws(DoorbellError) {
                for i in 0..<total {
                    guard try answered(&waiter) else {
                        pongFailure = "no ping for round trip \(i) within \(Double(timeout ?? 0) / 1e9) s"
                        break
                    }
                    if stop.load(ordering: .relaxed) { break }
                    try notifier.notify()
                }
            } catch {
                pongFailure = "ponger: \(error)"
            }
            if pongFailure != nil {
                stop.store(true, ordering: .sequentiallyConsistent)
                try? notifier.notify()
            }
            pongNotifierCounters = notifier.counters
            pongWaiterCounters = waiter.counters
        }

        /// Both threads' failures, once both are joined.
        var failureSummary: String? {
            switch (pingFailure, pongFailure) {
            case (nil, nil): return nil
            case let (ping?, nil): return ping
            case let (nil, pong?): return pong
            case let (ping?, pong?): return ping + "; " + pong
            }
        }
    }
}

extension WakeupRoundTrip {
    /// Runs the round trip of `transport` with its default configuration (an allocated
    /// word; for hybrids, `hybridSpinNanoseconds` of spinning before the inner transport
    /// sleeps). The one place a transport name becomes a type, so callers stay generic-free
    /// while every loop is still specialised.
    public static func run(
        _ transport: DoorbellTransport,
        iterations: Int,
        warmup: Int = 0,
        timeoutNanoseconds: UInt64? = nil,
        hybridSpinNanoseconds: UInt64 = 20_000,
        cpus: (Int32, Int32)? = defaultCPUs,
        probe: DoorbellProbe = .current
    ) throws(DoorbellError) -> RoundTripReport {
        func measure<D: Doorbell>(_ type: D.Type, _ configuration: D.Configuration) throws(DoorbellError) -> RoundTripReport {
            try run(type, configuration: configuration, iterations: iterations, warmup: warmup,
                    timeoutNanoseconds: timeoutNanoseconds, cpus: cpus, probe: probe)
        }
        let spin = hybridSpinNanoseconds
        switch transport {
        case .busyPoll: return try measure(BusyPollDoorbell.self, .allocated)
        case .eventfd: return try measure(EventfdDoorbell.self, ())
        case .ioUringEventfd: return try measure(IoUringEventfdDoorbell.self, ())
        case .ioUringMsgRing: return try measure(IoUringMsgRingDoorbell.self, ())
        case .ioUringMsgRingBusyPoll: return try measure(IoUringMsgRingBusyPollDoorbell.self, ())
        case .futex: return try measure(FutexDoorbell.self, FutexConfiguration())
        case .ioUringFutex: return try measure(IoUringFutexDoorbell.self, FutexConfiguration())
        case .hybrid(.eventfd):
            return try measure(HybridDoorbell<EventfdDoorbell>.self, .init(spinNanoseconds: spin))
        case .hybrid(.ioUringEventfd):
            return try measure(HybridDoorbell<IoUringEventfdDoorbell>.self, .init(spinNanoseconds: spin))
        case .hybrid(.ioUringMsgRing):
            return try measure(HybridDoorbell<IoUringMsgRingDoorbell>.self, .init(spinNanoseconds: spin))
        case .hybrid(.futex):
            return try measure(HybridDoorbell<FutexDoorbell>.self, .init(spinNanoseconds: spin, inner: FutexConfiguration()))
        case .hybrid(.ioUringFutex):
            return try measure(HybridDoorbell<IoUringFutexDoorbell>.self,
                               .init(spinNanoseconds: spin, inner: FutexConfiguration()))
        case let .hybrid(inner):
            throw .hybridNeedsBlockingInner(inner: inner)
        }
    }
}
