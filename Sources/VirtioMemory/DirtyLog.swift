// The dirty log a migration reads (vhost's VHOST_SET_LOG_BASE / VHOST_F_LOG_ALL, QEMU's
// dirty bitmap): one bit per 4 KiB page of the driver's address space, set by whoever writes
// into the driver's memory on the device's behalf (used entries, received payloads), read
// and cleared word by word by the migration while the writers go on.
//
// Ordering: a writer marks a page after its write to the page (releasing), the migration
// clears a word (acquiring) before it copies the word's pages, so a copy that follows a
// cleared bit sees every write the bit stood for; a write that lands after the clear marks
// the page again, and the next pass copies it again.

import Atomics

public final class DirtyLog: @unchecked Sendable {
    /// vhost's VHOST_LOG_PAGE: the log's granule.
    public static let pageShift = 12
    public static let pageSize: UInt64 = 1 << 12

    /// The address space covered: [0, span).
    public let span: UInt64
    @usableFromInline let words: UnsafeMutablePointer<UInt64.AtomicRepresentation>
    @usableFromInline let wordCount: Int
    /// Marks that fell (partly) outside the span: counted, never written past the bitmap.
    @usableFromInline let outside: UnsafeMutablePointer<UInt64.AtomicRepresentation>

    /// A log for addresses below `span` (rounded up to whole words of pages).
    public init(covering span: UInt64) {
        let pages = (span &+ Self.pageSize &- 1) >> UInt64(Self.pageShift)
        wordCount = max(1, Int((pages &+ 63) / 64))
        self.span = UInt64(wordCount) * 64 * Self.pageSize
        words = .allocate(capacity: wordCount)
        words.initialize(repeating: .init(0), count: wordCount)
        outside = .allocate(capacity: 1)
        outside.initialize(to: .init(0))
    }

    deinit {
        words.deallocate()
        outside.deallocate()
    }

    /// Bytes the bitmap takes (what VHOST_SET_LOG_BASE's region must hold).
    public var bitmapBytes: Int { wordCount * 8 }

    /// Marks every page of [address, address + length) dirty (see `DirtyLogWriter.mark`).
    @inlinable
    public func mark(address: UInt64, length: UInt64) { writer.mark(address: address, length: length) }

    /// The writing end, a value holding the bitmap's pointers and no reference: what a
    /// datapath thread marks through, so marking retains nothing. Valid while the log lives.
    @inlinable public var writer: DirtyLogWriter { DirtyLogWriter(words: words, span: span, outside: outside) }

    /// The dirty pages' numbers (address >> 12), ascending, each word cleared as it is read.
    /// acquiring: pairs with `mark`'s releasing OR.
    public func harvest() -> [UInt64] {
        var out: [UInt64] = []
        for w in 0..<wordCount {
            let a = UnsafeAtomic<UInt64>(at: words + w)
            guard a.load(ordering: .relaxed) != 0 else { continue }
            var bits = a.exchange(0, ordering: .acquiring)
            while bits != 0 {
                out.append(UInt64(w) * 64 + UInt64(bits.trailingZeroBitCount))
                bits &= bits &- 1
            }
        }
        return out
    }

    /// How many pages are dirty now, without clearing them.
    public var dirtyPageCount: Int {
        (0..<wordCount).reduce(0) { $0 + UnsafeAtomic<UInt64>(at: words + $1).load(ordering: .acquiring).nonzeroBitCount }
    }

    /// Marks that reached past the covered span (a writer's address the log cannot hold).
    public var marksOutside: UInt64 { UnsafeAtomic<UInt64>(at: outside).load(ordering: .relaxed) }
}

/// `DirtyLog`'s writing end (see `DirtyLog.writer`).
public struct DirtyLogWriter: @unchecked Sendable {
    @usableFromInline let words: UnsafeMutablePointer<UInt64.AtomicRepresentation>
    @usableFromInline let span: UInt64
    @usableFromInline let outside: UnsafeMutablePointer<UInt64.AtomicRepresentation>

    @inlinable
    init(words: UnsafeMutablePointer<UInt64.AtomicRepresentation>, span: UInt64,
         outside: UnsafeMutablePointer<UInt64.AtomicRepresentation>) {
        self.words = words
        self.span = span
        self.outside = outside
    }

    /// Marks every page of [address, address + length) dirty. One atomic OR per word of
    /// pages touched (a 64-byte payload: one). releasing: pairs with `harvest()`'s
    /// acquiring exchange, so the migration that sees the bit sees the write before it.
    /// A range reaching past the log's span is counted (`marksOutside`), not written.
    @inlinable
    public func mark(address: UInt64, length: UInt64) {
        guard length > 0 else { return }
        let (end, overflow) = address.addingReportingOverflow(length)
        guard !overflow, end <= span else {
            UnsafeAtomic<UInt64>(at: outside).wrappingIncrement(ordering: .relaxed)
            return
        }
        var page = address >> UInt64(DirtyLog.pageShift)
        let last = (end &- 1) >> UInt64(DirtyLog.pageShift)
        while page <= last {
            let word = Int(page >> 6)
            let first = page & 63
            let through = min(last, page | 63) & 63
            let bits = (through - first == 63) ? ~UInt64(0) : ((UInt64(1) << (through - first + 1)) &- 1) << first
            UnsafeAtomic<UInt64>(at: words + word).loadThenBitwiseOr(with: bits, ordering: .releasing)
            page = (page | 63) &+ 1
        }
    }
}
