// Spec-written peers: the simplest code that follows virtio 1.2 §2.7 / §2.8 to the letter,
// reading and writing raw ring bytes. Written apart from Sources/Virtqueue (like rust-vmm's
// MockSplitQueue) so each half is tested against something that is not itself. The hostile
// tests use the same raw writers to break rules on purpose.

import VirtioMemory
@testable import Virtqueue

/// Raw little-endian access to an arena's bytes by guest address.
struct RawMemory {
    let memory: GuestMemory
    func pointer(_ gpa: UInt64, _ length: Int = 1) -> UnsafeMutableRawPointer {
        try! memory.translate(gpa, length: UInt64(length))
    }
    func u16(_ gpa: UInt64) -> UInt16 { UInt16(littleEndian: pointer(gpa, 2).loadUnaligned(as: UInt16.self)) }
    func u32(_ gpa: UInt64) -> UInt32 { UInt32(littleEndian: pointer(gpa, 4).loadUnaligned(as: UInt32.self)) }
    func u64(_ gpa: UInt64) -> UInt64 { UInt64(littleEndian: pointer(gpa, 8).loadUnaligned(as: UInt64.self)) }
    func set16(_ gpa: UInt64, _ v: UInt16) { pointer(gpa, 2).storeBytes(of: v.littleEndian, as: UInt16.self) }
    func set32(_ gpa: UInt64, _ v: UInt32) { pointer(gpa, 4).storeBytes(of: v.littleEndian, as: UInt32.self) }
    func set64(_ gpa: UInt64, _ v: UInt64) { pointer(gpa, 8).storeBytes(of: v.littleEndian, as: UInt64.self) }
}

/// A split-ring driver written from §2.7.13: descriptors, available ring entry, idx.
struct SpecSplitDriver {
    let raw: RawMemory
    let addresses: RingAddresses
    let queueSize: Int
    var availIdx: UInt16 = 0

    init(arena: QueueArena) {
        raw = RawMemory(memory: arena.memory)
        addresses = arena.addresses
        queueSize = arena.queueSize
    }

    /// struct virtq_desc at index i: le64 addr, le32 len, le16 flags, le16 next.
    func writeDescriptor(_ i: Int, addr: UInt64, len: UInt32, flags: UInt16, next: UInt16 = 0) {
        let base = addresses.descriptorArea + UInt64(16 * i)
        raw.set64(base, addr)
        raw.set32(base + 8, len)
        raw.set16(base + 12, flags)
        raw.set16(base + 14, next)
    }

    /// Writes an indirect table entry at `table` + 16 * i (same struct as the table).
    func writeIndirectEntry(table: UInt64, _ i: Int, addr: UInt64, len: UInt32, flags: UInt16, next: UInt16 = 0) {
        let base = table + UInt64(16 * i)
        raw.set64(base, addr)
        raw.set32(base + 8, len)
        raw.set16(base + 12, flags)
        raw.set16(base + 14, next)
    }

    /// avail->ring[idx % qsz] = head; then idx += 1 (§2.7.13.2–3).
    mutating func makeAvailable(_ heads: [UInt16]) {
        for h in heads {
            raw.set16(addresses.driverArea + 4 + UInt64(2 * (Int(availIdx) % queueSize)), h)
            availIdx &+= 1
        }
        raw.set16(addresses.driverArea + 2, availIdx)
    }

    func setAvailableIndex(_ v: UInt16) { raw.set16(addresses.driverArea + 2, v) }
    var usedIdx: UInt16 { raw.u16(addresses.deviceArea + 2) }
    /// used->ring[i % qsz] as (id, len).
    func usedEntry(_ i: Int) -> (id: UInt32, len: UInt32) {
        let e = addresses.deviceArea + 4 + UInt64(8 * (i % queueSize))
        return (raw.u32(e), raw.u32(e + 4))
    }
    /// avail_event, at the end of the used ring.
    var availEvent: UInt16 { raw.u16(addresses.deviceArea + 4 + UInt64(8 * queueSize)) }
    var usedFlags: UInt16 { raw.u16(addresses.deviceArea) }
}

/// A split-ring device written from §2.7: reads avail idx and heads, follows next, writes
/// used entries and idx. Trusts the ring (the real device half is the one that must not).
struct SpecSplitDevice {
    let raw: RawMemory
    let addresses: RingAddresses
    let queueSize: Int
    var lastAvail: UInt16 = 0
    var usedIdx: UInt16 = 0

    init(arena: QueueArena) {
        raw = RawMemory(memory: arena.memory)
        addresses = arena.addresses
        queueSize = arena.queueSize
    }

    /// Every head made available and not yet taken, with its chain as (addr, len, flags).
    mutating func takeAvailable() -> [(head: UInt16, chain: [(UInt64, UInt32, UInt16)])] {
        let idx = raw.u16(addresses.driverArea + 2)
        var out: [(UInt16, [(UInt64, UInt32, UInt16)])] = []
        while lastAvail != idx {
            let head = raw.u16(addresses.driverArea + 4 + UInt64(2 * (Int(lastAvail) % queueSize)))
            var chain: [(UInt64, UInt32, UInt16)] = []
            var i = head
            while true {
                let d = addresses.descriptorArea + UInt64(16 * Int(i))
                let flags = raw.u16(d + 12)
                chain.append((raw.u64(d), raw.u32(d + 8), flags))
                if flags & 1 == 0 { break }
                i = raw.u16(d + 14)
            }
            out.append((head, chain))
            lastAvail &+= 1
        }
        return out
    }

    mutating func markUsed(_ id: UInt32, len: UInt32) {
        let e = addresses.deviceArea + 4 + UInt64(8 * (Int(usedIdx) % queueSize))
        raw.set32(e, id)
        raw.set32(e + 4, len)
        usedIdx &+= 1
        raw.set16(addresses.deviceArea + 2, usedIdx)
    }

    func setUsedIndex(_ v: UInt16) { raw.set16(addresses.deviceArea + 2, v) }
    func writeUsedEntry(slot: Int, id: UInt32, len: UInt32) {
        let e = addresses.deviceArea + 4 + UInt64(8 * (slot % queueSize))
        raw.set32(e, id)
        raw.set32(e + 4, len)
    }
    /// used_event, at the end of the available ring.
    var usedEvent: UInt16 { raw.u16(addresses.driverArea + 4 + UInt64(2 * queueSize)) }
    var availFlags: UInt16 { raw.u16(addresses.driverArea) }
}

/// A packed-ring driver written from §2.8.21: AVAIL = wrap counter, USED = !wrap, the id in
/// each descriptor, the head's flags written last.
struct SpecPackedDriver {
    let raw: RawMemory
    let addresses: RingAddresses
    let queueSize: Int
    var next = 0
    var wrap = true

    init(arena: QueueArena) {
        raw = RawMemory(memory: arena.memory)
        addresses = arena.addresses
        queueSize = arena.queueSize
    }

    func descriptorGPA(_ i: Int) -> UInt64 { addresses.descriptorArea + UInt64(16 * i) }

    /// Raw write of struct pvirtq_desc at position i.
    func writeDescriptor(_ i: Int, addr: UInt64, len: UInt32, id: UInt16, flags: UInt16) {
        let d = descriptorGPA(i)
        raw.set64(d, addr)
        raw.set32(d + 8, len)
        raw.set16(d + 12, id)
        raw.set16(d + 14, flags)
    }

    func availBits(_ w: Bool) -> UInt16 { w ? 1 << 7 : 1 << 15 }

    /// Makes one chain available: (addr, len, write) for each element; the head's flags last.
    mutating func makeAvailable(id: UInt16, _ chain: [(UInt64, UInt32, Bool)], extraFlags: UInt16 = 0) {
        var head: (position: Int, flags: UInt16)? = nil
        for (k, b) in chain.enumerated() {
            var flags = availBits(wrap) | (b.2 ? 2 : 0) | extraFlags
            if k != chain.count - 1 { flags |= 1 }
            let d = descriptorGPA(next)
            raw.set64(d, b.0)
            raw.set32(d + 8, b.1)
            raw.set16(d + 12, id)
            if k == 0 { head = (next, flags) } else { raw.set16(d + 14, flags) }
            next += 1
            if next == queueSize { next = 0; wrap.toggle() }
        }
        if let head { raw.set16(descriptorGPA(head.position) + 14, head.flags) }
    }

    /// Reads the used descriptor at position i: (id, len, flags).
    func descriptor(_ i: Int) -> (addr: UInt64, len: UInt32, id: UInt16, flags: UInt16) {
        let d = descriptorGPA(i)
        return (raw.u64(d), raw.u32(d + 8), raw.u16(d + 12), raw.u16(d + 14))
    }
    var deviceEventFlags: UInt16 { raw.u16(addresses.deviceArea + 2) }
    var deviceEventOffWrap: UInt16 { raw.u16(addresses.deviceArea) }
}

/// A packed-ring device written from §2.8: reads descriptors whose AVAIL = wrap and
/// USED = !wrap, writes one used descriptor (AVAIL = USED = wrap) per chain and skips.
struct SpecPackedDevice {
    let raw: RawMemory
    let addresses: RingAddresses
    let queueSize: Int
    var nextAvail = 0
    var availWrap = true
    var nextUsed = 0
    var usedWrap = true

    init(arena: QueueArena) {
        raw = RawMemory(memory: arena.memory)
        addresses = arena.addresses
        queueSize = arena.queueSize
    }

    func descriptorGPA(_ i: Int) -> UInt64 { addresses.descriptorArea + UInt64(16 * i) }

    /// Takes every available chain: (id from the last descriptor, element count, elements).
    mutating func takeAvailable() -> [(id: UInt16, count: Int, chain: [(UInt64, UInt32, UInt16)])] {
        var out: [(UInt16, Int, [(UInt64, UInt32, UInt16)])] = []
        while true {
            let flags = raw.u16(descriptorGPA(nextAvail) + 14)
            let a = flags & (1 << 7) != 0, u = flags & (1 << 15) != 0
            guard a == availWrap && u != availWrap else { return out }
            var chain: [(UInt64, UInt32, UInt16)] = []
            var id: UInt16 = 0
            while true {
                let d = descriptorGPA(nextAvail)
                let f = raw.u16(d + 14)
                chain.append((raw.u64(d), raw.u32(d + 8), f))
                id = raw.u16(d + 12)
                nextAvail += 1
                if nextAvail == queueSize { nextAvail = 0; availWrap.toggle() }
                if f & 1 == 0 { break }
            }
            out.append((id, chain.count, chain))
        }
    }

    mutating func markUsed(id: UInt16, len: UInt32, count: Int) {
        let d = descriptorGPA(nextUsed)
        raw.set32(d + 8, len)
        raw.set16(d + 12, id)
        raw.set16(d + 14, usedWrap ? (1 << 7 | 1 << 15) : 0)
        nextUsed += count
        if nextUsed >= queueSize { nextUsed -= queueSize; usedWrap.toggle() }
    }
    var driverEventFlags: UInt16 { raw.u16(addresses.driverArea + 2) }
    var driverEventOffWrap: UInt16 { raw.u16(addresses.driverArea) }
}
