import Foundation
import Synchronization
import Testing
@testable import VQBenchKit

struct SpecialisedDatapathTests {
    // Names as this package's release binary has them (demangled by the Swift runtime).
    static let genericTransmit = "$s9Mediation11DriverQueueV8transmit7packets12payloadBytes5batch7latency13firstSequence13stampsPayloadAA14TrafficOutcomeVSi_S2iSbs6UInt64VSbtF"
    static let packedPostBurstWitness = "$s9Virtqueue12PackedDriverVAA0aC4HalfA2aDP9postBurst5count_6postedS2i_AA6BufferVSiXEySi_s6UInt16VtXEtFTW"
    static let endpointWitness = "$s8Doorbell08BusyPollA0OAA08EndpointA0A2aDP8notifier2on8NotifierQzAA0aD0V_tAA0A5ErrorOYKFZTW"

    @Test func theRuntimeDemangles() {
        #expect(SpecialisedDatapath.demangle(Self.genericTransmit).hasPrefix("Mediation.DriverQueue.transmit(packets:"))
        #expect(SpecialisedDatapath.demangle("memcpy") == "memcpy")
    }

    @Test func genericLoopBodiesAndHotWitnessesAreOffenders() {
        let offenders = SpecialisedDatapath.offenders([Self.genericTransmit, Self.packedPostBurstWitness, Self.endpointWitness, "memcpy"])
        #expect(offenders.count == 2)
        #expect(offenders.contains { $0.hasPrefix("Mediation.DriverQueue.transmit") })
        #expect(offenders.contains { $0.hasPrefix("protocol witness for Virtqueue.VirtqueueDriverHalf.postBurst") })
    }

    @Test func specialisedCopiesSetUpAndClosuresAreJudgedByWhatTheyAre() {
        #expect(!SpecialisedDatapath.isGenericDatapath(
            "generic specialization <Virtqueue.PackedDriver, Doorbell.BusyPollDoorbell.Notifier, Doorbell.BusyPollDoorbell.Waiter> of Mediation.DriverQueue.transmit(packets: Swift.Int)"))
        #expect(!SpecialisedDatapath.isGenericDatapath("Mediation.DriverQueue.init(index: Swift.UInt16, driver: A, kick: B, call: C)"))
        #expect(SpecialisedDatapath.isGenericDatapath("closure #1 (Swift.UnsafeBufferPointer<Swift.UInt64>) -> Swift.Int in Mediation.DriverQueue.transmit(packets: Swift.Int)"))
        #expect(SpecialisedDatapath.isGenericDatapath("Mediation.runDeviceLoop<A, B, C, D>(_: inout [Mediation.DeviceQueue<A, B>])"))
        // Setting up doorbells through witnesses is control path.
        #expect(!SpecialisedDatapath.isGenericDatapath(SpecialisedDatapath.demangle(Self.endpointWitness)))
    }

    @Test func callgrindNamesAreReadBackUncompressed() {
        let text = "fn=(1) main\ncfn=(2) $s9Mediation13runDeviceLoop_x\ncalls=3 0\n0 5\nfn=(2)\n0 7\ncfn=(1)\n"
        #expect(InstructionCounter.functionNames(text) == ["main", "$s9Mediation13runDeviceLoop_x"])
    }
}

struct CallgrindJobTests {
    struct Failed: Error, Equatable { var job: Int }

    @Test func resultsComeBackInJobOrderWhateverFinishesFirst() throws {
        let jobs: [@Sendable () throws -> CallgrindJobResult] = (0..<7).map { i in
            { usleep(UInt32((7 - i) * 2_000)); return .functions(["job\(i)"]) }
        }
        let results = try CallgrindJobResult.runAll(jobs, width: 3)
        #expect(results.count == 7)
        for (i, r) in results.enumerated() {
            guard case let .functions(names) = r else { Issue.record("job \(i) came back as a count"); continue }
            #expect(names == ["job\(i)"])
        }
    }

    @Test func theFirstFailingJobIsThrownAfterEveryJobRan() {
        let ran = Mutex(Set<Int>())
        let jobs: [@Sendable () throws -> CallgrindJobResult] = (0..<6).map { i in
            {
                ran.withLock { _ = $0.insert(i) }
                if i == 2 || i == 4 { throw Failed(job: i) }
                return .count(CallgrindCount(instructions: UInt64(i), allocations: 0, referenceCounting: 0))
            }
        }
        #expect(throws: Failed(job: 2)) { try CallgrindJobResult.runAll(jobs, width: 2) }
        #expect(ran.withLock { $0 } == Set(0..<6))
    }
}
