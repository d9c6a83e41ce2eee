// The 32-bit word the busy-poll, futex and hybrid doorbells share between their ends:
// in ring memory the caller owns, or in a cache line of its own that the pair owns.

import Atomics

/// Where a doorbell's 32-bit word lives.
public enum WordPlacement {
    /// A cache line of its own, freed when both ends are gone.
    case allocated
    /// A 4-byte aligned word in memory the caller owns (ring memory, a shared mapping)
    /// and keeps mapped until both ends are gone. Its current value is taken as the
    /// starting point; the doorbell only ever increments it.
    case callerProvided(UnsafeMutableRawPointer)
}

/// Keeps an allocated word alive while either end holds it.
@usableFromInline
final class WordStorage: @unchecked Sendable {
    @usableFromInline let address: UnsafeMutableRawPointer
    let owned: Bool

    init(_ placement: WordPlacement) throws(DoorbellError) {
        switch placement {
        case .allocated:
            // A whole 128-byte line pair: adjacent-line prefetch would otherwise pull a
            // neighbour's writes into the waiter's spin loop.
            address = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128)
            address.initializeMemory(as: UInt8.self, repeating: 0, count: 128)
            owned = true
        case let .callerProvided(pointer):
            guard UInt(bitPattern: pointer) % 4 == 0 else {
                throw .futexWordMisaligned(address: UInt(bitPattern: pointer))
            }
            address = pointer
            owned = false
        }
    }

    @inlinable
    var atomic: UnsafeAtomic<UInt32> {
        UnsafeAtomic(at: address.assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
    }

    @inlinable
    var plain: UnsafeMutablePointer<UInt32> { address.assumingMemoryBound(to: UInt32.self) }

    deinit {
        if owned { address.deallocate() }
    }
}

/// The notifier's half of a sequence word: one thread writes the word, so a plain load and
/// a release store publish (no locked RMW). It reads the word back rather than keeping the
/// value in a register, so several notifiers of one thread on one word (a shared interrupt
/// vector rung for every queue, ends made afresh from an endpoint) never store a stale value.
@usableFromInline
struct SequencePublisher {
    @usableFromInline let word: UnsafeAtomic<UInt32>

    init(_ storage: WordStorage) {
        word = storage.atomic
    }

    /// Release: pairs with the waiter's acquire load, so everything the notifier wrote
    /// before ringing (descriptors, indices) is visible once the waiter sees the change.
    /// relaxed load: this thread wrote the last value (or set-up did, before the hand-over).
    @inlinable
    mutating func publish() {
        word.store(word.load(ordering: .relaxed) &+ 1, ordering: .releasing)
    }
}

/// The waiter's half of a sequence word: the last value it consumed.
@usableFromInline
struct SequenceObserver {
    @usableFromInline let word: UnsafeAtomic<UInt32>
    @usableFromInline var seen: UInt32

    init(_ storage: WordStorage) {
        word = storage.atomic
        seen = word.load(ordering: .relaxed)
    }

    /// How many notifications arrived since the last consume (0 if none), consuming them.
    /// Acquire: pairs with the notifier's release store (see `SequencePublisher.publish`).
    @inlinable
    mutating func consume() -> UInt32 {
        let now = word.load(ordering: .acquiring)
        let delta = now &- seen
        seen = now
        return delta
    }

    /// Whether a notification is pending, without consuming it.
    @inlinable
    func pending() -> Bool {
        word.load(ordering: .acquiring) != seen
    }
}
