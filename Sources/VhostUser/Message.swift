// One vhost-user message: the header's request and flags, the payload decoded into its
// shape, and the file descriptors that rode on it. `decode` checks everything the
// specification fixes before a byte is believed — version, request number, reply bit,
// payload size for the request, descriptor count, region count and ranges, vring index —
// and closes the descriptors of a message it refuses.

import CPlatform
#if canImport(Glibc)
import Glibc
#endif

/// A decoded payload.
public enum VhostUserPayload: Sendable, Equatable {
    case none
    /// A 64-bit number (features, protocol features, status, MTU, a reply code, a queue count).
    case number(UInt64)
    /// A vring and a 32-bit number (num, base, enable, endianness).
    case vringState(index: UInt32, num: UInt32)
    case vringAddress(VhostUserVringAddress)
    /// A vring file (SET_VRING_KICK/CALL/ERR): the vring, and whether a descriptor rides along.
    case vringFile(index: UInt8, hasDescriptor: Bool)
    case memoryTable([VhostUserMemoryRegion])
    /// ADD_MEM_REG / REM_MEM_REG: one region.
    case memoryRegion(VhostUserMemoryRegion)
    /// SET_LOG_BASE: the log's size and offset in its file.
    case log(size: UInt64, offset: UInt64)
    /// GET/SET_CONFIG: offset, flags and the bytes (for GET: as many zeros as wanted).
    case config(offset: UInt32, flags: UInt32, bytes: [UInt8])
}

public struct VhostUserMessage: Sendable, Equatable {
    public var request: VhostUserRequest
    public var flags: UInt32
    public var payload: VhostUserPayload
    /// Received descriptors, in order; the receiver owns them.
    public var fileDescriptors: [Int32]

    public init(_ request: VhostUserRequest, flags: UInt32 = VhostUserFlags.version, payload: VhostUserPayload = .none,
                fileDescriptors: [Int32] = []) {
        self.request = request
        self.flags = flags
        self.payload = payload
        self.fileDescriptors = fileDescriptors
    }

    public var isReply: Bool { flags & VhostUserFlags.reply != 0 }
    public var needsReply: Bool { flags & VhostUserFlags.needReply != 0 }

    /// Closes every descriptor the message carries.
    public mutating func closeFileDescriptors() {
        for fd in fileDescriptors { close(fd) }
        fileDescriptors = []
    }

    // MARK: - Decoding

    /// The request and size a header announces, checked before the payload is read.
    public static func decodeHeader(_ bytes: UnsafeRawBufferPointer) throws(VhostUserError)
        -> (request: VhostUserRequest, flags: UInt32, size: Int) {
        precondition(bytes.count >= VhostUserLimits.headerSize)
        let number = bytes.loadLE32(0), flags = bytes.loadLE32(4), size = Int(bytes.loadLE32(8))
        guard flags & VhostUserFlags.versionMask == VhostUserFlags.version else { throw .badVersion(flags: flags) }
        guard let request = VhostUserRequest(rawValue: number) else { throw .unknownRequest(number) }
        guard size <= VhostUserLimits.maxPayload else {
            throw .payloadTooLarge(request, size: size, maximum: VhostUserLimits.maxPayload)
        }
        return (request, flags, size)
    }

    /// Decodes a payload for `request`. `reply` says which direction is expected (a back
    /// end decodes requests, a front end replies). On any error `fds` are closed.
    public static func decode(request: VhostUserRequest, flags: UInt32, payload: UnsafeRawBufferPointer,
                              fileDescriptors fds: [Int32], reply: Bool) throws(VhostUserError) -> VhostUserMessage {
        do {
            let payloadValue = try decodePayload(request, flags: flags, payload, fds: fds.count, reply: reply)
            return VhostUserMessage(request, flags: flags, payload: payloadValue, fileDescriptors: fds)
        } catch {
            for fd in fds { close(fd) }
            throw error
        }
    }

    static func decodePayload(_ request: VhostUserRequest, flags: UInt32, _ p: UnsafeRawBufferPointer, fds: Int,
                              reply: Bool) throws(VhostUserError) -> VhostUserPayload {
        guard (flags & VhostUserFlags.reply != 0) == reply else { throw .unexpectedReplyFlag(request, flags: flags) }
        func size(_ n: Int, _ what: String = "") throws(VhostUserError) {
            guard p.count == n else { throw .wrongPayloadSize(request, size: p.count, expected: what.isEmpty ? "\(n) bytes" : what) }
        }
        func descriptors(_ n: Int) throws(VhostUserError) {
            guard fds == n else { throw .wrongFileDescriptors(request, received: fds, expected: "\(n)") }
        }
        func vring(_ index: UInt32) throws(VhostUserError) {
            guard index < VhostUserLimits.maxQueues else {
                throw .vringIndexOutOfRange(request, index: index, maximum: VhostUserLimits.maxQueues)
            }
        }
        if reply {
            // A back end's replies: a number, a vring state, or config bytes.
            try descriptors(0)
            switch request {
            case .getVringBase:
                try size(8)
                return .vringState(index: p.loadLE32(0), num: p.loadLE32(4))
            case .getConfig:
                return try config(request, p)
            default:
                try size(8)
                return .number(p.loadLE64(0))
            }
        }
        switch request {
        case .getFeatures, .setOwner, .resetOwner, .getProtocolFeatures, .getQueueNum, .resetDevice,
             .getMaxMemSlots, .getStatus:
            try size(0); try descriptors(0)
            return .none
        case .setLogFD, .setBackendReqFD:
            try size(0); try descriptors(1)
            return .none
        case .setFeatures, .setProtocolFeatures, .sendRARP, .netSetMTU, .setStatus:
            try size(8); try descriptors(0)
            return .number(p.loadLE64(0))
        case .setVringKick, .setVringCall, .setVringErr:
            try size(8)
            let word = p.loadLE64(0)
            // Bits 9–63 are reserved (zero).
            guard word & ~(VhostUserLimits.vringIndexMask | VhostUserLimits.vringNoFileDescriptor) == 0 else {
                throw .wrongPayloadSize(request, size: 8, expected: "8 bytes with bits 9-63 zero")
            }
            let hasDescriptor = word & VhostUserLimits.vringNoFileDescriptor == 0
            try descriptors(hasDescriptor ? 1 : 0)
            return .vringFile(index: UInt8(truncatingIfNeeded: word), hasDescriptor: hasDescriptor)
        case .setVringNum, .setVringBase, .getVringBase, .setVringEnable, .setVringEndian:
            try size(8); try descriptors(0)
            let index = p.loadLE32(0)
            try vring(index)
            return .vringState(index: index, num: p.loadLE32(4))
        case .setVringAddr:
            try size(VhostUserVringAddress.wireSize); try descriptors(0)
            let a = VhostUserVringAddress(index: p.loadLE32(0), flags: p.loadLE32(4), descriptorUserAddress: p.loadLE64(8),
                                          usedUserAddress: p.loadLE64(16), availableUserAddress: p.loadLE64(24),
                                          logGuestAddress: p.loadLE64(32))
            try vring(a.index)
            return .vringAddress(a)
        case .setMemTable:
            guard p.count >= 8 else { throw .wrongPayloadSize(request, size: p.count, expected: "8 + 32 per region") }
            let n = Int(p.loadLE32(0))
            guard n <= VhostUserLimits.maxRegions else { throw .tooManyRegions(n, maximum: VhostUserLimits.maxRegions) }
            try size(8 + n * VhostUserMemoryRegion.wireSize, "8 + 32 × \(n) regions = \(8 + n * 32) bytes")
            try descriptors(n)
            let regions = (0..<n).map { region(p, at: 8 + $0 * VhostUserMemoryRegion.wireSize) }
            try checkRegions(regions)
            return .memoryTable(regions)
        case .addMemReg, .remMemReg:
            try size(8 + VhostUserMemoryRegion.wireSize)
            if request == .addMemReg {
                try descriptors(1)
            } else if fds > 1 {
                throw .wrongFileDescriptors(request, received: fds, expected: "0 or 1")
            }
            let r = region(p, at: 8)
            try checkRegions([r])
            return .memoryRegion(r)
        case .setLogBase:
            try size(16); try descriptors(1)
            return .log(size: p.loadLE64(0), offset: p.loadLE64(8))
        case .getConfig, .setConfig:
            try descriptors(0)
            return try config(request, p)
        case .iotlbMessage:
            throw .unsupportedRequest(request)
        }
    }

    static func config(_ request: VhostUserRequest, _ p: UnsafeRawBufferPointer) throws(VhostUserError) -> VhostUserPayload {
        guard p.count >= 12 else { throw .wrongPayloadSize(request, size: p.count, expected: "12 + the config bytes") }
        let offset = p.loadLE32(0), length = p.loadLE32(4), flags = p.loadLE32(8)
        guard UInt64(offset) + UInt64(length) <= UInt64(VhostUserLimits.maxConfig) else {
            throw .configOutOfRange(offset: offset, size: length, maximum: VhostUserLimits.maxConfig)
        }
        guard p.count == 12 + Int(length) else {
            throw .wrongPayloadSize(request, size: p.count, expected: "12 + \(length) config bytes")
        }
        return .config(offset: offset, flags: flags, bytes: Array(p[12...]))
    }

    static func region(_ p: UnsafeRawBufferPointer, at o: Int) -> VhostUserMemoryRegion {
        VhostUserMemoryRegion(guestPhysicalAddress: p.loadLE64(o), size: p.loadLE64(o + 8),
                              userAddress: p.loadLE64(o + 16), mmapOffset: p.loadLE64(o + 24))
    }

    /// Sizes non-zero, no range wrapping, no two regions overlapping in either address space.
    static func checkRegions(_ regions: [VhostUserMemoryRegion]) throws(VhostUserError) {
        for (i, r) in regions.enumerated() {
            guard r.size != 0 else { throw .emptyRegion(index: i) }
            let (_, a) = r.guestPhysicalAddress.addingReportingOverflow(r.size - 1)
            let (_, b) = r.userAddress.addingReportingOverflow(r.size - 1)
            let (_, c) = r.mmapOffset.addingReportingOverflow(r.size - 1)
            guard !a, !b, !c else { throw .regionWraps(index: i) }
        }
        for i in regions.indices {
            for j in regions.indices where j > i {
                let x = regions[i], y = regions[j]
                let guest = x.guestPhysicalAddress <= y.guestPhysicalAddress &+ (y.size &- 1)
                    && y.guestPhysicalAddress <= x.guestPhysicalAddress &+ (x.size &- 1)
                let user = x.userAddress <= y.userAddress &+ (y.size &- 1) && y.userAddress <= x.userAddress &+ (x.size &- 1)
                guard !guest, !user else { throw .regionsOverlap(i, j) }
            }
        }
    }

    // MARK: - Encoding

    /// The message's bytes: header and payload (descriptors travel beside them).
    public func encoded() -> [UInt8] {
        var body: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { body.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { body.append(contentsOf: $0) } }
        func region(_ r: VhostUserMemoryRegion) { u64(r.guestPhysicalAddress); u64(r.size); u64(r.userAddress); u64(r.mmapOffset) }
        switch payload {
        case .none: break
        case let .number(v): u64(v)
        case let .vringState(index, num): u32(index); u32(num)
        case let .vringAddress(a):
            u32(a.index); u32(a.flags); u64(a.descriptorUserAddress); u64(a.usedUserAddress)
            u64(a.availableUserAddress); u64(a.logGuestAddress)
        case let .vringFile(index, hasDescriptor):
            u64(UInt64(index) | (hasDescriptor ? 0 : VhostUserLimits.vringNoFileDescriptor))
        case let .memoryTable(regions):
            u32(UInt32(regions.count)); u32(0)
            regions.forEach(region)
        case let .memoryRegion(r): u64(0); region(r)
        case let .log(size, offset): u64(size); u64(offset)
        case let .config(offset, flags, bytes):
            u32(offset); u32(UInt32(bytes.count)); u32(flags); body.append(contentsOf: bytes)
        }
        var out: [UInt8] = []
        out.reserveCapacity(VhostUserLimits.headerSize + body.count)
        for v in [request.rawValue, flags, UInt32(body.count)] { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        out.append(contentsOf: body)
        return out
    }

    /// The reply to this request carrying `payload`.
    public func reply(_ payload: VhostUserPayload) -> VhostUserMessage {
        VhostUserMessage(request, flags: VhostUserFlags.version | VhostUserFlags.reply, payload: payload)
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always) func loadLE32(_ o: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
    @inline(__always) func loadLE64(_ o: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
}
