// Everything a vhost-user peer can get wrong, by name. A message that breaks a rule is
// refused whole: its descriptors are closed before the error is thrown.

public enum VhostUserError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The header's version bits are not 1.
    case badVersion(flags: UInt32)
    /// A request number the specification does not define (or one this side does not speak).
    case unknownRequest(UInt32)
    /// A request the back end knows but does not offer (its feature was not negotiated).
    case unsupportedRequest(VhostUserRequest)
    /// A reply where a request was expected, or the other way round.
    case unexpectedReplyFlag(VhostUserRequest, flags: UInt32)
    /// The header's size field is beyond the largest payload accepted.
    case payloadTooLarge(VhostUserRequest, size: Int, maximum: Int)
    /// The payload's size is not the request's.
    case wrongPayloadSize(VhostUserRequest, size: Int, expected: String)
    /// The message carries a number of descriptors the request does not take.
    case wrongFileDescriptors(VhostUserRequest, received: Int, expected: String)
    /// More descriptors were sent than a message may carry (the kernel closed the rest).
    case fileDescriptorsTruncated
    /// A memory table of more regions than allowed.
    case tooManyRegions(Int, maximum: Int)
    /// A memory region of size 0.
    case emptyRegion(index: Int)
    /// A memory region whose guest, user or file range wraps past 2^64.
    case regionWraps(index: Int)
    /// Two memory regions overlap in guest-physical or user address space.
    case regionsOverlap(Int, Int)
    /// A vring index at or beyond the queues a device may have.
    case vringIndexOutOfRange(VhostUserRequest, index: UInt32, maximum: Int)
    /// GET/SET_CONFIG addressing bytes past the config space's end.
    case configOutOfRange(offset: UInt32, size: UInt32, maximum: Int)
    /// The peer closed the connection (mid-message when `partial` is set).
    case peerClosed(partial: Bool)
    /// No (complete) message arrived within the timeout.
    case timedOut(milliseconds: Int)
    /// A system call failed.
    case system(operation: String, errno: Int32)
    /// A reply that does not answer the request sent.
    case replyMismatch(expected: VhostUserRequest, got: UInt32)
    /// REPLY_ACK: the back end answered a request with a failure code.
    case requestFailed(VhostUserRequest, code: UInt64)
    // The back end's state machine.
    /// A request that needs an earlier one first (or came twice where once is the rule).
    case outOfOrder(VhostUserRequest, requires: String)
    /// SET_FEATURES / SET_PROTOCOL_FEATURES with bits the back end did not offer.
    case featuresNotOffered(VhostUserRequest, requested: UInt64, offered: UInt64)
    /// A vring size that is zero, too large, or (split) not a power of two.
    case invalidRingSize(index: UInt32, size: UInt32)
    /// A ring area whose front-end address no region of the memory table covers.
    case ringNotMapped(index: UInt32, area: String, userAddress: UInt64)
    /// A memory table region could not be mapped (the file is shorter than the region…).
    case regionNotMapped(index: Int, reason: String)
    /// A memory table replaced while rings are running.
    case memoryTableWhileRunning
    /// The device half refused the ring (its state or layout).
    case device(String)

    public var description: String {
        switch self {
        case let .badVersion(flags): "vhost-user header flags 0x\(String(flags, radix: 16)) do not carry version 1"
        case let .unknownRequest(n): "vhost-user request \(n) is not one this side speaks"
        case let .unsupportedRequest(r): "\(r.name) is not offered (its feature was not negotiated)"
        case let .unexpectedReplyFlag(r, flags): "\(r.name) with flags 0x\(String(flags, radix: 16)): the reply bit is wrong for its direction"
        case let .payloadTooLarge(r, size, maximum): "\(r.name) announces a \(size)-byte payload; at most \(maximum) are accepted"
        case let .wrongPayloadSize(r, size, expected): "\(r.name) has a \(size)-byte payload; it takes \(expected)"
        case let .wrongFileDescriptors(r, received, expected): "\(r.name) carries \(received) file descriptors; it takes \(expected)"
        case .fileDescriptorsTruncated: "a vhost-user message carried more file descriptors than one message may"
        case let .tooManyRegions(n, maximum): "a memory table of \(n) regions; at most \(maximum)"
        case let .emptyRegion(index): "memory region \(index) has size 0"
        case let .regionWraps(index): "memory region \(index) wraps past the end of the address space"
        case let .regionsOverlap(a, b): "memory regions \(a) and \(b) overlap"
        case let .vringIndexOutOfRange(r, index, maximum): "\(r.name) names vring \(index); a device has at most \(maximum)"
        case let .configOutOfRange(offset, size, maximum): "config access of \(size) bytes at \(offset) passes the \(maximum)-byte config space"
        case let .peerClosed(partial): partial ? "the vhost-user peer closed the connection mid-message" : "the vhost-user peer closed the connection"
        case let .timedOut(ms): "no complete vhost-user message within \(ms) ms"
        case let .system(operation, errno): "\(operation) failed: errno \(errno)"
        case let .replyMismatch(expected, got): "a reply to request \(got) arrived where \(expected.name)'s was expected"
        case let .requestFailed(r, code): "the back end refused \(r.name) (code \(code))"
        case let .outOfOrder(r, requires): "\(r.name) out of order: it needs \(requires)"
        case let .featuresNotOffered(r, requested, offered): "\(r.name) 0x\(String(requested, radix: 16)) asks for bits outside the offered 0x\(String(offered, radix: 16))"
        case let .invalidRingSize(index, size): "vring \(index): size \(size) is not a valid queue size"
        case let .ringNotMapped(index, area, address): "vring \(index): the \(area) at front-end address 0x\(String(address, radix: 16)) is in no region of the memory table"
        case let .regionNotMapped(index, reason): "memory region \(index) could not be mapped: \(reason)"
        case .memoryTableWhileRunning: "VHOST_USER_SET_MEM_TABLE while rings are running"
        case let .device(reason): "the device refused the ring: \(reason)"
        }
    }
}
