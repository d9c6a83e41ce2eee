// CPlatform: the few things Swift cannot say itself — a pause instruction, the TSC,
// thread affinity and CPU clocks, and kernel constants that only exist as macros.
// Every symbol is prefixed cplatform_ (as swift-nio prefixes its shims).
#ifndef CPLATFORM_H
#define CPLATFORM_H

#include <stdint.h>
#include <stddef.h>


/// Spin-wait hint (x86 `pause`, arm64 `yield`).
static inline void cplatform_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/// Time-stamp counter (x86 rdtsc; arm64 cntvct_el0; otherwise CLOCK_MONOTONIC ns).
uint64_t cplatform_rdtsc(void);

/// Measures the TSC frequency against CLOCK_MONOTONIC_RAW over `interval_ns`.
double cplatform_measure_tsc_hz(uint64_t interval_ns);

/// Pins the calling thread to one CPU. Returns 0 or an errno value.
int cplatform_pin_current_thread(int cpu);

/// The CPU the calling thread runs on now, or -1.
int cplatform_current_cpu(void);

/// Number of CPUs the calling thread may run on (its affinity mask).
int cplatform_allowed_cpu_count(void);

/// CPU time consumed by the calling thread, in nanoseconds.
uint64_t cplatform_thread_cpu_time_ns(void);

/// CLOCK_MONOTONIC in nanoseconds.
uint64_t cplatform_monotonic_ns(void);

/// Kernel thread id of the calling thread.
int32_t cplatform_gettid(void);

/// Names a thread (a pthread_t; its first 15 bytes: the kernel's limit), as `comm` shows it.
/// pthread_setname_np needs _GNU_SOURCE, which Swift's Glibc module lacks. Returns 0 or an errno value.
int cplatform_set_thread_name(unsigned long thread, const char *name);

/// The hypervisor's CPUID vendor string (leaf 0x40000000, e.g. "KVMKVMKVM") into `out`
/// (13 bytes with the terminator); returns 0, or -1 when CPUID has no hypervisor bit.
int cplatform_hypervisor_vendor(char *out);

/// memfd_create with the given MFD_* flags; returns fd or -1 with errno set.
int cplatform_memfd_create(const char *name, unsigned int flags);

/// Flags that exist only as macros in the C headers.
unsigned int cplatform_mfd_cloexec(void);
unsigned int cplatform_mfd_hugetlb(void);
/// MFD_HUGE_* / MAP_HUGE_* encoding of a page size: log2(page_size) << 26.
unsigned int cplatform_huge_page_size_flag(unsigned int log2_page_size);
int cplatform_map_hugetlb(void);
int cplatform_map_populate(void);
int cplatform_madv_hugepage(void);

// Doorbell system calls. Swift cannot call the variadic syscall(2) that futex needs, and
// eventfd(2) and ppoll(2) are not in the Glibc module (ppoll needs _GNU_SOURCE). Only
// stdint types appear here: a <sys/types.h> include would clash with CUring's module.

/// eventfd(2) with EFD_CLOEXEC, blocking, counter (not semaphore) mode.
/// Returns the fd or -1 with errno set.
int cplatform_eventfd(unsigned int initial_value);

/// FUTEX_WAIT on a 4-byte aligned word: sleeps while `*word == expected`.
/// `timeout_ns` < 0 waits forever (the timeout is relative). `process_private` != 0 adds
/// FUTEX_PRIVATE_FLAG. Returns 0 when woken, else the errno (EAGAIN: the word differed;
/// ETIMEDOUT; EINTR).
int cplatform_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns,
                         int process_private);

/// FUTEX_WAKE: wakes at most `count` waiters on `word`. Returns how many were woken,
/// or -errno.
int cplatform_futex_wake(uint32_t *word, int count, int process_private);

/// ppoll(2) for POLLIN on one fd. `timeout_ns` < 0 waits forever.
/// Returns 1 when readable, 0 on timeout, or -errno.
int cplatform_wait_readable(int fd, int64_t timeout_ns);

/// sendmsg(2) of `len` bytes with `nfds` descriptors attached as SCM_RIGHTS (none when
/// nfds is 0), MSG_NOSIGNAL. Returns the bytes sent or -errno.
long cplatform_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);

/// recvmsg(2) of up to `len` bytes, taking up to `maxfds` SCM_RIGHTS descriptors into
/// `fds` (received close-on-exec) and their number into `*nfds`. `*truncated` is set when
/// the peer sent more descriptors than fit (the kernel closes those). Returns the bytes
/// received (0: the peer closed) or -errno; on error no descriptor is left open.
long cplatform_recv_with_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds, int *truncated);

/// A listening AF_UNIX stream socket bound at `path` (close-on-exec). Returns the fd or -errno
/// (-ENAMETOOLONG for a path that does not fit sockaddr_un).
int cplatform_unix_listen(const char *path, int backlog);

/// A connected AF_UNIX stream socket to `path` (close-on-exec). Returns the fd or -errno.
int cplatform_unix_connect(const char *path);

/// accept4(2) with SOCK_CLOEXEC. Returns the fd or -errno.
int cplatform_accept(int fd);

/// ppoll(2) for readability on up to 64 descriptors; bit i of `*ready` is set when fds[i] is
/// readable. timeout_ns < 0 waits forever. Returns how many are ready (0: timed out) or -errno.
int cplatform_poll_readable(const int *fds, int n, int64_t timeout_ns, uint64_t *ready);

#endif
