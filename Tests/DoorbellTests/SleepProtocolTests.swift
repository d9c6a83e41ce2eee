// The sleep protocol step by step, on one thread: what `waitUntil` checks, publishes and
// counts when work is already there, and when a stale ring wakes it with nothing to do.

import Doorbell
import Testing

extension DoorbellSuites {
    struct SleepProtocolTests {
        @Test func workAlreadyThereIsTakenWithoutPublishingOrSleeping() throws {
            var (_, waiter) = try EventfdDoorbell.makePair()
            var enabled = 0
            let ready = try waitUntil({ true }, on: &waiter, timeoutNanoseconds: generousTimeout,
                                      enableNotifications: { enabled += 1 }, disableNotifications: {})
            #expect(ready)
            #expect(enabled == 0)
            #expect(waiter.counters.syscalls == 0)
        }

        @Test func workPublishedBeforeTheFenceIsSeenByTheRecheck() throws {
            var (_, waiter) = try EventfdDoorbell.makePair()
            var checks = 0, enabled = 0, disabled = 0
            // False before publishing, true on the re-check after the fence: no sleep.
            let ready = try waitUntil({ checks += 1; return checks >= 2 }, on: &waiter,
                                      timeoutNanoseconds: generousTimeout,
                                      enableNotifications: { enabled += 1 }, disableNotifications: { disabled += 1 })
            #expect(ready && checks == 2 && enabled == 1 && disabled == 1)
            #expect(waiter.counters.wakeups == 0 && waiter.counters.syscalls == 0)
        }

        @Test func aStaleRingIsCountedSpuriousAndTheWaiterSleepsAgain() throws {
            var (notifier, waiter) = try EventfdDoorbell.makePair()
            try notifier.notify()  // a ring for work the waiter already took
            var checks = 0, enabled = 0
            // check 1 (before), check 2 (re-check), stale wakeup, check 3 false → spurious,
            // publish again, check 4 (re-check) true.
            let ready = try waitUntil({ checks += 1; return checks >= 4 }, on: &waiter,
                                      timeoutNanoseconds: generousTimeout,
                                      enableNotifications: { enabled += 1 }, disableNotifications: {})
            #expect(ready && checks == 4 && enabled == 2)
            #expect(waiter.counters.wakeups == 1)
            #expect(waiter.counters.spuriousWakeups == 1)
        }

        @Test func aWaitThatTimesOutWithTheConditionFalseReturnsFalse() throws {
            var (_, waiter) = try FutexDoorbell.makePair()
            let ready = try waitUntil({ false }, on: &waiter, timeoutNanoseconds: 1_000_000,
                                      enableNotifications: {}, disableNotifications: {})
            #expect(!ready)
            #expect(waiter.counters.timeouts >= 1)
        }

        @Test func aSuppressedRingIsCountedAndSendsNothing() throws {
            var (notifier, waiter) = try EventfdDoorbell.makePair()
            try notifier.notify(if: false)
            #expect(notifier.counters.notificationsSuppressed == 1)
            #expect(notifier.counters.notificationsSent == 0 && notifier.counters.syscalls == 0)
            #expect(try waiter.wait(timeoutNanoseconds: 1_000_000) == false)
        }
    }
}
