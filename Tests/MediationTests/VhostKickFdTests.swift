// The vhost kick path as vhost-vdpa has it: no thread of ours between the consumer's
// write to a kick eventfd and kick_vq. A vhost-bound vdpa_sim runs no thread but its
// device's; every write reaches kick_vq exactly once, on the writer's own thread; a kick
// fd that cannot be polled is a typed error that leaves the queue's poll as it was.

import Atomics
import CPlatform
import Doorbell
import Glibc
import Testing
import Virtqueue
import VirtioMemory
@testable import Mediation

/// Every thread of this process and its name (`/proc/self/task/<tid>/comm`).
func threadNames() -> [Int32: String] {
    guard let dir = opendir("/proc/self/task") else { return [:] }
    defer { closedir(dir) }
    var names: [Int32: String] = [:]
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let tid = Int32(name) else { continue }
        guard let f = fopen("/proc/self/task/\(tid)/comm", "r") else { continue }
        var buffer = [CChar](repeating: 0, count: 64)
        if fgets(&buffer, 64, f) != nil {
            names[tid] = String(decoding: buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        fclose(f)
    }
    return names
}

/// A parent that only counts: each kick_vq per queue, and the threads that ran them.
final class KickCountingParent: VDPAConfigOps, @unchecked Sendable {
    let core: VDPADeviceCore
    let counters = NetDeviceCounters()
    private let lock = ControlLock()
    private var perQueue: [UInt16: UInt64] = [:]
    private var threads: Set<Int32> = []

    static var parentName: String { "kick_counter" }
    static var strategy: String { "counts kick_vq calls" }
    static var supportedOps: Set<ConfigOp> { ConfigOp.mandatory }
    static var dmaModel: DMAModel { .onChip }
    static var offeredFeatures: VirtioFeatures { [.version1] }
    static var modelParameters: [ModelParameter] { [] }

    init(_ c: ParentConfiguration) throws(MediationError) {
        core = try VDPADeviceCore(identity: DeviceIdentity(name: c.name, classID: .net, vendorID: 0, queueCount: 2, maxQueueSize: 256),
                                  deviceFeatures: Self.offeredFeatures, config: NetConfig(), kick: c.kick)
    }

    convenience init() throws(MediationError) { try self.init(ParentConfiguration(name: "kicks")) }

    func startDevice() throws(MediationError) {}
    func stopDevice() {}

    func kickVQ(_ queue: UInt16) throws(MediationError) {
        guard queue < 2 else { throw .queueOutOfRange(queue: queue, queues: 2) }
        let tid = cplatform_gettid()
        lock.withLock {
            perQueue[queue, default: 0] += 1
            threads.insert(tid)
        }
    }

    func kicks(_ queue: UInt16) -> UInt64 { lock.withLock { perQueue[queue] ?? 0 } }
    var kickThreads: Set<Int32> { lock.withLock { threads } }
}

/// The eventfd's counter, read (and so cleared) with a raw read(2): what every write added
/// since the last read.
func drainEventfd(_ fd: Int32) -> UInt64 {
    var count: UInt64 = 0
    return read(fd, &count, 8) == 8 ? count : 0
}

extension MediationSuites {
@Suite struct VhostKickFdTests {
    @Test func vhostBoundVDPASimRunsNoThreadButItsDevice() throws {
        let device = try VDPASim(name: "threads", kick: .busyPoll, deviceCPU: 1)
        let binding = try VhostBinding(device: device, bus: VDPABus())
        // Other suites start threads in this process meanwhile, so the count is of threads
        // we can name: a thread started from the consumer's context (as a relay started by
        // SET_VRING_KICK would be) carries the consumer's name unless it renames itself,
        // and the device thread names itself after the device.
        let consumerName = "vqc-\(getpid() % 100_000)"
        struct Seen: Sendable {
            var before: [Int32: String] = [:], running: [Int32: String] = [:], afterTraffic: [Int32: String] = [:]
            var deviceRunning = false, consumerTID: Int32 = 0, sent = TrafficOutcome(), error: String?
        }
        let box = ResultBox(Seen())
        let thread = try PinnedThread(cpu: 0, name: consumerName) {
            box.value.consumerTID = cplatform_gettid()
            box.value.before = threadNames()
            do {
                let frontend = try VhostFrontend<BusyPollDoorbell>(binding: binding, layout: .split, queues: [0, 1], queueSize: 256,
                                                                   callBell: .allocated)
                box.value.deviceRunning = device.core.withState { $0.running }
                box.value.running = threadNames()
                var tx = frontend.takeSplitQueue(1)!
                box.value.sent = tx.transmit(packets: 100_000, payloadBytes: 64, batch: 32)
                box.value.afterTraffic = threadNames()
                frontend.close()
            } catch {
                box.value.error = "\(error)"
            }
        }
        thread.join()
        let seen = box.value
        #expect(seen.error == nil)
        #expect(seen.deviceRunning, "the census was taken while the device ran")
        #expect(seen.before[seen.consumerTID] == consumerName)
        for (when, census) in [("running", seen.running), ("after traffic", seen.afterTraffic)] {
            let new = census.filter { seen.before[$0.key] == nil }
            #expect(census.filter { $0.value == consumerName }.map(\.key) == [seen.consumerTID],
                    "\(when): no thread was started from the consumer's context")
            #expect(new.filter { $0.value == deviceThreadName("threads") }.count == 1, "\(when): the device's own thread")
            #expect(new.filter { $0.value == consumerName }.isEmpty, "\(when)")
        }
        #expect(seen.sent.errors == [] && seen.sent.packets == 100_000)
        #expect(seen.sent.kick.notificationsSent > 0)
        #expect(binding.kicksThroughKickFd == seen.sent.kick.notificationsSent)
        binding.unbind()
    }

    @Test func everyKickWrittenToTheKickFdReachesKickVQOnceOnTheWritersThread() throws {
        let device = try KickCountingParent()
        let binding = try VhostBinding(device: device, bus: VDPABus())
        try binding.handle(.setOwner)
        let kick = try WakeupEventfd.make()
        try binding.handle(.setVringKick(queue: 1, fd: kick.fd))
        #expect(device.kicks(1) == 0, "a fresh kick fd is not readable: polling it kicks nothing")

        // Two writers on two threads at once; each write runs kick_vq once, on its writer.
        let perWriter = 10_000
        let tids = ResultBox([Int32](repeating: 0, count: 2))
        let errors = ResultBox([String]())
        var writers: [PinnedThread] = []
        for w in 0..<2 {
            let writer = ResultBox(kick.anotherWriter())
            writers.append(try PinnedThread(cpu: Int32(w)) {
                tids.value[w] = cplatform_gettid()
                var n = writer.value
                do {
                    for _ in 0..<perWriter { try n.notify() }
                } catch {
                    errors.value.append("writer \(w): \(error)")
                }
            })
        }
        for t in writers { t.join() }
        #expect(errors.value == [])
        #expect(device.kicks(1) == UInt64(2 * perWriter))
        #expect(device.kicks(0) == 0)
        #expect(binding.kicksThroughKickFd == UInt64(2 * perWriter))
        #expect(device.kickThreads == Set(tids.value), "kick_vq ran on the writers' threads and no other")
        // Nobody read the counter: it holds every write.
        #expect(drainEventfd(kick.fd) == UInt64(2 * perWriter))

        // Unbound (VHOST_FILE_UNBIND): writes reach the counter, not kick_vq.
        try binding.handle(.setVringKick(queue: 1, fd: vhostFileUnbind))
        var n = kick.anotherWriter()
        for _ in 0..<5 { try n.notify() }
        #expect(device.kicks(1) == UInt64(2 * perWriter))
        // Polled again while readable: one kick at once (vhost_poll_start), none lost.
        try binding.handle(.setVringKick(queue: 1, fd: kick.fd))
        #expect(device.kicks(1) == UInt64(2 * perWriter) + 1)
        // The same fd again changes nothing.
        try binding.handle(.setVringKick(queue: 1, fd: kick.fd))
        #expect(device.kicks(1) == UInt64(2 * perWriter) + 1)
        try n.notify()
        #expect(device.kicks(1) == UInt64(2 * perWriter) + 2)
        #expect(binding.kicksThroughKickFd == UInt64(2 * perWriter) + 2)

        // Reset owner stops the poll: later writes run nothing.
        binding.unbind()
        try n.notify()
        #expect(device.kicks(1) == UInt64(2 * perWriter) + 2)
        #expect(binding.kicksThroughKickFd == UInt64(2 * perWriter) + 2, "the count survives the poll")
        #expect(binding.kickFdFailures == [])
    }

    @Test func aKickFdThatCannotBePolledIsATypedErrorAndTheQueueKeepsItsPoll() throws {
        let fdsBefore = openDescriptorCount()
        do {
            let device = try KickCountingParent()
            let binding = try VhostBinding(device: device, bus: VDPABus())
            try binding.handle(.setOwner)
            var kick = try WakeupEventfd.make()
            try binding.handle(.setVringKick(queue: 1, fd: kick.fd))

            // A closed number: one this test opened high (descriptors are handed out lowest
            // first, so no other suite takes it meanwhile) and closed again.
            let devNull = open("/dev/null", O_RDONLY)
            let closed = dup2(devNull, 900)
            Glibc.close(devNull)
            #expect(closed == 900)
            Glibc.close(closed)
            #expect(throws: MediationError.kickFdRejected(queue: 1, fd: 900, .descriptorNotOpen(fd: 900))) {
                try binding.handle(.setVringKick(queue: 1, fd: 900))
            }
            #expect(throws: MediationError.kickFdRejected(queue: 1, fd: -7, .descriptorNotOpen(fd: -7))) {
                try binding.handle(.setVringKick(queue: 1, fd: -7))
            }
            // Open, but a pipe.
            var pipeEnds: [Int32] = [0, 0]
            #expect(pipe(&pipeEnds) == 0)
            let pipeError = #expect(throws: MediationError.self) { try binding.handle(.setVringKick(queue: 1, fd: pipeEnds[0])) }
            let kind = pipeError.flatMap { e -> String? in
                guard case let .kickFdRejected(1, fd, .notAnEventfd(inner, kind)) = e, fd == pipeEnds[0], inner == fd else { return nil }
                return kind
            }
            #expect(kind?.hasPrefix("pipe:") == true, "a pipe is refused as one: \(String(describing: pipeError))")
            Glibc.close(pipeEnds[0])
            Glibc.close(pipeEnds[1])
            // An eventfd whose writers run no wait queue: nothing on it could ever be woken.
            let plain = cplatform_eventfd(0)
            #expect(throws: MediationError.kickFdRejected(queue: 1, fd: plain, .eventfdWithoutWaitQueue(fd: plain))) {
                try binding.handle(.setVringKick(queue: 1, fd: plain))
            }
            Glibc.close(plain)
            // One poller per eventfd: queue 0 cannot poll queue 1's kick fd.
            #expect(throws: MediationError.kickFdRejected(queue: 0, fd: kick.fd, .eventfdAlreadyPolled(fd: kick.fd))) {
                try binding.handle(.setVringKick(queue: 0, fd: kick.fd))
            }
            #expect(throws: MediationError.queueOutOfRange(queue: 7, queues: 2)) {
                try binding.handle(.setVringKick(queue: 7, fd: kick.fd))
            }
            // None of that disturbed queue 1's poll.
            try kick.notify()
            #expect(device.kicks(1) == 1)
            #expect(device.kicks(0) == 0)

            // The binding's reference keeps the fd open after the consumer lets its end go,
            // as a kernel file reference does; unbinding lets it close.
            let fd = kick.fd
            kick = try WakeupEventfd.make()
            #expect((try? WakeupEventfd.fget(fd)) != nil, "the binding still holds queue 1's kick fd")
            binding.unbind()
        }
        #expect(noDescriptorsLeaked(since: fdsBefore), "every kick fd closed once nobody held it")
    }
}
}
