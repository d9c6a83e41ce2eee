// Interrupts that do not bypass the mediator: the device raises the parent's vector and the
// parent's handler finds which queues are pending and rings each one's driver callback.
// mlx5's completion-queue callbacks (the CQ says which queue) and a shared vector (octeon,
// ifcvf when vectors run short: the handler scans every queue each time) are both this
// path; a bypass interrupt never comes here.
//
// The handler runs where the vector is raised, on the device thread, as an interrupt
// handler runs on the CPU the interrupt reaches: its scan, its pending-bit traffic and its
// extra rings are real code here; entering it (MSI-X delivery, the host's interrupt entry)
// is the parent's msix_interrupt_delivery_ns model parameter. A thread woken per interrupt
// would instead measure this VM's 12–80 µs wake-up, which no interrupt handler pays.

import Doorbell

/// How a parent's handler decides whom to ring.
public enum InterruptRouting: String, Sendable {
    /// The vector says which queue (a CQ per queue): ring that queue.
    case pendingQueues = "cq-callback"
    /// One vector for every queue: the handler does not know which, so it scans every
    /// queue's pending state and rings each queue it finds pending.
    case sharedVectorScan = "shared-vector"
}

/// What a handler did (read once its device thread has stopped).
public struct InterruptHandlerCounters: Sendable, Equatable {
    /// Times the vector was raised and the handler ran.
    public var vectorRaised: UInt64 = 0
    /// Queues it looked at (a shared vector's scan looks at every queue each time).
    public var queuesScanned: UInt64 = 0
    /// Driver callbacks it rang.
    public var callbacksRung: UInt64 = 0
}

/// One device's vector and its handler: the drivers' callbacks of every ready queue, a
/// pending bit per queue. Owned by the device thread while it runs.
@usableFromInline
final class InterruptHandler<N: DoorbellNotifier>: @unchecked Sendable {
    @usableFromInline let routing: InterruptRouting
    @usableFromInline var callbacks: [N?]
    @usableFromInline var pending: [Bool]
    @usableFromInline var counters = InterruptHandlerCounters()

    init(routing: InterruptRouting, callbacks: [N?]) {
        self.routing = routing
        self.callbacks = callbacks
        pending = Array(repeating: false, count: callbacks.count)
    }

    /// Queue `q` raised the vector: the handler runs.
    @inlinable
    func raise(_ q: Int) throws(DoorbellError) {
        counters.vectorRaised &+= 1
        pending[q] = true
        switch routing {
        case .pendingQueues:
            counters.queuesScanned &+= 1
            try deliver(q)
        case .sharedVectorScan:
            for i in callbacks.indices {
                counters.queuesScanned &+= 1
                try deliver(i)
            }
        }
    }

    @inlinable
    func deliver(_ q: Int) throws(DoorbellError) {
        guard pending[q] else { return }
        pending[q] = false
        guard callbacks[q] != nil else { return }
        try callbacks[q]!.notify()
        counters.callbacksRung &+= 1
    }
}

/// A queue's interrupt as the device loop rings it when the parent's handler is in the way.
public struct HandledCall<N: DoorbellNotifier>: DoorbellNotifier {
    @usableFromInline let handler: InterruptHandler<N>
    @usableFromInline let queue: Int
    @usableFromInline var tally = DoorbellCounters()
    public var counters: DoorbellCounters { tally }

    init(handler: InterruptHandler<N>, queue: Int) {
        self.handler = handler
        self.queue = queue
    }

    @inlinable
    public mutating func notify() throws(DoorbellError) {
        tally.notificationsSent &+= 1
        try handler.raise(queue)
    }

    public mutating func recordSuppressed() { tally.notificationsSuppressed &+= 1 }
}

/// Where a stopped handler's counters go.
public final class InterruptHandlerTally: @unchecked Sendable {
    public internal(set) var counters = InterruptHandlerCounters()
    public init() {}
    func add(_ c: InterruptHandlerCounters) {
        counters.vectorRaised &+= c.vectorRaised
        counters.queuesScanned &+= c.queuesScanned
        counters.callbacksRung &+= c.callbacksRung
    }
}
