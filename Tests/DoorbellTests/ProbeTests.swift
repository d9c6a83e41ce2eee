// The capability probe: a transport the probe rejects is a typed error naming what is
// missing, io_uring denial names every io_uring transport, and the result encodes as the
// results document's machine.io_uring object.

import Doorbell
import Foundation
import Testing

extension DoorbellSuites {
    struct ProbeTests {
        /// A kernel with io_uring but without MSG_RING or the futex opcodes (5.15-like).
        static let oldKernel = DoorbellProbe(
            kernel: "5.15.0", ioUring: .init(available: true, ops: ["NOP", "READ", "WRITE", "ASYNC_CANCEL"]))

        static let denied = DoorbellProbe(
            kernel: "6.18.0",
            ioUring: .init(available: false, ops: [], reason: "io_uring_setup failed with errno 1: Operation not permitted"),
            seccomp: "filter")

        @Test func aRingWithoutMessageRingIsATypedErrorNamingTheOpcode() {
            #expect(throws: DoorbellError.transportUnavailable(
                transport: .ioUringMsgRing, missing: "IORING_OP_MSG_RING",
                reason: "kernel 5.15.0 does not offer IORING_OP_MSG_RING (added in Linux 5.18)")) {
                _ = try IoUringMsgRingDoorbell.makePair(probe: Self.oldKernel)
            }
            #expect(throws: DoorbellError.transportUnavailable(
                transport: .ioUringMsgRingBusyPoll, missing: "IORING_OP_MSG_RING",
                reason: "kernel 5.15.0 does not offer IORING_OP_MSG_RING (added in Linux 5.18)")) {
                _ = try IoUringMsgRingBusyPollDoorbell.makePair(probe: Self.oldKernel)
            }
        }

        @Test func aKernelWithoutFutexOpcodesRejectsOnlyTheIoUringFutexDoorbell() throws {
            #expect(throws: DoorbellError.transportUnavailable(
                transport: .ioUringFutex, missing: "IORING_OP_FUTEX_WAIT",
                reason: "kernel 5.15.0 does not offer IORING_OP_FUTEX_WAIT (added in Linux 6.7)")) {
                _ = try IoUringFutexDoorbell.makePair(probe: Self.oldKernel)
            }
            // The plain futex transport needs no io_uring and stays available.
            _ = try FutexDoorbell.makePair(probe: Self.oldKernel)
            #expect(Self.oldKernel.unavailability(of: .futex) == nil)
        }

        @Test func aHybridInheritsItsInnerTransportsMissingOpcode() {
            let config = HybridConfiguration<IoUringMsgRingDoorbell>(spinNanoseconds: 1_000)
            #expect(throws: DoorbellError.transportUnavailable(
                transport: .hybrid(.ioUringMsgRing), missing: "IORING_OP_MSG_RING",
                reason: "kernel 5.15.0 does not offer IORING_OP_MSG_RING (added in Linux 5.18)")) {
                _ = try HybridDoorbell<IoUringMsgRingDoorbell>.makePair(config, probe: Self.oldKernel)
            }
        }

        @Test func deniedIoUringMakesEveryIoUringTransportUnavailableAndNoOther() {
            for transport in DoorbellTransport.all {
                let reason = Self.denied.unavailability(of: transport)
                let usesIoUring = transport.id.contains("io_uring")
                #expect((reason != nil) == usesIoUring, "\(transport): \(reason ?? "available")")
            }
            #expect(throws: DoorbellError.transportUnavailable(
                transport: .ioUringEventfd, missing: "io_uring",
                reason: "io_uring_setup failed with errno 1: Operation not permitted")) {
                _ = try IoUringEventfdDoorbell.makePair(probe: Self.denied)
            }
        }

        @Test func aHybridOverASpinningTransportIsRefused() {
            #expect(throws: DoorbellError.hybridNeedsBlockingInner(inner: .busyPoll)) {
                _ = try HybridDoorbell<BusyPollDoorbell>.makePair(.init(spinNanoseconds: 1_000, inner: .allocated))
            }
        }

        @Test func theProbeEncodesAsTheResultsDocumentsIoUringObject() throws {
            let data = try JSONEncoder().encode(Self.oldKernel)
            let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let ioUring = try #require(object["io_uring"] as? [String: Any])
            #expect(ioUring["available"] as? Bool == true)
            #expect(ioUring["ops"] as? [String] == ["NOP", "READ", "WRITE", "ASYNC_CANCEL"])
            #expect(object["kernel"] as? String == "5.15.0")
            #expect(try JSONDecoder().decode(DoorbellProbe.self, from: data) == Self.oldKernel)
        }

        @Test func transportNamesRoundTripThroughTheirIds() throws {
            for transport in DoorbellTransport.all {
                #expect(DoorbellTransport(id: transport.id) == transport)
            }
            let data = try JSONEncoder().encode([DoorbellTransport.hybrid(.ioUringFutex)])
            #expect(String(decoding: data, as: UTF8.self) == #"["hybrid-io_uring-futex"]"#)
        }

        @Test func thisMachinesProbeIsConsistentWithARealRing() throws {
            let probe = DoorbellProbe.current
            print("doorbell probe: \(probe)")
            #expect(!probe.kernel.isEmpty)
            guard probe.ioUring.available else {
                #expect(probe.ioUring.reason != nil)
                try Test.cancel("io_uring is denied here: \(probe.ioUring.reason ?? "")")
            }
            // Every kernel that has io_uring has NOP; a probe that lacks it read nothing.
            #expect(probe.ioUring.ops.contains("NOP"))
            // Each transport the probe accepts can really be built.
            for transport in [DoorbellTransport.ioUringEventfd, .ioUringMsgRing, .ioUringFutex]
            where probe.unavailability(of: transport) == nil {
                switch transport {
                case .ioUringEventfd: _ = try IoUringEventfdDoorbell.makePair()
                case .ioUringMsgRing: _ = try IoUringMsgRingDoorbell.makePair()
                default: _ = try IoUringFutexDoorbell.makePair()
                }
            }
        }
    }
}
