// The vhost-user back end against two front ends: our own driver half in this process
// (memfd memory, real socket, kick and call eventfds), and DPDK's virtio-user in testpmd,
// a front end nobody here wrote (split and packed, IN_ORDER on and off, mergeable receive
// buffers on and off): every packet the front end counted sent is one the back end served.
// And hand-made messages that break a rule end the connection with the error named.

import CPlatform
import Doorbell
import Foundation
import Testing
import VhostUser
import Virtqueue
import VirtioMemory
@testable import Mediation

/// Runs a back end on its own thread over one end of a socket pair; `front` is the other end.
private final class BackendRun: @unchecked Sendable {
    let backend: VhostUserNetBackend
    let front: Int32
    private let done = DispatchSemaphore(value: 0)
    private var outcome: VhostUserError?

    init(options: VhostUserBackendOptions = VhostUserBackendOptions()) {
        backend = VhostUserNetBackend(options: options)
        var fds: [Int32] = [-1, -1]
        precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
        front = fds[0]
        let back = fds[1], backend = backend
        Thread.detachNewThread { [self] in
            let connection = VhostUserConnection(adopting: back, timeoutMilliseconds: 5000)
            outcome = backend.serve(connection)
            done.signal()
        }
    }

    /// Waits for the back end to end (the front end's side must be closed) and says how.
    func finish() -> VhostUserError? {
        done.wait()
        done.signal()
        return outcome
    }

    /// Waits for the back end to end by itself (it refused something).
    func ended() -> VhostUserError? {
        if done.wait(timeout: .now() + 5) == .success { done.signal() }
        return outcome
    }
}

private func testpmdPath() -> String? {
    for p in ["/usr/bin/dpdk-testpmd", "/usr/local/bin/dpdk-testpmd"] where FileManager.default.isExecutableFile(atPath: p) {
        return p
    }
    return nil
}

extension MediationSuites {
/// Inside the serialized root: the testpmd runs hold sockets and eventfds for seconds, which
/// the leak tests beside them would count.
@Suite struct VhostUserBackendTests {
    /// The handshake our front end sends, up to a running transmit ring (queue 1).
    func bringUp(_ front: borrowing VhostUserConnection, arena: QueueArena, features: VirtioFeatures,
                 kick: Int32, call: Int32) throws {
        try front.send(VhostUserMessage(.setOwner))
        let offered = try front.call(VhostUserMessage(.getFeatures))!.payload
        guard case let .number(f) = offered else { Issue.record("features reply \(offered)"); return }
        #expect(f & VhostUserFeatures.protocolFeatures != 0)
        let ack = VhostUserFlags.version | VhostUserFlags.needReply
        try front.send(VhostUserMessage(.setFeatures, payload: .number(features.rawValue | VhostUserFeatures.protocolFeatures)))
        try front.send(VhostUserMessage(.setProtocolFeatures, payload: .number(VhostUserProtocolFeatures.replyAck)))
        let base = UInt64(UInt(bitPattern: arena.region.base))
        let table = [VhostUserMemoryRegion(guestPhysicalAddress: QueueArena.baseGPA, size: UInt64(arena.region.size),
                                           userAddress: base, mmapOffset: 0)]
        _ = try front.call(VhostUserMessage(.setMemTable, flags: ack, payload: .memoryTable(table)), fileDescriptors: [arena.region.fd!])
        func user(_ gpa: UInt64) -> UInt64 { gpa - QueueArena.baseGPA + base }
        _ = try front.call(VhostUserMessage(.setVringNum, flags: ack, payload: .vringState(index: 1, num: UInt32(arena.queueSize))))
        let initial = features.contains(.ringPacked) ? VhostUserPackedBase(availableIndex: 0, availableWrap: true, usedIndex: 0, usedWrap: true).num : 0
        _ = try front.call(VhostUserMessage(.setVringBase, flags: ack, payload: .vringState(index: 1, num: initial)))
        let a = arena.addresses
        _ = try front.call(VhostUserMessage(.setVringAddr, flags: ack, payload: .vringAddress(VhostUserVringAddress(
            index: 1, descriptorUserAddress: user(a.descriptorArea), usedUserAddress: user(a.deviceArea),
            availableUserAddress: user(a.driverArea)))))
        _ = try front.call(VhostUserMessage(.setVringKick, flags: ack, payload: .vringFile(index: 1, hasDescriptor: true)), fileDescriptors: [kick])
        _ = try front.call(VhostUserMessage(.setVringCall, flags: ack, payload: .vringFile(index: 1, hasDescriptor: true)), fileDescriptors: [call])
        _ = try front.call(VhostUserMessage(.setVringEnable, flags: ack, payload: .vringState(index: 1, num: 1)))
    }

    @Test(arguments: [RingLayoutKind.split, .packed])
    func ourFrontEndsPacketsAreAllServedAndTheBaseSaysWhereTheRingStopped(_ kind: RingLayoutKind) throws {
        let arena = try QueueArena(kind: kind, queueSize: 256, bufferSize: 128, bufferCount: 256, policy: .require(.smallPages), shareable: true)
        let features: VirtioFeatures = kind == .packed ? [.version1, .ringPacked] : [.version1]
        let run = BackendRun()
        let front = VhostUserConnection(adopting: run.front, timeoutMilliseconds: 5000)
        let kick = cplatform_eventfd(0), call = cplatform_eventfd(0)
        defer { close(kick); close(call) }
        try bringUp(front, arena: arena, features: features, kick: kick, call: call)
        #expect(run.backend.runningQueues == [1])
        // 10 000 packets of 76 bytes (a 12-byte virtio-net header and a 64-byte frame), in
        // bursts of 32, kicking when the device asks.
        let total = 10_000
        var sent = 0, reclaimed = 0, kicks = 0
        var driver: any VirtqueueDriverHalf = kind == .packed ? try arena.packedDriver(features: features, queue: 1)
                                                              : try arena.splitDriver(features: features, queue: 1)
        let deadline = cplatform_monotonic_ns() + 10_000_000_000
        while reclaimed < total && cplatform_monotonic_ns() < deadline {
            let n = min(32, total - sent, driver.freeDescriptors)
            if n > 0 {
                let posted = driver.postBurst(count: n) { i in Buffer(address: arena.bufferAddress((sent + i) % 256), length: 76) }
                sent += posted
                driver.publish()
                if driver.kickNeeded() {
                    var one: UInt64 = 1
                    _ = write(kick, &one, 8)
                    kicks += 1
                }
            }
            reclaimed += try driver.reclaimBurst(maximum: 64) { _ in }
        }
        #expect(reclaimed == total)
        #expect(run.backend.counters.transmitted == UInt64(total))
        #expect(run.backend.counters.transmitBytes == UInt64(total * 76))
        _ = kicks
        // GET_VRING_BASE stops the ring and names the next available position.
        let base = try front.call(VhostUserMessage(.getVringBase, payload: .vringState(index: 1, num: 0)))!.payload
        if kind == .packed {
            let expected = VhostUserPackedBase(availableIndex: UInt16(total % 256), availableWrap: (total / 256) % 2 == 0,
                                               usedIndex: UInt16(total % 256), usedWrap: (total / 256) % 2 == 0)
            #expect(base == .vringState(index: 1, num: expected.num))
        } else {
            #expect(base == .vringState(index: 1, num: UInt32(total & 0xFFFF)))
        }
        #expect(run.backend.runningQueues.isEmpty)
        front.close()
        #expect(run.finish() == nil)
    }

    @Test func aHostileDescriptorStopsTheRingWithItsNameAndTheProcessLives() throws {
        let arena = try QueueArena(kind: .split, queueSize: 256, bufferSize: 128, bufferCount: 256, policy: .require(.smallPages), shareable: true)
        let run = BackendRun()
        let front = VhostUserConnection(adopting: run.front, timeoutMilliseconds: 5000)
        let kick = cplatform_eventfd(0), call = cplatform_eventfd(0)
        defer { close(kick); close(call) }
        try bringUp(front, arena: arena, features: [.version1], kick: kick, call: call)
        var driver = try arena.splitDriver(features: [.version1], queue: 1)
        // A buffer at guest address 0x10: outside every region of the memory table.
        _ = try driver.post(Buffer(address: 0x10, length: 76))
        driver.publish()
        var one: UInt64 = 1
        _ = write(kick, &one, 8)
        let deadline = cplatform_monotonic_ns() + 5_000_000_000
        while run.backend.counters.transmitted == 0 && cplatform_monotonic_ns() < deadline {
            // The device stops on the descriptor; nothing is served.
            if cplatform_monotonic_ns() > deadline - 4_800_000_000 { break }
        }
        _ = try front.call(VhostUserMessage(.getVringBase, payload: .vringState(index: 1, num: 0)))
        #expect(run.backend.counters.transmitted == 0)
        #expect(run.backend.deviceErrors.count == 1)
        #expect(run.backend.deviceErrors.first?.contains("0x10") == true, "\(run.backend.deviceErrors)")
        front.close()
        #expect(run.finish() == nil)
    }

    @Test func aBrokenRuleEndsTheConnectionWithItsName() throws {
        func refused(_ messages: [(VhostUserMessage, [Int32])], _ expected: VhostUserError, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let run = BackendRun()
            let front = VhostUserConnection(adopting: run.front, timeoutMilliseconds: 5000)
            for (m, fds) in messages { try? front.send(m, fileDescriptors: fds) }
            #expect(run.ended() == expected, sourceLocation: sourceLocation)
            front.close()
            _ = run.finish()
        }
        let owner = (VhostUserMessage(.setOwner), [Int32]())
        try refused([(VhostUserMessage(.setVringNum, payload: .vringState(index: 0, num: 256)), [])],
                    .outOfOrder(.setVringNum, requires: "VHOST_USER_SET_OWNER"))
        try refused([owner, owner], .outOfOrder(.setOwner, requires: "no owner yet (VHOST_USER_SET_OWNER came twice)"))
        let offered = VhostUserNetBackend().offeredFeatures
        try refused([owner, (VhostUserMessage(.setFeatures, payload: .number(offered | 1 << 40)), [])],
                    .featuresNotOffered(.setFeatures, requested: offered | 1 << 40, offered: offered))
        try refused([owner, (VhostUserMessage(.setVringNum, payload: .vringState(index: 1, num: 300)), [])],
                    .invalidRingSize(index: 1, size: 300))
        try refused([owner, (VhostUserMessage(.setVringNum, payload: .vringState(index: 2, num: 256)), [])],
                    .vringIndexOutOfRange(.setVringNum, index: 2, maximum: 2))
        try refused([owner, (VhostUserMessage(.setVringAddr, payload: .vringAddress(VhostUserVringAddress(
            index: 1, descriptorUserAddress: 0x1000, usedUserAddress: 0x2000, availableUserAddress: 0x3000))), [])],
                    .ringNotMapped(index: 1, area: "descriptor area", userAddress: 0x1000))
        // A region longer than the file behind it is refused, not mapped past the file's end.
        let memfd = cplatform_memfd_create("vqb-short", cplatform_mfd_cloexec())
        #expect(ftruncate(memfd, 4096) == 0)
        let table = [VhostUserMemoryRegion(guestPhysicalAddress: 0, size: 1 << 20, userAddress: 0x7000_0000, mmapOffset: 0)]
        let run = BackendRun()
        let front = VhostUserConnection(adopting: run.front, timeoutMilliseconds: 5000)
        try front.send(VhostUserMessage(.setOwner))
        try front.send(VhostUserMessage(.setMemTable, payload: .memoryTable(table)), fileDescriptors: [memfd])
        close(memfd)
        if case .regionNotMapped(index: 0, reason: _)? = run.ended() {} else { Issue.record("expected regionNotMapped, got \(String(describing: run.ended()))") }
        front.close()
        _ = run.finish()
    }

    @Test func replyAckAnswersEachRequestAndAFailureCarriesCodeOne() throws {
        let run = BackendRun()
        let front = VhostUserConnection(adopting: run.front, timeoutMilliseconds: 5000)
        let ack = VhostUserFlags.version | VhostUserFlags.needReply
        try front.send(VhostUserMessage(.setOwner))
        try front.send(VhostUserMessage(.setProtocolFeatures, payload: .number(VhostUserProtocolFeatures.replyAck)))
        #expect(try front.call(VhostUserMessage(.setVringBase, flags: ack, payload: .vringState(index: 0, num: 0)))?.payload == .number(0))
        #expect(throws: VhostUserError.requestFailed(.setVringNum, code: 1)) {
            try front.call(VhostUserMessage(.setVringNum, flags: ack, payload: .vringState(index: 0, num: 0)))
        }
        #expect(run.ended() == .invalidRingSize(index: 0, size: 0))
        front.close()
        _ = run.finish()
    }

    /// Runs testpmd (net_virtio_user with `devargs`, forwarding `mode`) against a fresh back
    /// end for two seconds; returns its output, the back end and how the back end ended.
    func testpmdRun(_ name: String, _ devargs: String, mode: String) throws -> (String, VhostUserNetBackend, VhostUserError?)? {
        guard let testpmd = testpmdPath() else {
            print("skipped: dpdk-testpmd is not installed (scripts/test installs dpdk-dev when root)")
            return nil
        }
        let path = "/tmp/vqb-testpmd-\(getpid())-\(name.replacingOccurrences(of: " ", with: "-")).sock"
        let listener = try VhostUserListener(path: path)
        let backend = VhostUserNetBackend()
        let served = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var outcome: VhostUserError? = nil
        let listenerFD = listener.fd
        Thread.detachNewThread {
            let c = cplatform_accept(listenerFD)
            guard c >= 0 else { outcome = .system(operation: "accept", errno: -c); served.signal(); return }
            outcome = backend.serve(VhostUserConnection(adopting: c, timeoutMilliseconds: 10_000))
            served.signal()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: testpmd)
        process.arguments = ["--lcores=0@0,1@0", "--no-huge", "-m", "256", "--no-pci", "--file-prefix=vqb\(getpid())\(abs(name.hashValue) % 100000)",
                             "--vdev", "net_virtio_user0,path=\(path),queues=1,queue_size=256\(devargs)",
                             "--", "--total-num-mbufs=8192", "--forward-mode=\(mode)", "--nb-cores=1", "--txq=1", "--rxq=1"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        // Two seconds of traffic, then Enter ends testpmd's forwarding and it prints its counts.
        Thread.sleep(forTimeInterval: 2)
        input.fileHandleForWriting.write(Data("\n".utf8))
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(served.wait(timeout: .now() + 10) == .success, "the back end did not see testpmd close")
        return (text, backend, outcome)
    }

    /// The first count after `label` in testpmd's forward statistics.
    func count(_ label: String, _ text: String) -> UInt64? {
        text.components(separatedBy: label).dropFirst().first
            .flatMap { UInt64($0.split(separator: " ", omittingEmptySubsequences: true).first ?? "") }
    }

    /// DPDK's testpmd as the front end (net_virtio_user, txonly), our back end serving it.
    @Test(.serialized, arguments: [("split", ""), ("split in-order", ",in_order=1"), ("packed", ",packed_vq=1"),
                                   ("packed in-order", ",packed_vq=1,in_order=1"), ("split mergeable", ",mrg_rxbuf=1"),
                                   ("split no mergeable", ",mrg_rxbuf=0")])
    func testpmdsVirtioUserFrontEndIsServedEveryPacketItSent(_ name: String, _ devargs: String) throws {
        guard let (text, backend, outcome) = try testpmdRun(name, devargs, mode: "txonly") else { return }
        #expect(outcome == nil, "\(name): \(String(describing: outcome))")
        let sent = count("TX-packets:", text)
        #expect(sent != nil, "\(name): no TX-packets in testpmd's output:\n\(text.suffix(2000))")
        // Packets flowed (how many says nothing: no speed is asserted).
        #expect((sent ?? 0) > 0, "\(name)")
        #expect(backend.counters.transmitted == sent, "\(name)")
        // Each packet: the 12-byte virtio-net header (VERSION_1) and testpmd's 64-byte frame.
        #expect(backend.counters.transmitBytes == (sent ?? 0) * 76, "\(name)")
        #expect(backend.handled.contains("VHOST_USER_SET_MEM_TABLE"))
        print("testpmd \(name): sent \(sent ?? 0) packets, the back end served \(backend.counters.transmitted) (\(backend.counters.transmitBytes) bytes)")
    }

    /// testpmd forwarding (io): the frames the back end writes into its receive buffers come
    /// back on its transmit queue unchanged — both directions, every byte checked.
    @Test(.serialized, arguments: [("split io", ""), ("split in-order io", ",in_order=1"), ("packed io", ",packed_vq=1"),
                                   ("packed in-order io", ",packed_vq=1,in_order=1")])
    func testpmdForwardsEveryFrameBackIntact(_ name: String, _ devargs: String) throws {
        guard let (text, backend, outcome) = try testpmdRun(name, devargs, mode: "io") else { return }
        #expect(outcome == nil, "\(name): \(String(describing: outcome))")
        let received = count("RX-packets:", text) ?? 0, sent = count("TX-packets:", text) ?? 0
        let c = backend.counters
        #expect(sent > 0, "\(name): testpmd forwarded \(sent)")
        // Every frame testpmd sent is one the back end served, and is one of its own frames, intact.
        #expect(c.transmitted == sent, "\(name)")
        #expect(c.echoedIntact == sent, "\(name)")
        #expect(c.echoedCorrupt == 0, "\(name)")
        // testpmd received at least what it sent on. The back end published more than testpmd
        // counted: exactly 512 (two rings' worth) in every run seen — a ring's worth testpmd
        // had not read when it stopped, and (we think) one filled before its statistics
        // started counting. More than two rings' worth would be frames lost on the way.
        #expect(received >= sent, "\(name)")
        #expect(c.received >= received && c.received - received <= 512, "\(name): published \(c.received), testpmd read \(received)")
        print("testpmd \(name): the back end wrote \(c.received) frames, testpmd received \(received) and sent back \(sent); served \(c.transmitted), \(c.echoedIntact) intact, \(c.echoedCorrupt) corrupt")
    }
}
}
