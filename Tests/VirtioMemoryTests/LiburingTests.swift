// liburing links and a ring works here: a NOP goes in and its completion comes out.

import CUring
import Testing

struct LiburingTests {
    @Test func aRingSetsUpAndCompletesANop() throws {
        var ring = io_uring()
        let rc = io_uring_queue_init(8, &ring, 0)
        if rc == -Int32(1) /* EPERM */ || rc == -Int32(38) /* ENOSYS */ {
            try Test.cancel("io_uring is denied here (io_uring_queue_init returned \(rc))")
        }
        #expect(rc == 0)
        defer { io_uring_queue_exit(&ring) }
        let sqe = try #require(io_uring_get_sqe(&ring))
        io_uring_prep_nop(sqe)
        io_uring_sqe_set_data64(sqe, 0xC0FFEE)
        #expect(io_uring_submit(&ring) == 1)
        var cqe: UnsafeMutablePointer<io_uring_cqe>?
        #expect(io_uring_wait_cqe(&ring, &cqe) == 0)
        let done = try #require(cqe)
        #expect(done.pointee.user_data == 0xC0FFEE)
        #expect(done.pointee.res == 0)
        io_uring_cqe_seen(&ring, done)
    }
}
