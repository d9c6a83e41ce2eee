// The eventfd with a wait queue: a write runs the registered entry on the writer's thread,
// once per write, and nobody reads the counter; removing the entry waits for a writer still
// inside it; fget finds the open eventfd behind a number and refuses what it cannot poll.

import Atomics
import CPlatform
import Doorbell
import Glibc
import Testing

/// Counts its wake-ups and the threads that ran them.
final class CountingEntry: WakeupEventfd.WaitEntry, @unchecked Sendable {
    let wakeups = ManagedAtomic<Int>(0)
    let lastThread = ManagedAtomic<Int32>(0)
    override func wakeup() {
        wakeups.wrappingIncrement(ordering: .relaxed)
        lastThread.store(cplatform_gettid(), ordering: .relaxed)
    }
}

/// Stays inside its wake-up until told to leave, stamping when it left.
final class LingeringEntry: WakeupEventfd.WaitEntry, @unchecked Sendable {
    let entered = ManagedAtomic<Bool>(false)
    let leave = ManagedAtomic<Bool>(false)
    let clock: ManagedAtomic<Int>
    let leftAt = ManagedAtomic<Int>(0)
    init(clock: ManagedAtomic<Int>) { self.clock = clock }
    override func wakeup() {
        entered.store(true, ordering: .releasing)
        while !leave.load(ordering: .acquiring) { cplatform_cpu_relax() }
        leftAt.store(clock.wrappingIncrementThenLoad(ordering: .sequentiallyConsistent), ordering: .relaxed)
    }
}

final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ v: T) { value = v }
}

extension DoorbellSuites {
    struct WakeupEventfdTests {
        @Test func eachWriteRunsTheEntryOnceOnTheWritersThreadAndLeavesTheCounterUnread() throws {
            let notifier = try WakeupEventfd.make()
            let file = try WakeupEventfd.fget(notifier.fd)
            let entry = CountingEntry()
            try file.add(entry)
            let writer = Box((notifier.anotherWriter(), Int32(0), String?.none))
            let thread = try PinnedThread(cpu: nil) {
                writer.value.1 = cplatform_gettid()
                do {
                    for _ in 0..<1000 { try writer.value.0.notify() }
                } catch {
                    writer.value.2 = "\(error)"
                }
            }
            thread.join()
            #expect(writer.value.2 == nil)
            #expect(entry.wakeups.load(ordering: .relaxed) == 1000)
            #expect(entry.lastThread.load(ordering: .relaxed) == writer.value.1)
            #expect(writer.value.0.counters.notificationsSent == 1000)
            #expect(writer.value.0.counters.syscalls == 1000, "one write(2) per notify, nothing else")
            #expect(file.isReadable)
            var count: UInt64 = 0
            #expect(read(notifier.fd, &count, 8) == 8)
            #expect(count == 1000, "no one read the counter")
            file.remove(entry)
            var n = notifier.anotherWriter()
            try n.notify()
            #expect(entry.wakeups.load(ordering: .relaxed) == 1000, "a removed entry is not woken")
        }

        @Test func removeReturnsOnlyAfterAWriterInsideTheWakeupLeft() throws {
            try skipUnlessRunnable(.busyPoll)
            let notifier = try WakeupEventfd.make()
            let file = try WakeupEventfd.fget(notifier.fd)
            let clock = ManagedAtomic<Int>(0)
            let entry = LingeringEntry(clock: clock)
            try file.add(entry)
            let writer = Box(notifier.anotherWriter())
            let writing = try PinnedThread(cpu: 0) { _ = try? writer.value.notify() }
            while !entry.entered.load(ordering: .acquiring) { cplatform_cpu_relax() }
            let removedAt = ManagedAtomic<Int>(0)
            let removing = try PinnedThread(cpu: 1) {
                file.remove(entry)
                removedAt.store(clock.wrappingIncrementThenLoad(ordering: .sequentiallyConsistent), ordering: .relaxed)
            }
            // Give a remove that does not wait every chance to return first.
            usleep(20_000)
            entry.leave.store(true, ordering: .releasing)
            writing.join()
            removing.join()
            #expect(entry.leftAt.load(ordering: .relaxed) == 1, "the wake-up left first")
            #expect(removedAt.load(ordering: .relaxed) == 2, "remove returned after it")
        }

        @Test func fgetFindsTheOpenEventfdAndTheWaitQueueHoldsOneEntry() throws {
            let notifier = try WakeupEventfd.make()
            let a = try WakeupEventfd.fget(notifier.fd)
            let b = try WakeupEventfd.fget(notifier.fd)
            #expect(a.isSame(as: b) && a.fd == notifier.fd)
            #expect(!a.isReadable, "a fresh eventfd is not readable")
            let first = CountingEntry()
            try a.add(first)
            #expect(throws: DoorbellError.eventfdAlreadyPolled(fd: notifier.fd)) { try b.add(CountingEntry()) }
            a.remove(first)
            try b.add(CountingEntry())
            let plain = cplatform_eventfd(0)
            defer { close(plain) }
            #expect(throws: DoorbellError.eventfdWithoutWaitQueue(fd: plain)) { _ = try WakeupEventfd.fget(plain) }
            #expect(throws: DoorbellError.descriptorNotOpen(fd: -1)) { _ = try WakeupEventfd.fget(-1) }
        }
    }
}
