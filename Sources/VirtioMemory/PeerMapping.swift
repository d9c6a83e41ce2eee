// PeerMapping: another party's shared memory (a memfd it handed over, as a vhost-user
// front end does in SET_MEM_TABLE) mapped into this address space. The same pages as the
// owner's HugepageRegion, at a different host address: whatever one side stores, the
// other reads, with no copy in between.

import CPlatform
import Glibc

/// A MAP_SHARED mapping of `size` bytes at `offset` of a memfd this side was given.
public final class PeerMapping: @unchecked Sendable {
    /// First byte of this side's view.
    public let base: UnsafeMutableRawPointer
    public let size: Int
    /// This side's own descriptor (a dup of the one it was handed), closed with the mapping.
    public let fd: Int32
    /// Whether every page is pinned (mlock: faulted in and locked for the mapping's life, as
    /// vhost-vdpa pins guest memory for a device that DMAs into it).
    public let isPinned: Bool

    /// Maps `[offset, offset + size)` of the file behind `fd`. The fd is duplicated, so the
    /// sender may close its own; the range must lie inside the file. `pinned` faults every
    /// page in and locks it (a typed error when the memlock limit or memory refuses).
    public init(fd: Int32, offset: Int = 0, size: Int, pinned: Bool = false) throws(MemoryError) {
        guard size > 0, offset >= 0, offset <= Int.max - size else { throw .invalidRegionSize(bytes: size) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .systemCall(name: "fstat(peer memory fd \(fd))", errno: errno) }
        guard Int(st.st_size) >= offset + size else {
            throw .addressOutsideMemory(gpa: UInt64(offset), length: UInt64(size))
        }
        let own = dup(fd)
        guard own >= 0 else { throw .systemCall(name: "dup", errno: errno) }
        let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, own, off_t(offset))
        guard let p, p != MAP_FAILED else {
            let e = errno
            close(own)
            throw .systemCall(name: "mmap(peer memory fd \(fd), \(size) bytes)", errno: e)
        }
        if pinned && mlock(p, size) != 0 {
            let e = errno
            munmap(p, size)
            close(own)
            throw .systemCall(name: "mlock(peer memory fd \(fd), \(size) bytes: pinning it)", errno: e)
        }
        base = p
        self.size = size
        self.fd = own
        isPinned = pinned
    }

    deinit {
        // munmap drops the lock with the mapping.
        munmap(base, size)
        close(fd)
    }
}
