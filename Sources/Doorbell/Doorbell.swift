// The doorbell contract: a kick (driver → device) or an interrupt/call (device → driver)
// carried by one transport. Sits above Virtqueue and below Mediation (DESIGN.md); ring code
// is generic over these protocols and specialised at compile time.

/// One notification transport. A doorbell has two ends, made together by the
/// transport's `makePair`: the ``Notifier`` is owned by the thread that rings, the
/// ``Waiter`` by the thread that sleeps. Each end is a struct its thread holds and
/// mutates alone (its counters included), so nothing mutable is shared between the two
/// threads except what the transport itself shares on purpose (a word, an fd, a ring).
///
/// Generic code names an end (`<N: DoorbellNotifier>`, `some DoorbellWaiter`), never an
/// existential, so every `notify`/`wait` is a direct, inlinable call.
public protocol Doorbell: SendableMetatype {
    associatedtype Notifier: DoorbellNotifier
    associatedtype Waiter: DoorbellWaiter
    /// What ``makePair(_:probe:)`` needs besides the probe (a futex word's placement,
    /// a spin budget); `Void`-like for most transports.
    associatedtype Configuration

    /// The transport's name in reports and scenario ids.
    static func transport(_ configuration: Configuration) -> DoorbellTransport

    /// Makes the two ends. Throws ``DoorbellError/transportUnavailable(transport:missing:reason:)``
    /// when `probe` says this machine lacks what the transport needs.
    static func makePair(_ configuration: Configuration, probe: DoorbellProbe)
        throws(DoorbellError) -> (Notifier, Waiter)
}

/// The ringing end. Owned by exactly one thread from its first `notify` on.
public protocol DoorbellNotifier: SendableMetatype {
    /// Rings the doorbell once. Never blocks on the peer. A notification sent while the
    /// waiter is awake is not lost: the waiter's next `wait` returns at once.
    mutating func notify() throws(DoorbellError)

    /// Records that the caller's event-suppression check decided no notification was
    /// needed ("should I notify?" lives in ring code, STYLE.md); counted, nothing sent.
    mutating func recordSuppressed()

    var counters: DoorbellCounters { get }
}

/// The sleeping end. Owned by exactly one thread from its first `wait` on: io_uring
/// requests it arms belong to that thread's task and the kernel cancels them when the
/// thread exits (see ``DoorbellError/armedRequestCancelled(transport:operation:)``).
public protocol DoorbellWaiter: SendableMetatype {
    /// Returns once at least one notification arrived since the previous `wait`
    /// returned (notifications coalesce: several rings may end one wait).
    mutating func wait() throws(DoorbellError)

    /// As ``wait()``, but gives up after `timeoutNanoseconds`: returns `false` on timeout.
    mutating func wait(timeoutNanoseconds: UInt64) throws(DoorbellError) -> Bool

    /// Records a wakeup that found nothing to do (the sleep protocol re-checked its
    /// condition and it was still false): a stale notification, not an error.
    mutating func recordSpuriousWakeup()

    var counters: DoorbellCounters { get }
}

/// What one end did. A notifier fills `notificationsSent`, `notificationsSuppressed`
/// and `syscalls`; a waiter fills the rest and `syscalls`. Each end owns its counters
/// (plain integers in its own struct), so counting costs no shared cache line.
public struct DoorbellCounters: Equatable, Sendable, Codable {
    /// Rings that reached the transport.
    public var notificationsSent: UInt64 = 0
    /// Rings the caller's event suppression decided to skip.
    public var notificationsSuppressed: UInt64 = 0
    /// Notifications the waiter consumed (an eventfd count, CQEs, a sequence delta).
    public var notificationsReceived: UInt64 = 0
    /// `wait` calls that returned because a notification arrived.
    public var wakeups: UInt64 = 0
    /// Wakeups that found nothing to do.
    public var spuriousWakeups: UInt64 = 0
    /// Timed waits that timed out.
    public var timeouts: UInt64 = 0
    /// System calls this end issued (write, read, futex, ppoll, io_uring_enter).
    public var syscalls: UInt64 = 0

    public init() {}

    /// The field-wise sum, for totals over both ends of one or more doorbells.
    public static func + (a: DoorbellCounters, b: DoorbellCounters) -> DoorbellCounters {
        var sum = DoorbellCounters()
        sum.notificationsSent = a.notificationsSent &+ b.notificationsSent
        sum.notificationsSuppressed = a.notificationsSuppressed &+ b.notificationsSuppressed
        sum.notificationsReceived = a.notificationsReceived &+ b.notificationsReceived
        sum.wakeups = a.wakeups &+ b.wakeups
        sum.spuriousWakeups = a.spuriousWakeups &+ b.spuriousWakeups
        sum.timeouts = a.timeouts &+ b.timeouts
        sum.syscalls = a.syscalls &+ b.syscalls
        return sum
    }
}

/// A transport's name, as it appears in scenario ids and results
/// (`split/io_uring-msgring/...`, `calibration.wake_ns["eventfd"]`).
public indirect enum DoorbellTransport: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The waiter spins on a word in shared memory; no system call on either side.
    case busyPoll
    /// `write(2)` to kick, blocking `read(2)` to wait.
    case eventfd
    /// The waiter keeps an `IORING_OP_READ` on an eventfd armed and waits on its CQ;
    /// the notifier kicks with `write(2)`.
    case ioUringEventfd
    /// The notifier posts `IORING_OP_MSG_RING` into the waiter's ring; the waiter blocks
    /// in `io_uring_enter`.
    case ioUringMsgRing
    /// As ``ioUringMsgRing``, but the waiter busy-polls its CQ without a system call.
    case ioUringMsgRingBusyPoll
    /// `FUTEX_WAKE` / `FUTEX_WAIT` on a 32-bit word (which may live in ring memory).
    case futex
    /// `IORING_OP_FUTEX_WAKE` / `IORING_OP_FUTEX_WAIT` on a 32-bit word.
    case ioUringFutex
    /// Spin for a bounded time, then sleep on the inner transport.
    case hybrid(DoorbellTransport)

    /// Every transport this module has, with hybrid over the main blocking ones. eventfd
    /// comes first among the blocking ones: reports compare the others with it.
    public static let all: [DoorbellTransport] = [
        .eventfd, .busyPoll, .ioUringEventfd, .ioUringMsgRing, .ioUringMsgRingBusyPoll,
        .futex, .ioUringFutex, .hybrid(.eventfd), .hybrid(.futex), .hybrid(.ioUringMsgRing),
    ]

    public var id: String {
        switch self {
        case .busyPoll: return "busy-poll"
        case .eventfd: return "eventfd"
        case .ioUringEventfd: return "io_uring-eventfd"
        case .ioUringMsgRing: return "io_uring-msgring"
        case .ioUringMsgRingBusyPoll: return "io_uring-msgring-busy"
        case .futex: return "futex"
        case .ioUringFutex: return "io_uring-futex"
        case let .hybrid(inner): return "hybrid-" + inner.id
        }
    }

    public init?(id: String) {
        if id.hasPrefix("hybrid-") {
            guard let inner = DoorbellTransport(id: String(id.dropFirst("hybrid-".count))) else { return nil }
            self = .hybrid(inner)
            return
        }
        switch id {
        case "busy-poll": self = .busyPoll
        case "eventfd": self = .eventfd
        case "io_uring-eventfd": self = .ioUringEventfd
        case "io_uring-msgring": self = .ioUringMsgRing
        case "io_uring-msgring-busy": self = .ioUringMsgRingBusyPoll
        case "futex": self = .futex
        case "io_uring-futex": self = .ioUringFutex
        default: return nil
        }
    }

    /// Whether the waiter sleeps in the kernel (as opposed to spinning on a CPU).
    public var blocks: Bool {
        switch self {
        case .busyPoll, .ioUringMsgRingBusyPoll: return false
        default: return true
        }
    }

    public var description: String { id }

    public init(from decoder: any Decoder) throws {
        let id = try decoder.singleValueContainer().decode(String.self)
        guard let transport = DoorbellTransport(id: id) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "unknown doorbell transport '\(id)'"))
        }
        self = transport
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(id)
    }
}
