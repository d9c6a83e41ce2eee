// The vhost-user codec and connection against hand-made bytes: every message shape goes
// through a real socket pair with its descriptors and comes back equal; every rule a peer
// can break (version, request number, reply bit, size, descriptor count, regions, vring
// index, config range, a peer that closes or stalls mid-message) is refused by name, and a
// refused message leaves no descriptor open.

import CPlatform
import Testing
@testable import VhostUser
#if canImport(Glibc)
import Glibc
#endif

/// A pipe whose read end is sent: once every copy of the read end is closed, a write to
/// the write end fails with EPIPE, which tells whether the receiver kept a copy (counting
/// the process's descriptors would not: other tests run beside these).
private struct Probe {
    let read: Int32, write: Int32
    init() {
        signal(SIGPIPE, SIG_IGN)
        var p: [Int32] = [-1, -1]
        precondition(pipe(&p) == 0)
        read = p[0]
        write = p[1]
    }
    /// Closes our read end and says whether any copy of it is still open.
    func readEndStillOpenAfterClosingOurs() -> Bool {
        close(read)
        var byte: UInt8 = 1
        let rc = Glibc.write(write, &byte, 1)
        close(write)
        return rc == 1
    }
}

private func socketPair() -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
    precondition(rc == 0)
    return (fds[0], fds[1])
}


/// Raw bytes of a header and payload.
private func raw(_ request: UInt32, flags: UInt32 = 1, size: UInt32? = nil, _ payload: [UInt8] = []) -> [UInt8] {
    var out: [UInt8] = []
    for v in [request, flags, size ?? UInt32(payload.count)] { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    return out + payload
}

private func le64(_ values: UInt64...) -> [UInt8] {
    var out: [UInt8] = []
    for v in values { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    return out
}

private func le32(_ values: UInt32...) -> [UInt8] {
    var out: [UInt8] = []
    for v in values { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    return out
}

struct VhostUserMessageTests {
    /// Sends `bytes` (with `fds`) on one end and receives on the other.
    func deliver(_ bytes: [UInt8], fds: [Int32] = [], reply: Bool = false, timeout: Int = 2000,
                 closeAfter: Bool = false) throws(VhostUserError) -> VhostUserMessage {
        let (a, b) = socketPair()
        let receiver = VhostUserConnection(adopting: b, timeoutMilliseconds: timeout)
        let rc = bytes.withUnsafeBytes { p in fds.withUnsafeBufferPointer { f in
            cplatform_send_with_fds(a, p.baseAddress!, p.count, f.baseAddress, Int32(f.count)) } }
        precondition(rc == bytes.count)
        if closeAfter { close(a) }
        defer { if !closeAfter { close(a) } }
        return try receiver.receive(reply: reply, waitMilliseconds: timeout)
    }

    @Test func everyShapeComesBackEqualThroughASocket() throws {
        let region = VhostUserMemoryRegion(guestPhysicalAddress: 0x1000, size: 0x20_0000, userAddress: 0x7f00_0000_0000, mmapOffset: 0)
        let second = VhostUserMemoryRegion(guestPhysicalAddress: 0x100_0000, size: 0x1000, userAddress: 0x7f10_0000_0000, mmapOffset: 0x2000)
        let address = VhostUserVringAddress(index: 1, flags: VhostUserVringAddress.logFlag, descriptorUserAddress: 0x7f00_0000_1000,
                                            usedUserAddress: 0x7f00_0000_3000, availableUserAddress: 0x7f00_0000_2000,
                                            logGuestAddress: 0x3000)
        let cases: [(VhostUserMessage, Int)] = [
            (VhostUserMessage(.getFeatures), 0),
            (VhostUserMessage(.setFeatures, payload: .number(1 << 32 | 1 << 30)), 0),
            (VhostUserMessage(.setOwner), 0),
            (VhostUserMessage(.setVringNum, payload: .vringState(index: 0, num: 256)), 0),
            (VhostUserMessage(.setVringBase, payload: .vringState(index: 1, num: VhostUserPackedBase(availableIndex: 5, availableWrap: true, usedIndex: 3, usedWrap: false).num)), 0),
            (VhostUserMessage(.setVringAddr, payload: .vringAddress(address)), 0),
            (VhostUserMessage(.setVringKick, payload: .vringFile(index: 1, hasDescriptor: true)), 1),
            (VhostUserMessage(.setVringCall, payload: .vringFile(index: 0, hasDescriptor: false)), 0),
            (VhostUserMessage(.setMemTable, payload: .memoryTable([region, second])), 2),
            (VhostUserMessage(.addMemReg, payload: .memoryRegion(second)), 1),
            (VhostUserMessage(.setLogBase, payload: .log(size: 4096, offset: 0)), 1),
            (VhostUserMessage(.setConfig, payload: .config(offset: 0, flags: 0, bytes: [1, 2, 3, 4, 5, 6])), 0),
            (VhostUserMessage(.setVringEnable, flags: VhostUserFlags.version | VhostUserFlags.needReply, payload: .vringState(index: 0, num: 1)), 0),
        ]
        for (message, fdCount) in cases {
            let probes = (0..<fdCount).map { _ in Probe() }
            let fds = probes.map(\.read)
            var got = try deliver(message.encoded(), fds: fds)
            #expect(got.request == message.request)
            #expect(got.flags == message.flags)
            #expect(got.payload == message.payload)
            #expect(got.fileDescriptors.count == fdCount)
            // Received descriptors are new ones for the same files.
            #expect(Set(got.fileDescriptors).isDisjoint(with: fds))
            got.closeFileDescriptors()
            for p in probes { #expect(!p.readEndStillOpenAfterClosingOurs()) }
        }
        // Replies decode in the other direction.
        let base = try deliver(VhostUserMessage(.getVringBase).reply(.vringState(index: 1, num: 77)).encoded(), reply: true)
        #expect(base.payload == .vringState(index: 1, num: 77))
        #expect(base.isReply)
        let features = try deliver(VhostUserMessage(.getFeatures).reply(.number(0xF00)).encoded(), reply: true)
        #expect(features.payload == .number(0xF00))
    }

    @Test func aPackedBaseKeepsBothPositionsAndWrapCounters() {
        let b = VhostUserPackedBase(availableIndex: 0x7FFF, availableWrap: false, usedIndex: 0x1234, usedWrap: true)
        #expect(b.num == 0x7FFF | 0x1234 << 16 | 0x8000_0000)
        #expect(VhostUserPackedBase(b.num) == b)
        #expect(VhostUserPackedBase(0x8000).availableWrap)
        #expect(VhostUserPackedBase(0x8000).availableIndex == 0)
    }

    @Test func everyBrokenRuleIsNamedAndLeavesNoDescriptorOpen() throws {
        func refused(_ bytes: [UInt8], fds: Int = 0, reply: Bool = false, _ expected: VhostUserError,
                     sourceLocation: SourceLocation = #_sourceLocation) {
            let probes = (0..<fds).map { _ in Probe() }
            #expect(throws: expected, sourceLocation: sourceLocation) { try deliver(bytes, fds: probes.map(\.read), reply: reply) }
            // The refused message's descriptors were closed.
            for p in probes { #expect(!p.readEndStillOpenAfterClosingOurs(), sourceLocation: sourceLocation) }
        }
        refused(raw(1, flags: 2), .badVersion(flags: 2))
        refused(raw(99), .unknownRequest(99))
        refused(raw(5, size: 5000), .payloadTooLarge(.setMemTable, size: 5000, maximum: 4096))
        refused(raw(1, flags: 1 | VhostUserFlags.reply), .unexpectedReplyFlag(.getFeatures, flags: 5))
        refused(raw(1), reply: true, .unexpectedReplyFlag(.getFeatures, flags: 1))
        refused(raw(2, [1, 2, 3, 4]), .wrongPayloadSize(.setFeatures, size: 4, expected: "8 bytes"))
        refused(raw(1, le64(0)), .wrongPayloadSize(.getFeatures, size: 8, expected: "0 bytes"))
        refused(raw(3), fds: 1, .wrongFileDescriptors(.setOwner, received: 1, expected: "0"))
        refused(raw(12, le64(0)), .wrongFileDescriptors(.setVringKick, received: 0, expected: "1"))
        refused(raw(13, le64(1 << 8)), fds: 1, .wrongFileDescriptors(.setVringCall, received: 1, expected: "0"))
        refused(raw(12, le64(1 << 9)), fds: 1, .wrongPayloadSize(.setVringKick, size: 8, expected: "8 bytes with bits 9-63 zero"))
        refused(raw(8, le32(256, 256)), .vringIndexOutOfRange(.setVringNum, index: 256, maximum: 256))
        refused(raw(9, le32(300, 0) + le64(1, 2, 3, 4)), .vringIndexOutOfRange(.setVringAddr, index: 300, maximum: 256))
        refused(raw(22, le64(0)), .unsupportedRequest(.iotlbMessage))
        // Memory tables.
        let r1 = le64(0x1000, 0x1000, 0x7000_0000, 0), r2 = le64(0x1800, 0x1000, 0x8000_0000, 0)
        refused(raw(5, le32(9, 0) + [UInt8](repeating: 0, count: 9 * 32)), fds: 9, .tooManyRegions(9, maximum: 8))
        refused(raw(5, le32(2, 0) + r1), fds: 2, .wrongPayloadSize(.setMemTable, size: 40, expected: "8 + 32 × 2 regions = 72 bytes"))
        refused(raw(5, le32(1, 0) + r1), fds: 2, .wrongFileDescriptors(.setMemTable, received: 2, expected: "1"))
        refused(raw(5, le32(1, 0) + le64(0x1000, 0, 0x7000_0000, 0)), fds: 1, .emptyRegion(index: 0))
        refused(raw(5, le32(1, 0) + le64(.max - 10, 0x1000, 0x7000_0000, 0)), fds: 1, .regionWraps(index: 0))
        refused(raw(5, le32(2, 0) + r1 + r2), fds: 2, .regionsOverlap(0, 1))
        refused(raw(5, le32(2, 0) + r1 + le64(0x10_0000, 0x1000, 0x7000_0800, 0)), fds: 2, .regionsOverlap(0, 1))
        refused(raw(37, le64(0) + r1), .wrongFileDescriptors(.addMemReg, received: 0, expected: "1"))
        // Config.
        refused(raw(25, le32(250, 10, 0) + [UInt8](repeating: 0, count: 10)), .configOutOfRange(offset: 250, size: 10, maximum: 256))
        refused(raw(25, le32(0, 10, 0) + [1, 2]), .wrongPayloadSize(.setConfig, size: 14, expected: "12 + 10 config bytes"))
    }

    @Test func aPeerThatClosesOrStallsMidMessageIsNamed() throws {
        // The header says 8 payload bytes; 3 arrive, then the peer closes.
        #expect(throws: VhostUserError.peerClosed(partial: true)) {
            try deliver(raw(2, size: 8, [1, 2, 3]), closeAfter: true)
        }
        // Half a header and a descriptor, then silence: a timeout, and the descriptor closed.
        let probe = Probe()
        #expect(throws: VhostUserError.timedOut(milliseconds: 100)) {
            try deliver(Array(raw(12, le64(0)).prefix(6)), fds: [probe.read], timeout: 100)
        }
        #expect(!probe.readEndStillOpenAfterClosingOurs())
        // Nothing at all, then a close: a clean close.
        #expect(throws: VhostUserError.peerClosed(partial: false)) { try deliver([], closeAfter: true) }
    }

    @Test func aListenerAcceptsAFrontEndAndACallGetsItsReply() throws {
        let path = "/tmp/vqb-vhost-user-test-\(getpid()).sock"
        let listener = try VhostUserListener(path: path)
        let front = try VhostUserConnection.connect(path: path, timeoutMilliseconds: 2000)
        let back = try listener.accept(milliseconds: 2000, timeoutMilliseconds: 2000)
        try front.send(VhostUserMessage(.getFeatures))
        let request = try back.receive(reply: false, waitMilliseconds: 2000)
        #expect(request.request == .getFeatures)
        try back.send(request.reply(.number(VhostUserFeatures.protocolFeatures)))
        let answer = try front.receive(reply: true, waitMilliseconds: 2000)
        #expect(answer.payload == .number(VhostUserFeatures.protocolFeatures))
        // REPLY_ACK: a failure code is the request's failure, by name.
        try front.send(VhostUserMessage(.setOwner, flags: VhostUserFlags.version | VhostUserFlags.needReply))
        let owner = try back.receive(reply: false, waitMilliseconds: 2000)
        #expect(owner.needsReply)
        try back.send(owner.reply(.number(0)))
        #expect(try front.receive(reply: true, waitMilliseconds: 2000).payload == .number(0))
        #expect(throws: VhostUserError.requestFailed(.setVringEnable, code: 1)) {
            try back.send(VhostUserMessage(.setVringEnable).reply(.number(1)))
            _ = try front.call(VhostUserMessage(.setVringEnable, flags: VhostUserFlags.version | VhostUserFlags.needReply,
                                                payload: .vringState(index: 0, num: 1)))
        }
    }
}
