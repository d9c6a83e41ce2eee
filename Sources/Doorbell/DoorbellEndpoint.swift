// A doorbell as a control plane passes it between a driver, a mediator and a device: what
// backs it (an eventfd, a 32-bit word in shared memory), not a typed end. vhost hands kick
// and call eventfds over by number and vDPA maps a notify area; here the parent's control
// plane keeps and exchanges endpoints, and only the thread that rings or sleeps makes its
// typed end from one, specialised for its transport.

/// One doorbell's shared part. Copies name the same doorbell; the backing (an fd, a word)
/// lives while any copy or any end made from it does.
public struct DoorbellEndpoint: @unchecked Sendable, CustomStringConvertible {
    public let transport: DoorbellTransport
    @usableFromInline let backing: Backing

    @usableFromInline
    indirect enum Backing {
        case eventfd(FileDescriptor)
        case word(WordStorage, privateFlag: Int32)
        case hybrid(HybridState, spinNanoseconds: UInt64, inner: DoorbellEndpoint)
    }

    init(_ transport: DoorbellTransport, _ backing: Backing) {
        self.transport = transport
        self.backing = backing
    }

    /// The eventfd's number when an eventfd backs this doorbell (what VHOST_SET_VRING_CALL
    /// or vhost-user's SET_VRING_CALL would carry), else nil.
    public var eventfd: Int32? {
        if case let .eventfd(file) = backing { return file.fd }
        return nil
    }

    public var description: String {
        if let fd = eventfd { return "\(transport) endpoint (fd \(fd))" }
        return "\(transport) endpoint"
    }

    func mismatch(_ expected: DoorbellTransport) -> DoorbellError {
        .endpointTransportMismatch(expected: expected, endpoint: transport)
    }
}

/// A transport whose doorbells can be passed around as ``DoorbellEndpoint``s: the control
/// plane makes and keeps endpoints; each thread makes its own typed end from one.
///
/// An end made from an endpoint behaves as one from ``Doorbell/makePair(_:probe:)``: one
/// thread owns it. The word-backed transports have one writer per word (the notifier keeps
/// the sequence in a register), so make one notifier per endpoint at a time.
public protocol EndpointDoorbell: Doorbell {
    static func makeEndpoint(_ configuration: Configuration, probe: DoorbellProbe) throws(DoorbellError) -> DoorbellEndpoint
    static func notifier(on endpoint: DoorbellEndpoint) throws(DoorbellError) -> Notifier
    static func waiter(on endpoint: DoorbellEndpoint) throws(DoorbellError) -> Waiter
}

extension EventfdDoorbell: EndpointDoorbell {
    public static func makeEndpoint(_ configuration: Void = (), probe: DoorbellProbe = .current) throws(DoorbellError) -> DoorbellEndpoint {
        try probe.check(.eventfd)
        return DoorbellEndpoint(.eventfd, .eventfd(try FileDescriptor()))
    }
    /// An endpoint over an eventfd this process was given (vhost-user's SET_VRING_KICK and
    /// SET_VRING_CALL): the endpoint owns the descriptor from here on.
    public static func adoptEndpoint(fd: Int32) -> DoorbellEndpoint {
        DoorbellEndpoint(.eventfd, .eventfd(FileDescriptor(adopting: fd)))
    }
    public static func notifier(on endpoint: DoorbellEndpoint) throws(DoorbellError) -> Notifier {
        guard case let .eventfd(file) = endpoint.backing else { throw endpoint.mismatch(.eventfd) }
        return Notifier(eventfd: file)
    }
    public static func waiter(on endpoint: DoorbellEndpoint) throws(DoorbellError) -> Waiter {
        guard case let .eventfd(file) = endpoint.backing else { throw endpoint.mismatch(.eventfd) }
        return Waiter(eventfd: file)
    }
}

extension BusyPollDoorbell: EndpointDoorbell {
    public static func makeEndpoint(_ configuration: WordPlacement = .allocated,
                                    probe: DoorbellProbe = .current) throws(DoorbellError) -> DoorbellEndpoint {
        try probe.check(.busyPoll)
        return DoorbellEndpoint(.busyPoll, .word(try WordStorage(configuration), privateFlag: 1))
    }
    public static func notifier(on endpoint: DoorbellEndpoint) throws(DoorbellError) -> Notifier {
        guard endpoint.transport == .busyPoll, case let .word(storage, _) = endpoint.backing else { throw endpoint.mismatch(.busyPoll) }
        return Notifier(storage: storage)
    }
    public static func waiter(on endpoint: DoorbellEndpoint) throws(DoorbellError) -> Waiter {
        guard endpoint.transport == .busyPoll, case let .word(storage, _) = endpoint.backing else { throw endpoint.mismatch(.busyPoll) }
        return Waiter(storage: storage)
    }
}

extension FutexDoorbell: EndpointDoorbell {
    public static func makeEndpoint(_ configuration: FutexConfiguration = .init(),
                                    probe: DoorbellProbe = .current) throws(DoorbellError) -> DoorbellEndpoint {
        try probe.check(.futex)
        return DoorbellEndpoint(.futex, .word(try WordStorage(configuration.word), privateFlag: configuration.processShared ? 0 : 1))
    }
    public static func notifier(on endpoint: DoorbellEndpoint) throws(DoorbellError) -> Notifier {
        guard endpoint.transport == .futex, case let .word(storage, flag) = endpoint.backing else { throw endpoint.mismatch(.futex) }
        return Notifier(storage: storage, privateFlag: flag)
    }
    public static func waiter(on endpoint: DoorbellEndpoint) throws(DoorbellError) -> Waiter {
        guard endpoint.transport == .futex, case let .word(storage, flag) = endpoint.backing else { throw endpoint.mismatch(.futex) }
        return Waiter(storage: storage, privateFlag: flag)
    }
}

extension HybridDoorbell: EndpointDoorbell where Inner: EndpointDoorbell {
    public static func makeEndpoint(_ configuration: HybridConfiguration<Inner>,
                                    probe: DoorbellProbe = .current) throws(DoorbellError) -> DoorbellEndpoint {
        let inner = Inner.transport(configuration.inner)
        guard inner.blocks else { throw .hybridNeedsBlockingInner(inner: inner) }
        try probe.check(transport(configuration))
        let innerEndpoint = try Inner.makeEndpoint(configuration.inner, probe: probe)
        return DoorbellEndpoint(.hybrid(inner), .hybrid(try HybridState(), spinNanoseconds: configuration.spinNanoseconds,
                                                        inner: innerEndpoint))
    }
    public static func notifier(on endpoint: DoorbellEndpoint) throws(DoorbellError) -> Notifier {
        guard case let .hybrid(state, _, inner) = endpoint.backing else { throw endpoint.mismatch(.hybrid(.eventfd)) }
        return Notifier(state: state, inner: try Inner.notifier(on: inner))
    }
    public static func waiter(on endpoint: DoorbellEndpoint) throws(DoorbellError) -> Waiter {
        guard case let .hybrid(state, spin, inner) = endpoint.backing else { throw endpoint.mismatch(.hybrid(.eventfd)) }
        return Waiter(state: state, inner: try Inner.waiter(on: inner), spinNanoseconds: spin)
    }
}
