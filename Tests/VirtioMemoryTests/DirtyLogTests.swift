// The dirty log: one bit per 4 KiB page, marked by writers, harvested (read and cleared)
// by the migration.

import Testing
@testable import VirtioMemory

struct DirtyLogTests {
    @Test func marksEveryPageARangeTouchesAndHarvestClearsThem() {
        let log = DirtyLog(covering: 1 << 30)
        log.mark(address: 0x1000, length: 1)                 // page 1
        log.mark(address: 0x2FFF, length: 2)                 // pages 2 and 3
        log.mark(address: 63 * 0x1000 + 0x800, length: 0x1000)  // pages 63 and 64: across a word
        log.mark(address: 0x10_0000, length: 130 * 0x1000)   // pages 256 ..< 386: whole words and parts
        log.mark(address: 0x5000, length: 0)                 // nothing
        let expected = [1, 2, 3, 63, 64].map(UInt64.init) + (256..<386).map(UInt64.init)
        #expect(log.dirtyPageCount == expected.count)
        #expect(log.harvest() == expected)
        #expect(log.dirtyPageCount == 0)
        #expect(log.harvest() == [])
        // Marked again after a harvest: seen by the next one.
        log.mark(address: 0x1000, length: 8)
        #expect(log.harvest() == [1])
        #expect(log.marksOutside == 0)
    }

    @Test func aMarkPastTheSpanIsCountedNotWritten() {
        let log = DirtyLog(covering: 64 * 0x1000)
        #expect(log.span == 64 * 0x1000)
        #expect(log.bitmapBytes == 8)
        log.mark(address: 63 * 0x1000, length: 0x1001)       // reaches page 64: outside
        log.mark(address: UInt64.max - 4, length: 16)        // wraps
        #expect(log.marksOutside == 2)
        #expect(log.harvest() == [])
        log.mark(address: 63 * 0x1000, length: 0x1000)
        #expect(log.harvest() == [63])
    }

    @Test func theSpanIsRoundedUpToWholeWordsOfPages() {
        #expect(DirtyLog(covering: 1).span == 64 * 0x1000)
        #expect(DirtyLog(covering: 0).span == 64 * 0x1000)
        #expect(DirtyLog(covering: 16 << 30).bitmapBytes == (16 << 30) / 0x1000 / 8)
    }
}
