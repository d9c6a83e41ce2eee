// A device's firmware as the parents that talk to one see it (mlx5's command interface,
// pds's admin queue, octeon's register emulation, snet's config handshake): a command queue
// served by a firmware thread of its own. The hand-over (post, wake the firmware, its
// answer, wake the caller) and the work each command does (create, modify, query a queue
// object; an mkey table; a config blob) are real code here. How long the firmware itself
// takes per command is not knowable here: it is the parent's named, sourced model
// parameter, accounted beside the measured time (never slept, never added to it).

import CPlatform
import Doorbell
import Glibc

/// What a command answers.
public enum FirmwareReply: Sendable, Equatable {
    case done
    case value(UInt64)
}

/// One command: its name (as the vendor's interface spells it) and the work the firmware does.
public struct FirmwareCommand: Sendable {
    public var name: String
    public var work: @Sendable () throws(MediationError) -> FirmwareReply
    public init(_ name: String, _ work: @escaping @Sendable () throws(MediationError) -> FirmwareReply = { .done }) {
        self.name = name
        self.work = work
    }
}

/// What a channel did, for tests and reports.
public struct FirmwareCounters: Sendable, Equatable {
    /// Commands the firmware completed, by name.
    public var served: [String: Int] = [:]
    /// The most commands posted and not yet answered at one time (1: strictly serial).
    public var maxInFlight = 0
    /// Commands that timed out.
    public var timeouts = 0
    /// The firmware's modelled service time along the caller's critical path (model
    /// parameter × commands, parallel batches counted once per `parallelism` commands).
    public var modelledNanoseconds: Double = 0
    public var total: Int { served.values.reduce(0, +) }
}

/// A command queue and the firmware thread that serves it in order.
public final class FirmwareChannel: @unchecked Sendable {
    public let parent: String
    /// Modelled firmware service time per command.
    public let serviceTime: ModelParameter
    /// Commands the firmware works on at once (parallel batches; 1 for a serial firmware).
    public let parallelism: Int
    /// How long a caller waits for an answer before the command is a timeout.
    public let timeoutNanoseconds: UInt64

    private let state: State

    /// `cpu`: where the firmware thread runs (the device's CPU: firmware is the device's side).
    public init(parent: String, serviceTime: ModelParameter, parallelism: Int = 1,
                timeoutNanoseconds: UInt64 = 1_000_000_000, cpu: Int32? = nil) throws(MediationError) {
        self.parent = parent
        self.serviceTime = serviceTime
        self.parallelism = max(1, parallelism)
        self.timeoutNanoseconds = timeoutNanoseconds
        state = State()
        let s = state
        do {
            s.thread = try PinnedThread(cpu: cpu, name: "fw:" + String(parent.prefix(12))) { s.serve() }
        } catch {
            throw .doorbell(error)
        }
    }

    deinit { state.shutDown() }

    /// Runs one command and waits for its answer (a serial issue: one in flight).
    public func execute(_ command: FirmwareCommand) throws(MediationError) -> FirmwareReply {
        try executeAll([command])[0]
    }

    /// Posts every command, then waits for all their answers (mlx5's parallel issue with
    /// completion callbacks): the firmware sees them all in flight at once. The first
    /// failure is thrown after every answer (or timeout) is in.
    @discardableResult
    public func executeAll(_ commands: [FirmwareCommand]) throws(MediationError) -> [FirmwareReply] {
        guard !commands.isEmpty else { return [] }
        let slots = state.post(commands)
        let deadline = cplatform_monotonic_ns() &+ timeoutNanoseconds
        var replies: [FirmwareReply] = []
        var failure: MediationError?
        var timedOut = 0
        for (i, slot) in slots.enumerated() {
            switch state.wait(slot, until: deadline) {
            case let .some(.success(r)): replies.append(r)
            case let .some(.failure(e)):
                failure = failure ?? e
                replies.append(.done)
            case .none:
                timedOut += 1
                failure = failure ?? .firmwareTimeout(command: commands[i].name, parent: parent, nanoseconds: timeoutNanoseconds)
                replies.append(.done)
            }
        }
        state.account(commands.count, service: serviceTime.value, parallelism: parallelism, timedOut: timedOut)
        if let failure { throw failure }
        return replies
    }

    /// A command posted without waiting (a register write whose acknowledgement the caller
    /// polls for itself).
    public struct Ticket: @unchecked Sendable {
        let slot: Slot
    }

    public func post(_ command: FirmwareCommand) -> Ticket { Ticket(slot: state.post([command])[0]) }

    /// The ticket's answer once the firmware gave it (nil: not yet). Call until non-nil, then
    /// ``finish(_:timedOut:)`` once.
    public func poll(_ ticket: Ticket) -> Result<FirmwareReply, MediationError>? {
        state.withLock { _ in ticket.slot.result }
    }

    /// Accounts a posted command that was answered (or given up on).
    public func finish(_ ticket: Ticket, timedOut: Bool) {
        state.account(1, service: serviceTime.value, parallelism: 1, timedOut: timedOut ? 1 : 0)
    }

    /// As ``executeAll(_:)``, for a device whose firmware failing (a timeout, a refusal)
    /// leaves it needing a reset, as virtio's NEEDS_RESET says.
    @discardableResult
    public func executeAll(_ commands: [FirmwareCommand], failing core: VDPADeviceCore) throws(MediationError) -> [FirmwareReply] {
        do throws(MediationError) {
            return try executeAll(commands)
        } catch {
            core.withState { $0.machine.deviceNeedsReset() }
            throw error
        }
    }

    public var counters: FirmwareCounters { state.withLock { $0.counters } }

    /// Fault injection: the firmware never answers the next command named `name` (the
    /// caller sees a timeout; the command's work is not done).
    public func dropNext(_ name: String) { state.withLock { $0.drop.insert(name) } }

    /// A device reset: commands still queued are abandoned (an injected fault stays armed
    /// until the command it names comes).
    public func reset() {
        state.withLock { s in
            for slot in s.queue { slot.result = .failure(.firmwareReset(parent: parent)) }
            s.queue.removeAll()
        }
        state.broadcast()
    }

    // MARK: - The queue and the firmware thread

    final class Slot: @unchecked Sendable {
        let command: FirmwareCommand
        var result: Result<FirmwareReply, MediationError>?
        init(_ c: FirmwareCommand) { command = c }
    }

    struct Queue {
        var queue: [Slot] = []
        var inFlight = 0
        var drop: Set<String> = []
        var counters = FirmwareCounters()
        var stopping = false
    }

    final class State: @unchecked Sendable {
        private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        private var q = Queue()
        var thread: PinnedThread?

        init() {
            pthread_mutex_init(mutex, nil)
            var attr = pthread_condattr_t()
            pthread_condattr_init(&attr)
            pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
            pthread_cond_init(cond, &attr)
            pthread_condattr_destroy(&attr)
        }

        deinit {
            pthread_cond_destroy(cond)
            pthread_mutex_destroy(mutex)
            cond.deallocate()
            mutex.deallocate()
        }

        @discardableResult
        func withLock<T>(_ body: (inout Queue) -> T) -> T {
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            return body(&q)
        }

        func broadcast() { pthread_cond_broadcast(cond) }

        func post(_ commands: [FirmwareCommand]) -> [Slot] {
            let slots = commands.map(Slot.init)
            withLock { s in
                s.queue += slots
                s.inFlight += slots.count
                s.counters.maxInFlight = max(s.counters.maxInFlight, s.inFlight)
            }
            broadcast()
            return slots
        }

        /// The slot's answer, or nil at the deadline.
        func wait(_ slot: Slot, until deadline: UInt64) -> Result<FirmwareReply, MediationError>? {
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            while slot.result == nil {
                let now = cplatform_monotonic_ns()
                if now >= deadline { return nil }
                var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
                _ = pthread_cond_timedwait(cond, mutex, &ts)
            }
            return slot.result
        }

        func account(_ n: Int, service: Double, parallelism: Int, timedOut: Int) {
            withLock { s in
                s.inFlight -= n
                s.counters.modelledNanoseconds += service * Double((n + parallelism - 1) / parallelism)
                s.counters.timeouts += timedOut
            }
        }

        /// The firmware thread: serves commands in order until shut down.
        func serve() {
            pthread_mutex_lock(mutex)
            while true {
                while q.queue.isEmpty && !q.stopping { pthread_cond_wait(cond, mutex) }
                if q.stopping { break }
                let slot = q.queue.removeFirst()
                if q.drop.remove(slot.command.name) != nil { continue }
                pthread_mutex_unlock(mutex)
                let result: Result<FirmwareReply, MediationError>
                do throws(MediationError) { result = .success(try slot.command.work()) } catch { result = .failure(error) }
                pthread_mutex_lock(mutex)
                slot.result = result
                q.counters.served[slot.command.name, default: 0] += 1
                pthread_cond_broadcast(cond)
            }
            pthread_mutex_unlock(mutex)
        }

        func shutDown() {
            withLock { $0.stopping = true }
            broadcast()
            thread?.join()
            thread = nil
        }
    }
}
