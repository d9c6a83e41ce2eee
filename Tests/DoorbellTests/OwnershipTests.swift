// Ownership and teardown: a futex word may live in caller memory (ring memory) and must be
// aligned; an io_uring waiter's armed request belongs to the thread that armed it, and a
// pair torn down with a request armed cancels it first.

import Doorbell
import Glibc
import Testing

extension DoorbellSuites {
    struct OwnershipTests {
        @Test func aFutexWordInCallerMemoryIsBumpedInPlace() throws {
            let memory = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
            defer { memory.deallocate() }
            memory.storeBytes(of: UInt32(41), toByteOffset: 8, as: UInt32.self)
            var (notifier, waiter) = try FutexDoorbell.makePair(.init(word: .callerProvided(memory + 8)))
            try notifier.notify()
            #expect(memory.load(fromByteOffset: 8, as: UInt32.self) == 42)
            // The word moved, so the wait returns without sleeping.
            #expect(try waiter.wait(timeoutNanoseconds: generousTimeout))
            #expect(waiter.counters.notificationsReceived == 1)
        }

        @Test func aMisalignedFutexWordIsRefused() throws {
            let memory = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
            defer { memory.deallocate() }
            #expect(throws: DoorbellError.futexWordMisaligned(address: UInt(bitPattern: memory + 2))) {
                _ = try FutexDoorbell.makePair(.init(word: .callerProvided(memory + 2)))
            }
        }

        @Test func aTimedWaitThatExpiresReportsFalseAndCountsIt() throws {
            for transport in [DoorbellTransport.eventfd, .futex, .ioUringEventfd, .ioUringMsgRing, .ioUringFutex]
            where DoorbellProbe.current.unavailability(of: transport) == nil {
                let counters: DoorbellCounters
                switch transport {
                case .eventfd: counters = try expireOnce(EventfdDoorbell.self, ())
                case .futex: counters = try expireOnce(FutexDoorbell.self, FutexConfiguration())
                case .ioUringEventfd: counters = try expireOnce(IoUringEventfdDoorbell.self, ())
                case .ioUringMsgRing: counters = try expireOnce(IoUringMsgRingDoorbell.self, ())
                default: counters = try expireOnce(IoUringFutexDoorbell.self, FutexConfiguration())
                }
                #expect(counters.timeouts == 1, "\(transport)")
                // The ring sent after the timeout is still delivered.
                #expect(counters.wakeups == 1 && counters.notificationsReceived == 1, "\(transport)")
            }
        }

        func expireOnce<D: Doorbell>(_ type: D.Type, _ configuration: D.Configuration) throws -> DoorbellCounters {
            var (notifier, waiter) = try D.makePair(configuration, probe: .current)
            #expect(try waiter.wait(timeoutNanoseconds: 1_000_000) == false)
            try notifier.notify()
            #expect(try waiter.wait(timeoutNanoseconds: generousTimeout))
            return waiter.counters
        }

        @Test func aReadArmedByAThreadThatExitedIsReportedCancelled() throws {
            try skipUnlessRunnable(.ioUringEventfd)
            let (notifierEnd, waiterEnd) = try IoUringEventfdDoorbell.makePair()
            let box = Handoff(waiterEnd)
            // The waiter arms its READ on a thread that then exits; the kernel cancels the
            // requests of an exiting task.
            let armer = try PinnedThread(cpu: nil) {
                var waiter = box.value.take()!
                _ = try? waiter.wait(timeoutNanoseconds: 1_000_000)
                box.value = waiter
            }
            armer.join()
            var waiter = try #require(box.value)
            var notifier = notifierEnd
            try notifier.notify()
            #expect(throws: DoorbellError.armedRequestCancelled(transport: .ioUringEventfd, operation: "IORING_OP_READ")) {
                _ = try waiter.wait(timeoutNanoseconds: generousTimeout)
            }
            // After the error the waiter re-arms from this thread and the pending ring arrives.
            #expect(try waiter.wait(timeoutNanoseconds: generousTimeout))
            #expect(waiter.counters.notificationsReceived == 1)
        }

        @Test func aPairDroppedWithRequestsArmedTearsDownCleanly() throws {
            for transport in [DoorbellTransport.ioUringEventfd, .ioUringFutex]
            where DoorbellProbe.current.unavailability(of: transport) == nil {
                // Arm (a timed wait that expires leaves the request in flight), then drop both ends.
                if transport == .ioUringEventfd {
                    var (_, waiter) = try IoUringEventfdDoorbell.makePair()
                    #expect(try waiter.wait(timeoutNanoseconds: 1_000_000) == false)
                } else {
                    var (_, waiter) = try IoUringFutexDoorbell.makePair()
                    #expect(try waiter.wait(timeoutNanoseconds: 1_000_000) == false)
                }
            }
            // The assertion is reaching here: the teardown cancelled each armed request and
            // waited for the cancel before freeing the buffer or word the request pointed at.
        }
    }
}
