// One vhost-user connection over an AF_UNIX stream socket: whole messages in, whole
// messages out, descriptors beside them as SCM_RIGHTS. Every wait is bounded (a peer that
// stalls mid-message is a typed timeout, not a hang), and a message refused or cut short
// leaves none of its descriptors open.

import CPlatform
#if canImport(Glibc)
import Glibc
#endif

public struct VhostUserConnection: ~Copyable {
    public let fd: Int32
    /// How long one message may take to arrive once it was waited for.
    public var timeoutMilliseconds: Int

    /// Takes ownership of a connected stream socket.
    public init(adopting fd: Int32, timeoutMilliseconds: Int = 30_000) {
        self.fd = fd
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    deinit { Glibc.close(fd) }

    /// Closes the connection now rather than when it goes out of scope.
    public consuming func close() {
        Glibc.close(fd)
        discard self
    }

    /// Connects to a back end listening at `path`.
    public static func connect(path: String, timeoutMilliseconds: Int = 30_000) throws(VhostUserError) -> VhostUserConnection {
        let fd = cplatform_unix_connect(path)
        guard fd >= 0 else { throw .system(operation: "connect(\(path))", errno: -fd) }
        return VhostUserConnection(adopting: fd, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Waits until the socket is readable; false on timeout.
    func waitReadable(milliseconds: Int) throws(VhostUserError) -> Bool {
        let rc = cplatform_wait_readable(fd, Int64(milliseconds) * 1_000_000)
        guard rc >= 0 else { throw .system(operation: "ppoll", errno: -rc) }
        return rc == 1
    }

    /// Reads exactly `count` bytes into `buffer`, collecting any descriptors that arrive.
    /// `started` says whether bytes of this message were already read (a close is then partial).
    func readFully(_ buffer: UnsafeMutableRawBufferPointer, started: Bool, fds: inout [Int32]) throws(VhostUserError) {
        var got = 0
        var incoming = [Int32](repeating: -1, count: VhostUserLimits.maxFileDescriptors)
        while got < buffer.count {
            guard try waitReadable(milliseconds: timeoutMilliseconds) else { throw .timedOut(milliseconds: timeoutMilliseconds) }
            var n: Int32 = 0, truncated: Int32 = 0
            let rc = incoming.withUnsafeMutableBufferPointer { fdBuffer in
                cplatform_recv_with_fds(fd, buffer.baseAddress! + got, buffer.count - got, fdBuffer.baseAddress!,
                                        Int32(VhostUserLimits.maxFileDescriptors - fds.count), &n, &truncated)
            }
            fds.append(contentsOf: incoming.prefix(Int(n)))
            if truncated != 0 { throw .fileDescriptorsTruncated }
            if rc == 0 { throw .peerClosed(partial: started || got > 0) }
            guard rc > 0 else { throw .system(operation: "recvmsg", errno: Int32(-rc)) }
            got += rc
        }
    }

    /// Receives one message: requests when `reply` is false (a back end), replies when true
    /// (a front end). Waits at most `timeoutMilliseconds` for it to start (nil: forever).
    public func receive(reply: Bool, waitMilliseconds: Int? = nil) throws(VhostUserError) -> VhostUserMessage {
        // Between messages a connection may be quiet for as long as its peer likes (nil);
        // once a message has started, the connection's timeout bounds the rest of it.
        if let wait = waitMilliseconds {
            guard try waitReadable(milliseconds: wait) else { throw .timedOut(milliseconds: wait) }
        } else {
            let rc = cplatform_wait_readable(fd, -1)
            guard rc >= 0 else { throw .system(operation: "ppoll", errno: -rc) }
        }
        var fds: [Int32] = []
        // Raw buffers rather than arrays: the arrays' closure-taking accessors do not carry
        // a typed error through.
        let header = UnsafeMutableRawBufferPointer.allocate(byteCount: VhostUserLimits.headerSize, alignment: 8)
        let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: VhostUserLimits.maxPayload, alignment: 8)
        defer {
            header.deallocate()
            payload.deallocate()
        }
        do throws(VhostUserError) {
            try readFully(header, started: false, fds: &fds)
            let (request, flags, size) = try VhostUserMessage.decodeHeader(UnsafeRawBufferPointer(header))
            let body = UnsafeMutableRawBufferPointer(rebasing: payload[0..<size])
            if size > 0 { try readFully(body, started: true, fds: &fds) }
            let taken = fds
            fds = []
            return try VhostUserMessage.decode(request: request, flags: flags, payload: UnsafeRawBufferPointer(body),
                                               fileDescriptors: taken, reply: reply)
        } catch {
            for fd in fds { Glibc.close(fd) }
            throw error
        }
    }

    /// Sends one message with `fileDescriptors` attached (the caller keeps its copies).
    public func send(_ message: VhostUserMessage, fileDescriptors: [Int32] = []) throws(VhostUserError) {
        let bytes = message.encoded()
        var sent = 0
        while sent < bytes.count {
            let rc = bytes.withUnsafeBytes { b in
                fileDescriptors.withUnsafeBufferPointer { f in
                    cplatform_send_with_fds(fd, b.baseAddress! + sent, b.count - sent, f.baseAddress,
                                            sent == 0 ? Int32(f.count) : 0)
                }
            }
            guard rc > 0 else { throw rc == 0 ? .peerClosed(partial: sent > 0) : .system(operation: "sendmsg", errno: Int32(-rc)) }
            sent += rc
        }
    }

    /// Sends a request and, when it has one (or `needReply` asks REPLY_ACK for one),
    /// returns the reply, checked to answer it.
    public func call(_ message: VhostUserMessage, fileDescriptors: [Int32] = []) throws(VhostUserError) -> VhostUserMessage? {
        try send(message, fileDescriptors: fileDescriptors)
        let answers: Set<VhostUserRequest> = [.getFeatures, .getProtocolFeatures, .getQueueNum, .getVringBase,
                                              .getConfig, .getMaxMemSlots, .getStatus]
        guard answers.contains(message.request) || message.needsReply else { return nil }
        var reply = try receive(reply: true, waitMilliseconds: timeoutMilliseconds)
        guard reply.request == message.request else {
            reply.closeFileDescriptors()
            throw .replyMismatch(expected: message.request, got: reply.request.rawValue)
        }
        if !answers.contains(message.request), case let .number(code) = reply.payload, code != 0 {
            throw .requestFailed(message.request, code: code)
        }
        return reply
    }
}

/// A back end's listening socket at a path (removed again when the listener goes).
public struct VhostUserListener: ~Copyable {
    public let fd: Int32
    public let path: String

    /// Listens at `path`, replacing a stale socket file left there.
    public init(path: String, backlog: Int32 = 8) throws(VhostUserError) {
        var st = stat()
        if lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFSOCK { unlink(path) }
        let fd = cplatform_unix_listen(path, backlog)
        guard fd >= 0 else { throw .system(operation: "listen(\(path))", errno: -fd) }
        self.fd = fd
        self.path = path
    }

    deinit {
        Glibc.close(fd)
        unlink(path)
    }

    /// The next front end, waiting at most `milliseconds` (nil: forever).
    public func accept(milliseconds: Int? = nil, timeoutMilliseconds: Int = 30_000) throws(VhostUserError) -> VhostUserConnection {
        if let ms = milliseconds {
            let rc = cplatform_wait_readable(fd, Int64(ms) * 1_000_000)
            guard rc >= 0 else { throw .system(operation: "ppoll", errno: -rc) }
            guard rc == 1 else { throw .timedOut(milliseconds: ms) }
        }
        let c = cplatform_accept(fd)
        guard c >= 0 else { throw .system(operation: "accept", errno: -c) }
        return VhostUserConnection(adopting: c, timeoutMilliseconds: timeoutMilliseconds)
    }
}
