// An eventfd with a wait queue: whoever signals it also runs the wake-up callback registered
// on it, in its own context, as the kernel's eventfd_signal wakes the eventfd's wait queue
// (vhost_poll_wakeup on a vhost kick fd). Sits in the Doorbell layer beside the plain
// eventfd; Mediation's vhost binding polls kick fds with it.

import Atomics
import CPlatform
import Glibc

/// An eventfd whose notifier, after its `write(2)`, runs the one ``WakeupEventfd/WaitEntry``
/// registered on the eventfd, inline, on the notifier's thread: no thread sleeps on it and
/// nobody reads its counter (a poller only needs "readable"). This is what a vhost device
/// without a worker (vhost-vdpa) gets from the kernel: the write that signals a kick fd
/// runs `handle_vq_kick` → `kick_vq` before it returns.
///
/// The descriptor is a real eventfd: its number travels in messages (`VHOST_SET_VRING_KICK`)
/// and ``fget(_:)`` finds the open eventfd behind a number, as eventfd_fget does. A writer
/// that bypasses the notifier (a raw `write(2)` on the number) reaches the counter but not
/// the wait queue — the one thing a userspace wait queue cannot see.
public enum WakeupEventfd {
    /// A fresh eventfd (counter mode, blocking, close-on-exec) and the first writer's end.
    public static func make(probe: DoorbellProbe = .current) throws(DoorbellError) -> Notifier {
        try probe.check(.eventfd)
        return Notifier(file: try EventfdFile())
    }

    /// The open eventfd behind `fd` (eventfd_fget): a closed number, a descriptor that is
    /// not an eventfd, or an eventfd made outside this type (its writers run no wait queue)
    /// is a typed error naming the number.
    public static func fget(_ fd: Int32) throws(DoorbellError) -> File {
        if let file = EventfdFile.table.lookup(fd) { return File(file) }
        guard fd >= 0, fcntl(fd, F_GETFD) >= 0 else { throw .descriptorNotOpen(fd: fd) }
        let kind = descriptorKind(fd)
        if kind == "anon_inode:[eventfd]" { throw .eventfdWithoutWaitQueue(fd: fd) }
        throw .notAnEventfd(fd: fd, kind: kind)
    }

    /// A writer of the eventfd. Each writer is owned by one thread; several writers (on
    /// several threads) may signal one eventfd, and each runs the wait entry itself.
    public struct Notifier: DoorbellNotifier {
        @usableFromInline let file: EventfdFile
        @usableFromInline let descriptor: Int32
        @usableFromInline var tally = DoorbellCounters()
        public var counters: DoorbellCounters { tally }

        init(file: EventfdFile) {
            self.file = file
            descriptor = file.fd
        }

        /// The eventfd's number, to hand to whoever will poll it.
        public var fd: Int32 { descriptor }

        /// `write(2)` of 1, then the registered wake-up, if any, on this thread.
        @inlinable
        public mutating func notify() throws(DoorbellError) {
            try eventfdSignal(descriptor, syscalls: &tally.syscalls)
            tally.notificationsSent &+= 1
            file.wakeUpWaitQueue()
        }

        public mutating func recordSuppressed() { tally.notificationsSuppressed &+= 1 }

        /// Another writer of the same eventfd (for another thread).
        public func anotherWriter() -> Notifier { Notifier(file: file) }
    }

    /// A wake-up callback on an eventfd's wait queue (a wait_queue_entry). Subclasses
    /// override ``wakeup()``; it runs on the signalling writer's thread, possibly on
    /// several threads at once, and must not block or add and remove wait entries.
    open class WaitEntry: @unchecked Sendable {
        public init() {}
        open func wakeup() {}
    }

    /// A reference to an open eventfd (what eventfd_fget returns): keeps the descriptor
    /// open while held, whoever else closes their end.
    public struct File: @unchecked Sendable {
        let file: EventfdFile
        init(_ file: EventfdFile) { self.file = file }

        public var fd: Int32 { file.fd }

        /// Whether two references name the same open eventfd.
        public func isSame(as other: File) -> Bool { file === other.file }

        /// Whether the eventfd is readable now (its counter is non-zero): a `ppoll(2)` with
        /// a zero timeout, the vfs_poll a poller does when it starts.
        public var isReadable: Bool { cplatform_wait_readable(file.fd, 0) == 1 }

        /// Adds `entry` to the wait queue (add_wait_queue); from the next signal on, every
        /// writer runs it. The queue holds one entry.
        public func add(_ entry: WaitEntry) throws(DoorbellError) { try file.add(entry) }

        /// Removes `entry` (remove_wait_queue) and returns once no writer is still running
        /// it, so the caller may release whatever the entry reaches.
        public func remove(_ entry: WaitEntry) { file.remove(entry) }
    }

    /// What the kernel says an fd is (`/proc/self/fd/N`'s link, e.g. "anon_inode:[eventfd]").
    static func descriptorKind(_ fd: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
        guard n > 0 else { return "unknown (readlink: \(errnoName(errno)))" }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// The open eventfd and its wait queue of one entry. The queue is two words on a cache
/// line of their own: the registered entry (an `Unmanaged` retained by the queue, 0 when
/// empty) and the number of writers inside a wake-up right now, which lets `remove` wait
/// for them without a lock on the writers' path (the kernel holds the wait queue's
/// spinlock here instead).
@usableFromInline
final class EventfdFile: @unchecked Sendable {
    @usableFromInline let fd: Int32
    @usableFromInline let line: UnsafeMutableRawPointer

    /// The process's open wake-up eventfds by number (the simulated file table fget reads).
    static let table = FileTable()

    init() throws(DoorbellError) {
        let fd = cplatform_eventfd(0)
        guard fd >= 0 else { throw .systemCall(name: "eventfd", errno: errno) }
        self.fd = fd
        line = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128)
        line.initializeMemory(as: UInt8.self, repeating: 0, count: 128)
        Self.table.insert(self)
    }

    deinit {
        // Out of the table before the number is closed, so fget never finds a number that
        // the kernel may already have given to someone else.
        Self.table.remove(fd)
        // acquire: pairs with add's release; no writer is left (they held a reference).
        if let raw = entry.load(ordering: .acquiring) {
            Unmanaged<WakeupEventfd.WaitEntry>.fromOpaque(raw).release()
        }
        close(fd)
        line.deallocate()
    }

    @inlinable
    var entry: UnsafeAtomic<UnsafeRawPointer?> {
        UnsafeAtomic(at: line.assumingMemoryBound(to: UnsafeRawPointer?.AtomicRepresentation.self))
    }

    @inlinable
    var inWakeup: UnsafeAtomic<Int> {
        UnsafeAtomic(at: (line + 64).assumingMemoryBound(to: Int.AtomicRepresentation.self))
    }

    /// The writer's side of the wait queue, after its write(2): no entry, nothing more
    /// (one load); else enter, run the entry, leave.
    @inlinable
    func wakeUpWaitQueue() {
        // relaxed: only a hint to skip the queue; the sequentially consistent load below
        // decides whether an entry is run.
        if entry.load(ordering: .relaxed) == nil { return }
        // seq_cst: pairs with remove's seq_cst store of nil then load of this count (Dekker):
        // either this load sees nil, or remove sees this writer inside and waits for it.
        inWakeup.wrappingIncrement(ordering: .sequentiallyConsistent)
        if let raw = entry.load(ordering: .sequentiallyConsistent) {
            // The queue holds a retain on the entry until remove has waited for this writer.
            Unmanaged<WakeupEventfd.WaitEntry>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.wakeup() }
        }
        // release: pairs with remove's acquire load of the count, so everything the wake-up
        // did happens before remove returns.
        inWakeup.wrappingDecrement(ordering: .releasing)
    }

    func add(_ e: WakeupEventfd.WaitEntry) throws(DoorbellError) {
        let raw = UnsafeRawPointer(Unmanaged.passRetained(e).toOpaque())
        // acquiring-and-releasing: the release publishes the entry's initialised state to the
        // writers' seq_cst load of it; the acquire pairs with a previous remove's store.
        let (exchanged, _) = entry.compareExchange(expected: nil, desired: raw, ordering: .acquiringAndReleasing)
        guard exchanged else {
            Unmanaged<WakeupEventfd.WaitEntry>.fromOpaque(raw).release()
            throw .eventfdAlreadyPolled(fd: fd)
        }
    }

    func remove(_ e: WakeupEventfd.WaitEntry) {
        let raw = UnsafeRawPointer(Unmanaged.passUnretained(e).toOpaque())
        // seq_cst: pairs with the writers' seq_cst increment then load (see wakeUpWaitQueue).
        let (exchanged, _) = entry.compareExchange(expected: raw, desired: nil, ordering: .sequentiallyConsistent)
        guard exchanged else { return }
        // acquire: pairs with each writer's release decrement; a writer that entered before
        // the exchange is waited for, one that enters after it finds the queue empty.
        while inWakeup.load(ordering: .acquiring) != 0 { cplatform_cpu_relax() }
        Unmanaged<WakeupEventfd.WaitEntry>.fromOpaque(raw).release()
    }
}

/// Open wake-up eventfds by number. Weak: the table never keeps a descriptor open, and a
/// file whose last reference is going (deinit started) is no longer found.
final class FileTable: @unchecked Sendable {
    private struct Slot { weak var file: EventfdFile? }
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var slots: [Int32: Slot] = [:]

    init() { pthread_mutex_init(mutex, nil) }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    func insert(_ file: EventfdFile) { locked { slots[file.fd] = Slot(file: file) } }

    /// Called from the file's deinit, before its number is closed: no other file can hold
    /// the number yet.
    func remove(_ fd: Int32) { locked { slots[fd] = nil } }

    func lookup(_ fd: Int32) -> EventfdFile? { locked { slots[fd]?.file } }
}
