// A peer's memory mapped pinned is faulted in and locked for the mapping's life (what
// vhost-vdpa's pinning of guest memory costs a migration's destination), and unlocked with it.

import CPlatform
import Foundation
import Glibc
import Testing
@testable import VirtioMemory

@Suite(.serialized) struct PeerMappingTests {
    /// VmLck of this process, in KiB.
    static func lockedKiB() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmLck:") })
        return try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    }

    static func memfd(bytes: Int) throws -> Int32 {
        let fd = cplatform_memfd_create("vqbench-peer-test", 0)
        try #require(fd >= 0)
        try #require(ftruncate(fd, off_t(bytes)) == 0)
        return fd
    }

    @Test func aPinnedMappingLocksEveryPageUntilItIsGone() throws {
        let bytes = 8 << 20
        let fd = try Self.memfd(bytes: bytes)
        defer { close(fd) }
        let before = try Self.lockedKiB()
        do {
            let pinned = try PeerMapping(fd: fd, size: bytes, pinned: true)
            #expect(pinned.isPinned)
            #expect(try Self.lockedKiB() - before >= bytes >> 10, "every page of the mapping is locked")
            // The pages are the file's: what this side stores, the file holds.
            pinned.base.storeBytes(of: 0xA5A5_5A5A, toByteOffset: bytes - 8, as: UInt64.self)
            var word: UInt64 = 0
            #expect(pread(fd, &word, 8, off_t(bytes - 8)) == 8 && word == 0xA5A5_5A5A)
        }
        #expect(try Self.lockedKiB() == before, "the lock goes with the mapping")
        let plain = try PeerMapping(fd: fd, size: bytes)
        #expect(!plain.isPinned)
        #expect(try Self.lockedKiB() == before)
    }

    @Test func aRangeOutsideTheFileIsATypedErrorAndNothingStaysLocked() throws {
        let fd = try Self.memfd(bytes: 1 << 20)
        defer { close(fd) }
        let before = try Self.lockedKiB()
        #expect(throws: MemoryError.addressOutsideMemory(gpa: 0, length: 2 << 20)) {
            _ = try PeerMapping(fd: fd, size: 2 << 20, pinned: true)
        }
        #expect(try Self.lockedKiB() == before)
    }
}
