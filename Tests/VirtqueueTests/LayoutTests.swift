// Layouts against Linux's <linux/virtio_ring.h>: vring_init / vring_size for split rings,
// struct vring_packed_desc(_event) for packed, vring_need_event, and the flag values.

import CVirtioUAPI
import Testing
@testable import Virtqueue

struct LayoutTests {
    static let splitSizes = [1, 2, 4, 8, 16, 64, 128, 256, 512, 1024, 4096, 16384, 32768]

    @Test(arguments: splitSizes, [4, 64, 4096])
    func splitLayoutMatchesVringInit(queueSize: Int, alignment: Int) throws {
        let ours = try SplitLayout(queueSize: queueSize, usedAlignment: alignment)
        let linux = uapi_vring_layout(UInt32(queueSize), UInt(alignment))
        #expect(UInt64(ours.totalSize) == linux.size)
        #expect(UInt64(ours.availableRingOffset) == linux.avail_offset)
        #expect(UInt64(ours.usedRingOffset) == linux.used_offset)
        #expect(UInt64(ours.usedEventOffset) == linux.used_event_offset)
        #expect(UInt64(ours.availableEventOffset) == linux.avail_event_offset)
        #expect(UInt64(SplitLayout.availableEntryOffset(0)) == linux.avail_ring0_offset)
        #expect(UInt64(SplitLayout.usedEntryOffset(0)) == linux.used_ring0_offset)
        #expect(UInt64(SplitLayout.descriptorSize) == uapi_sizeof_vring_desc())
        #expect(UInt64(SplitLayout.usedEntryOffset(1) - SplitLayout.usedEntryOffset(0)) == uapi_sizeof_vring_used_elem())
    }

    @Test(arguments: [0, 3, 6, 100, 65536, 32769])
    func splitRejectsSizesThatAreNotPowersOfTwoUpTo32768(queueSize: Int) {
        #expect(throws: VirtqueueError.invalidQueueSize(queue: 0, size: queueSize, layout: "split")) {
            try SplitLayout(queueSize: queueSize)
        }
    }

    @Test(arguments: [1, 3, 100, 255, 256, 1000, 32768])
    func packedLayoutMatchesTheUAPIStructs(queueSize: Int) throws {
        let ours = try PackedLayout(queueSize: queueSize)
        #expect(UInt64(PackedLayout.descriptorSize) == uapi_sizeof_vring_packed_desc())
        #expect(UInt64(PackedLayout.addressOffset) == uapi_offsetof_packed_desc_addr())
        #expect(UInt64(PackedLayout.lengthOffset) == uapi_offsetof_packed_desc_len())
        #expect(UInt64(PackedLayout.idOffset) == uapi_offsetof_packed_desc_id())
        #expect(UInt64(PackedLayout.flagsOffset) == uapi_offsetof_packed_desc_flags())
        #expect(UInt64(PackedLayout.eventSuppressionSize) == uapi_sizeof_vring_packed_desc_event())
        #expect(UInt64(PackedLayout.eventOffsetWrapOffset) == uapi_offsetof_packed_event_off_wrap())
        #expect(UInt64(PackedLayout.eventFlagsOffset) == uapi_offsetof_packed_event_flags())
        #expect(ours.descriptorRingSize == queueSize * 16)
        #expect(ours.driverEventOffset % PackedLayout.eventSuppressionAlignment == 0)
        #expect(ours.driverEventOffset >= ours.descriptorRingSize)
        #expect(ours.deviceEventOffset >= ours.driverEventOffset + PackedLayout.eventSuppressionSize)
    }

    @Test func packedRejectsZeroAndOversizedQueues() {
        #expect(throws: VirtqueueError.invalidQueueSize(queue: 0, size: 0, layout: "packed")) { try PackedLayout(queueSize: 0) }
        #expect(throws: VirtqueueError.invalidQueueSize(queue: 0, size: 32769, layout: "packed")) { try PackedLayout(queueSize: 32769) }
    }

    @Test func flagValuesMatchTheUAPIHeader() {
        #expect(DescriptorFlags.next == uapi_desc_f_next())
        #expect(DescriptorFlags.write == uapi_desc_f_write())
        #expect(DescriptorFlags.indirect == uapi_desc_f_indirect())
        #expect(DescriptorFlags.available == uapi_packed_desc_f_avail())
        #expect(DescriptorFlags.used == uapi_packed_desc_f_used())
        #expect(SplitRingFlags.noNotify == uapi_used_f_no_notify())
        #expect(SplitRingFlags.noInterrupt == uapi_avail_f_no_interrupt())
        #expect(PackedEventFlags.enable == uapi_packed_event_flag_enable())
        #expect(PackedEventFlags.disable == uapi_packed_event_flag_disable())
        #expect(PackedEventFlags.descriptor == uapi_packed_event_flag_desc())
        #expect(VirtioFeatures.indirectDescriptors.rawValue == 1 << UInt64(uapi_f_indirect_desc()))
        #expect(VirtioFeatures.eventIndex.rawValue == 1 << UInt64(uapi_f_event_idx()))
    }

    @Test func needsEventAgreesWithVringNeedEventEverywhere() {
        // Exhaustive over a window that includes the 16-bit wrap, plus a pseudo-random sweep.
        var mismatches = 0
        for old in [UInt16(0), 1, 100, 65530, 65535] {
            for delta in UInt16(0)..<40 {
                let new = old &+ delta
                for e in UInt16(0)..<50 {
                    let event = old &- 5 &+ e
                    if needsEvent(event: event, new: new, old: old) != (uapi_vring_need_event(event, new, old) != 0) { mismatches += 1 }
                }
            }
        }
        var x: UInt64 = 0x1234_5678
        for _ in 0..<100_000 {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            let e = UInt16(truncatingIfNeeded: x >> 16), n = UInt16(truncatingIfNeeded: x >> 32), o = UInt16(truncatingIfNeeded: x >> 48)
            if needsEvent(event: e, new: n, old: o) != (uapi_vring_need_event(e, n, o) != 0) { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test func notificationDataPacksQueueOffsetAndWrap() {
        let split = NotificationData(queue: 3, splitAvailableIndex: 0xBEEF)
        #expect(split.rawValue == 0xBEEF_0003)
        let packed = NotificationData(queue: 7, packedNextOffset: 0x1234, wrapCounter: true)
        #expect(packed.rawValue == 0x9234_0007)
        #expect(packed.queue == 7)
        #expect(packed.nextOffset == 0x1234)
        #expect(packed.nextWrap)
        #expect(!NotificationData(queue: 7, packedNextOffset: 5, wrapCounter: false).nextWrap)
    }
}
