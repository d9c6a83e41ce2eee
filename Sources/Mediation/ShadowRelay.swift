// The shadow virtqueue's relay (QEMU's vhost-shadow-virtqueue.c, as a thread of its own):
// it is the device to the driver's rings and the driver of the shadow rings the real
// device reads. Each pass, per queue: pop the driver's available chains, translate every
// buffer address through the IOVA tree, post the chains on the shadow ring and kick the
// device; reclaim what the device used, push it used on the driver's ring under the
// driver's ids and interrupt the driver. Descriptors are copied, payloads are not.
// Generic over both layouts and every doorbell, specialised where the shadow virtqueue
// starts it, like the device loop.

import Atomics
import CPlatform
import Doorbell
import Glibc
import Virtqueue
import VirtioMemory

/// How the relay waits when neither ring has work.
public enum ShadowRelayWaiting: Sendable, Equatable {
    /// Polls both rings, notifications suppressed on both, and yields the CPU between
    /// empty passes (it shares its CPU with the device: sched_yield lets the device run).
    case polling
    /// Sleeps on one doorbell that the driver's kicks and the device's calls both ring
    /// (QEMU waits on the guest's kick eventfd and the device's call eventfd in one loop).
    case sleeping
}

/// What the relay does, written by the relay thread only (relaxed load and store, as the
/// device's counters), readable from any thread.
public final class ShadowRelayCounters: @unchecked Sendable {
    enum Word: Int, CaseIterable {
        /// Chains relayed driver → device, and used entries relayed back.
        case chainsRelayed, usedRelayed
        /// Buffer addresses translated through the IOVA tree.
        case translations
        /// Kicks the relay sent the device, interrupts it sent the driver.
        case deviceKicks, driverInterrupts
        /// Empty passes (a yield when polling, a sleep when sleeping).
        case idlePasses
        /// Chains held back because the shadow ring was full.
        case held
        /// System calls the relay thread made (yields, sleeps, kicks, interrupts) and its CPU time.
        case syscalls, cpuNanoseconds
    }
    let words: UnsafeMutablePointer<UInt64.AtomicRepresentation>

    public init() { words = allocateCounterWords(Word.allCases.count) }
    deinit { words.deallocate() }

    func load(_ w: Word) -> UInt64 { UnsafeAtomic<UInt64>(at: words + w.rawValue).load(ordering: .relaxed) }
    public var chainsRelayed: UInt64 { load(.chainsRelayed) }
    public var usedRelayed: UInt64 { load(.usedRelayed) }
    public var translations: UInt64 { load(.translations) }
    public var deviceKicks: UInt64 { load(.deviceKicks) }
    public var driverInterrupts: UInt64 { load(.driverInterrupts) }
    public var idlePasses: UInt64 { load(.idlePasses) }
    public var held: UInt64 { load(.held) }
    public var syscalls: UInt64 { load(.syscalls) }
    public var cpuNanoseconds: UInt64 { load(.cpuNanoseconds) }

    /// The relay thread is the one writer (relay threads of one device run a join apart).
    static func add(_ words: UnsafeMutablePointer<UInt64.AtomicRepresentation>, _ w: Word, _ n: UInt64) {
        let a = UnsafeAtomic<UInt64>(at: words + w.rawValue)
        a.store(a.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }
}

/// A chain popped from the driver's ring that did not fit in the shadow ring yet (QEMU's
/// `next_guest_elem`): posted first on a later pass, before anything newer is popped.
struct HeldChain {
    var chain: Chain
    var buffers: [Buffer]
    /// The chain's device-writable segments in the driver's address space (for the dirty log).
    var writes: [GuestWrite]
    init(chain: Chain, buffers: [Buffer], writes: [GuestWrite]) {
        self.chain = chain
        self.buffers = buffers
        self.writes = writes
    }
}

/// A device-writable buffer of a driver chain, in the driver's address space: where the
/// device's writes land, which is what the dirty log marks when the chain comes back used.
struct GuestWrite {
    var address: UInt64
    var length: UInt32
    /// The chain has several writable segments: see the link's `several` table. No real
    /// segment starts at the last address (its end would wrap, which the ring refuses), so
    /// the address alone tells (one compare per used buffer).
    static let several = GuestWrite(address: .max, length: .max)
    var isSeveral: Bool { address == .max }
    static let none = GuestWrite(address: 0, length: 0)
    init(address: UInt64, length: UInt32) {
        self.address = address
        self.length = length
    }
    init(_ s: Segment) { self = s.isWritable ? GuestWrite(address: s.address, length: s.length) : .none }
}

/// Where the driver's ring is, for logging what the relay writes into it.
struct GuestRingArea {
    let layout: RingLayoutKind
    let size: Int
    let addresses: RingAddresses

    /// Marks the driver-ring bytes the relay's device half wrote going from `old` to `new`:
    /// split, the used entries in between and the used index; packed, the descriptor slots
    /// in between (each used descriptor is written at the first slot of its chain; slots
    /// skipped inside a chain share its page unless a chain spans 256 slots).
    func markUsed(_ log: DirtyLogWriter, from old: VDPAQueueState, to new: VDPAQueueState) {
        switch (old, new) {
        case let (.split(a), .split(b)):
            let count = Int(b.usedIndex &- a.usedIndex)
            guard count > 0 else { return }
            log.mark(address: addresses.deviceArea &+ 2, length: 2)
            markSlots(log, base: addresses.deviceArea &+ 4, stride: 8, first: Int(a.usedIndex) % size, count: min(count, size))
        case let (.packed(a), .packed(b)):
            var count = (Int(b.usedIndex) &- Int(a.usedIndex) &+ size) % size
            if count == 0 && a.usedWrapCounter != b.usedWrapCounter { count = size }
            guard count > 0 else { return }
            markSlots(log, base: addresses.descriptorArea, stride: 16, first: Int(a.usedIndex), count: count)
        default:
            return
        }
    }

    /// Marks the device's event suppression words (split: the used ring's flags and
    /// avail_event; packed: the device event suppression structure).
    func markSuppression(_ log: DirtyLogWriter) {
        switch layout {
        case .split:
            log.mark(address: addresses.deviceArea, length: 2)
            log.mark(address: addresses.deviceArea &+ 4 &+ 8 &* UInt64(size), length: 2)
        case .packed:
            log.mark(address: addresses.deviceArea, length: 4)
        }
    }

    private func markSlots(_ log: DirtyLogWriter, base: UInt64, stride: Int, first: Int, count: Int) {
        let head = min(count, size &- first)
        log.mark(address: base &+ UInt64(first &* stride), length: UInt64(head &* stride))
        if count > head { log.mark(address: base, length: UInt64((count &- head) &* stride)) }
    }
}

/// One queue's relay state: the driver's ring as its device, the shadow ring as its driver.
struct ShadowLink {
    let index: UInt16
    /// The driver's chain behind each shadow id in flight (shadow ids are below the shadow
    /// queue size for both layouts), so the used entry goes back under the driver's id.
    let owners: UnsafeMutablePointer<Chain>
    /// Where each shadow id's device writes land in the driver's memory (one writable
    /// segment, none, or `.several`: then `several[id]`).
    let writes: UnsafeMutablePointer<GuestWrite>
    let several: UnsafeMutablePointer<[GuestWrite]>
    let area: GuestRingArea
    var held: [HeldChain] = []
    init(_ q: ReadyQueue, layout: RingLayoutKind) {
        index = q.index
        let capacity = max(q.size, 1)
        owners = .allocate(capacity: capacity)
        writes = .allocate(capacity: capacity)
        writes.initialize(repeating: .none, count: capacity)
        several = .allocate(capacity: capacity)
        several.initialize(repeating: [], count: capacity)
        area = GuestRingArea(layout: layout, size: q.size, addresses: q.addresses)
    }
    func deallocate() {
        owners.deallocate()
        writes.deallocate()
        several.deinitialize(count: max(area.size, 1))
        several.deallocate()
    }

    /// Where each id's device writes land, without the rest of the link (a closure that
    /// captured the link would retain its held chains' array).
    var guestWrites: GuestWrites { GuestWrites(writes: writes, several: several) }
}

/// A link's table of where each shadow id's device writes land (see `ShadowLink`).
struct GuestWrites {
    let writes: UnsafeMutablePointer<GuestWrite>
    let several: UnsafeMutablePointer<[GuestWrite]>

    /// Marks where the device wrote `length` bytes of shadow id `id`'s chain.
    @inline(__always)
    func markWritten(_ log: DirtyLogWriter, id: UInt16, length: UInt32) {
        guard length > 0 else { return }
        let w = writes[Int(id)]
        if !w.isSeveral {
            log.mark(address: w.address, length: UInt64(min(length, w.length)))
            return
        }
        var left = length
        for s in several[Int(id)] where left > 0 {
            let n = min(left, s.length)
            log.mark(address: s.address, length: UInt64(n))
            left &-= n
        }
    }
}

/// Scratch the relay reuses every pass (allocated once, at the start).
struct RelayScratch {
    let chains: UnsafeMutablePointer<Chain>
    let buffers: UnsafeMutablePointer<Buffer>
    let writes: UnsafeMutablePointer<GuestWrite>
    let capacity: Int
    init(batch: Int) {
        capacity = max(batch, 1)
        chains = .allocate(capacity: capacity)
        buffers = .allocate(capacity: capacity)
        writes = .allocate(capacity: capacity)
    }
    func deallocate() {
        chains.deallocate()
        buffers.deallocate()
        writes.deallocate()
    }
}

/// What the relay thread was started with and how it waits.
public struct ShadowRelayOptions: Sendable {
    public var batch: Int
    public var waiting: ShadowRelayWaiting
    /// Longest sleep before the relay looks at its stop flag again.
    public var sleepNanoseconds: UInt64
    /// How long a stopping relay waits for the device to give back what is in flight.
    public var drainNanoseconds: UInt64
    public init(batch: Int = 64, waiting: ShadowRelayWaiting, sleepNanoseconds: UInt64 = 1_000_000,
                drainNanoseconds: UInt64 = 1_000_000_000) {
        self.batch = batch
        self.waiting = waiting
        self.sleepNanoseconds = sleepNanoseconds
        self.drainNanoseconds = drainNanoseconds
    }
}

/// The buffer the device sees for one driver segment: its address through the IOVA tree.
/// A zero-length segment has no memory behind it and carries no address.
@inline(__always)
func shadowBuffer(_ s: Segment, _ tree: inout IOTLB) throws(MemoryError) -> Buffer {
    guard s.length != 0 else { return Buffer(address: 0, length: 0, isWritable: s.isWritable) }
    let iova = try tree.translate(iova: s.address, length: UInt64(s.length), access: s.isWritable ? .write : .read)
    return Buffer(address: iova, length: s.length, isWritable: s.isWritable)
}

/// Why a relay pass failed; the relay stops and the device needs a reset.
enum RelayFailure: Error {
    case ring(VirtqueueError)
    case translation(queue: UInt16, MemoryError)
    case chainTooLong(queue: UInt16, descriptors: Int, shadowSize: Int)
    case doorbell(String, DoorbellError)
    var description: String {
        switch self {
        case let .ring(e): return "ring: \(e)"
        case let .translation(q, e): return "queue \(q): a driver buffer is outside the IOVA tree: \(e)"
        case let .chainTooLong(q, n, size):
            return "queue \(q): a chain of \(n) descriptors cannot be shadowed on a ring of \(size)"
        case let .doorbell(what, e): return "\(what): \(e)"
        }
    }
}

/// Posts one driver chain's buffers on the shadow ring, remembering whose it is. Returns
/// false when the shadow ring has no room for it now.
func postShadowChain<Shadow: VirtqueueDriverHalf>(_ shadow: inout Shadow, _ link: ShadowLink, _ chain: Chain,
                                                   _ buffers: UnsafeBufferPointer<Buffer>, writes: [GuestWrite]) throws(RelayFailure) -> Bool {
    guard buffers.count <= shadow.queueSize else {
        throw .chainTooLong(queue: link.index, descriptors: buffers.count, shadowSize: shadow.queueSize)
    }
    guard shadow.freeDescriptors >= buffers.count else { return false }
    do throws(VirtqueueError) {
        let id = try shadow.post(buffers)
        link.owners[Int(id)] = chain
        if writes.count == 1 {
            link.writes[Int(id)] = writes[0]
        } else if writes.isEmpty {
            link.writes[Int(id)] = .none
        } else {
            link.writes[Int(id)] = .several
            link.several[Int(id)] = writes
        }
    } catch {
        throw .ring(error)
    }
    return true
}

/// Driver → device: chains the driver made available go onto the shadow ring. Returns how
/// many were posted.
func relayAvailable<Guest: VirtqueueDeviceHalf, Shadow: VirtqueueDriverHalf>(
    _ guest: inout Guest, _ shadow: inout Shadow, _ link: inout ShadowLink, _ tree: inout IOTLB,
    _ scratch: RelayScratch, _ counters: UnsafeMutablePointer<UInt64.AtomicRepresentation>, popping: Bool
) throws(RelayFailure) -> Int {
    var posted = 0
    // What was held back goes first, in order.
    while let h = link.held.first {
        let fits = try h.buffers.withUnsafeBufferPointer { (b) throws(RelayFailure) -> Bool in
            try postShadowChain(&shadow, link, h.chain, b, writes: h.writes)
        }
        guard fits else { return posted }
        link.held.removeFirst()
        posted &+= 1
    }
    guard popping else { return posted }
    let room = min(scratch.capacity, shadow.freeDescriptors)
    guard room > 0 else { return posted }
    let n: Int
    do throws(VirtqueueError) { n = try guest.popBurst(into: scratch.chains, maximum: room) } catch { throw .ring(error) }
    guard n > 0 else { return posted }
    var translated = 0
    var i = 0
    while i < n {
        if link.held.isEmpty {
            // A run of one-descriptor chains (the common case), as many as the shadow ring
            // has room for, is translated, then posted as one burst.
            let free = shadow.freeDescriptors
            var run = 0
            while i &+ run < n, run < free, scratch.chains[i &+ run].segmentCount == 1 {
                let segment = guest.segments(of: scratch.chains[i &+ run])[0]
                scratch.writes[run] = GuestWrite(segment)
                do throws(MemoryError) {
                    scratch.buffers[run] = try shadowBuffer(segment, &tree)
                } catch {
                    throw .translation(queue: link.index, error)
                }
                run &+= 1
            }
            if run > 0 {
                let first = i
                let owners = link.owners
                let chains = scratch.chains
                let buffers = scratch.buffers
                let writes = scratch.writes
                let guestWrites = link.writes
                // run ≤ free descriptors: every one of them is posted.
                let k = shadow.postBurst(count: run, { buffers[$0] }, posted: { j, id in
                    owners[Int(id)] = chains[first &+ j]
                    guestWrites[Int(id)] = writes[j]
                })
                translated &+= k
                posted &+= k
                i &+= k
                continue
            }
        }
        // A chain of several descriptors (or an indirect table, flattened onto the shadow
        // ring), or any chain once one had to wait: held in order behind it.
        let c = scratch.chains[i]
        var buffers: [Buffer] = []
        var writes: [GuestWrite] = []
        buffers.reserveCapacity(c.segmentCount)
        for s in guest.segments(of: c) {
            do throws(MemoryError) { buffers.append(try shadowBuffer(s, &tree)) } catch { throw .translation(queue: link.index, error) }
            if s.isWritable && s.length > 0 { writes.append(GuestWrite(s)) }
        }
        translated &+= buffers.count
        let fits = try buffers.withUnsafeBufferPointer { (b) throws(RelayFailure) -> Bool in
            link.held.isEmpty ? try postShadowChain(&shadow, link, c, b, writes: writes) : false
        }
        if fits {
            posted &+= 1
        } else {
            link.held.append(HeldChain(chain: c, buffers: buffers, writes: writes))
            ShadowRelayCounters.add(counters, .held, 1)
        }
        i &+= 1
    }
    ShadowRelayCounters.add(counters, .translations, UInt64(translated))
    return posted
}

/// Device → driver: what the device used on the shadow ring is pushed used on the
/// driver's ring under the driver's chain. Returns how many. With a dirty log, the pages
/// the device wrote into (as far as each used length says) are marked, as QEMU marks a
/// buffer's pages when SVQ hands it back.
func relayUsed<Guest: VirtqueueDeviceHalf, Shadow: VirtqueueDriverHalf>(
    _ guest: inout Guest, _ shadow: inout Shadow, _ link: ShadowLink, log: DirtyLogWriter?
) throws(RelayFailure) -> Int {
    let owners = link.owners
    do throws(VirtqueueError) {
        if let log {
            let writes = link.guestWrites
            return try shadow.reclaimBurst(maximum: shadow.queueSize) { used in
                writes.markWritten(log, id: used.id, length: used.length)
                guest.pushUsed(owners[Int(used.id)], length: used.length)
            }
        }
        return try shadow.reclaimBurst(maximum: shadow.queueSize) { used in
            guest.pushUsed(owners[Int(used.id)], length: used.length)
        }
    } catch {
        throw .ring(error)
    }
}

/// The relay's queues, each as four parallel arrays so a pass holds two halves of one
/// queue at once without overlapping access.
struct ShadowRelayQueues<Guest: VirtqueueDeviceHalf, Shadow: VirtqueueDriverHalf,
                                           DriverCall: DoorbellNotifier, DeviceKick: DoorbellNotifier> {
    var guests: [Guest]
    var shadows: [Shadow]
    var links: [ShadowLink]
    var calls: [DriverCall?]
    var kicks: [DeviceKick]
    init(guests: [Guest], shadows: [Shadow], links: [ShadowLink], calls: [DriverCall?], kicks: [DeviceKick]) {
        self.guests = guests
        self.shadows = shadows
        self.links = links
        self.calls = calls
        self.kicks = kicks
    }
}

/// Runs the relay until `stop` is set, then drains: nothing more is popped, what is held
/// is posted and everything in flight is given back to the driver before it returns (so
/// the driver's queue state is whole: every chain it made available was used). Returns why
/// it stopped early, or nil.
func runShadowRelay<Guest: VirtqueueDeviceHalf & VDPAQueueStateReporting, Shadow: VirtqueueDriverHalf, DriverCall: DoorbellNotifier,
                    DeviceKick: DoorbellNotifier, Waiter: DoorbellWaiter>(
    _ q: inout ShadowRelayQueues<Guest, Shadow, DriverCall, DeviceKick>, wait: inout Waiter, tree: inout IOTLB,
    options: ShadowRelayOptions, counters: UnsafeMutablePointer<UInt64.AtomicRepresentation>, stop: UnsafeAtomic<Bool>,
    log: DirtyLogWriter? = nil
) -> String? {
    let scratch = RelayScratch(batch: options.batch)
    defer { scratch.deallocate() }
    let sleeping = options.waiting == .sleeping
    // Polling: neither side notifies (the shadow ring's interrupts and the driver's kicks
    // stay suppressed). Sleeping: both are enabled only around a sleep.
    for i in q.guests.indices {
        q.guests[i].disableKicks()
        q.shadows[i].disableInterrupts()
        if let log { q.links[i].area.markSuppression(log) }
    }
    var draining = false
    var drainDeadline: UInt64 = 0
    do throws(RelayFailure) {
        while true {
            if !draining, stop.load(ordering: .acquiring) {
                // acquiring: pairs with the stop request's releasing store.
                draining = true
                drainDeadline = cplatform_monotonic_ns() &+ options.drainNanoseconds
            }
            var progressed = false
            for i in q.guests.indices {
                let posted = try relayAvailable(&q.guests[i], &q.shadows[i], &q.links[i], &tree, scratch, counters, popping: !draining)
                if posted > 0 {
                    progressed = true
                    ShadowRelayCounters.add(counters, .chainsRelayed, UInt64(posted))
                    q.shadows[i].publish()
                    // kickNeeded() owns the store → load fence the shadow ring's suppression needs.
                    if q.shadows[i].kickNeeded() {
                        do throws(DoorbellError) { try q.kicks[i].notify() } catch { throw .doorbell("device kick", error) }
                        ShadowRelayCounters.add(counters, .deviceKicks, 1)
                    }
                }
                let before = log == nil ? nil : q.guests[i].vdpaState
                let used = try relayUsed(&q.guests[i], &q.shadows[i], q.links[i], log: log)
                if used > 0 {
                    progressed = true
                    ShadowRelayCounters.add(counters, .usedRelayed, UInt64(used))
                    q.guests[i].publishUsed()
                    // After the entries and the index are written (their pages marked after the writes).
                    if let log, let before { q.links[i].area.markUsed(log, from: before, to: q.guests[i].vdpaState) }
                    // interruptNeeded() owns the store → load fence of the driver's ring.
                    if q.calls[i] != nil, q.guests[i].interruptNeeded() {
                        do throws(DoorbellError) { try q.calls[i]!.notify() } catch { throw .doorbell("driver interrupt", error) }
                        ShadowRelayCounters.add(counters, .driverInterrupts, 1)
                    }
                }
            }
            if draining {
                var left = 0
                for i in q.shadows.indices { left &+= q.shadows[i].buffersInFlight &+ q.links[i].held.count }
                if left == 0 { break }
                if cplatform_monotonic_ns() > drainDeadline {
                    return "the device did not give back \(left) chains within \(options.drainNanoseconds / 1_000_000) ms of a stop"
                }
                if !progressed { sched_yield() }
                continue
            }
            if progressed { continue }
            ShadowRelayCounters.add(counters, .idlePasses, 1)
            guard sleeping else {
                // The device thread shares this CPU: let it run.
                sched_yield()
                ShadowRelayCounters.add(counters, .syscalls, 1)
                continue
            }
            do throws(DoorbellError) {
                _ = try waitUntil({
                    if stop.load(ordering: .acquiring) { return true }
                    for i in q.guests.indices where q.guests[i].hasAvailable() || q.shadows[i].hasUsed() { return true }
                    return false
                }, on: &wait, timeoutNanoseconds: options.sleepNanoseconds,
                enableNotifications: {
                    for i in q.guests.indices {
                        _ = q.guests[i].enableKicks()
                        _ = q.shadows[i].enableInterrupts()
                        if let log { q.links[i].area.markSuppression(log) }
                    }
                },
                disableNotifications: {
                    for i in q.guests.indices {
                        q.guests[i].disableKicks()
                        q.shadows[i].disableInterrupts()
                        if let log { q.links[i].area.markSuppression(log) }
                    }
                })
            } catch {
                throw .doorbell("relay wait", error)
            }
        }
    } catch {
        return error.description
    }
    return nil
}
