// CPlatform implementation: see CPlatform.h.
#define _GNU_SOURCE
#include "CPlatform.h"

#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif

static uint64_t clock_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t cplatform_rdtsc(void) {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    return clock_ns(CLOCK_MONOTONIC);
#endif
}

double cplatform_measure_tsc_hz(uint64_t interval_ns) {
    uint64_t t0 = clock_ns(CLOCK_MONOTONIC_RAW);
    uint64_t c0 = cplatform_rdtsc();
    uint64_t t1;
    do {
        t1 = clock_ns(CLOCK_MONOTONIC_RAW);
    } while (t1 - t0 < interval_ns);
    uint64_t c1 = cplatform_rdtsc();
    return (double)(c1 - c0) * 1e9 / (double)(t1 - t0);
}

int cplatform_pin_current_thread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int cplatform_current_cpu(void) { return sched_getcpu(); }

int cplatform_allowed_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return (int)sysconf(_SC_NPROCESSORS_ONLN);
    return CPU_COUNT(&set);
}

uint64_t cplatform_thread_cpu_time_ns(void) { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }

uint64_t cplatform_monotonic_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

int32_t cplatform_gettid(void) { return (int32_t)syscall(SYS_gettid); }

int cplatform_set_thread_name(unsigned long thread, const char *name) {
    char truncated[16];
    strncpy(truncated, name, sizeof truncated - 1);
    truncated[sizeof truncated - 1] = 0;
    return pthread_setname_np((pthread_t)thread, truncated);
}

int cplatform_hypervisor_vendor(char *out) {
    out[0] = 0;
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    __asm__ __volatile__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if (!(c & (1u << 31))) return -1;
    __asm__ __volatile__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000000), "c"(0));
    memcpy(out, &b, 4);
    memcpy(out + 4, &c, 4);
    memcpy(out + 8, &d, 4);
    out[12] = 0;
    return 0;
#else
    return -1;
#endif
}

int cplatform_memfd_create(const char *name, unsigned int flags) {
    return (int)syscall(SYS_memfd_create, name, flags);
}

unsigned int cplatform_mfd_cloexec(void) { return MFD_CLOEXEC; }
unsigned int cplatform_mfd_hugetlb(void) { return MFD_HUGETLB; }
unsigned int cplatform_huge_page_size_flag(unsigned int log2_page_size) {
    return log2_page_size << 26; /* MAP_HUGE_SHIFT == MFD_HUGE_SHIFT == 26 */
}
int cplatform_map_hugetlb(void) { return MAP_HUGETLB; }
int cplatform_map_populate(void) { return MAP_POPULATE; }
int cplatform_madv_hugepage(void) { return MADV_HUGEPAGE; }

int cplatform_eventfd(unsigned int initial_value) {
    return eventfd(initial_value, EFD_CLOEXEC);
}

static struct timespec relative_timespec(int64_t ns) {
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return ts;
}

int cplatform_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns,
                         int process_private) {
    struct timespec ts;
    struct timespec *timeout = NULL;
    if (timeout_ns >= 0) {
        ts = relative_timespec(timeout_ns);
        timeout = &ts;
    }
    int op = FUTEX_WAIT | (process_private ? FUTEX_PRIVATE_FLAG : 0);
    long rc = syscall(SYS_futex, word, op, expected, timeout, NULL, 0);
    return rc == 0 ? 0 : errno;
}

int cplatform_futex_wake(uint32_t *word, int count, int process_private) {
    int op = FUTEX_WAKE | (process_private ? FUTEX_PRIVATE_FLAG : 0);
    long rc = syscall(SYS_futex, word, op, count, NULL, NULL, 0);
    return rc >= 0 ? (int)rc : -errno;
}

int cplatform_wait_readable(int fd, int64_t timeout_ns) {
    struct pollfd pfd = { .fd = fd, .events = POLLIN, .revents = 0 };
    struct timespec ts;
    struct timespec *timeout = NULL;
    if (timeout_ns >= 0) {
        ts = relative_timespec(timeout_ns);
        timeout = &ts;
    }
    int rc = ppoll(&pfd, 1, timeout, NULL);
    if (rc < 0) return -errno;
    return rc > 0 ? 1 : 0;
}

long cplatform_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds) {
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    char control[CMSG_SPACE(sizeof(int) * 32)];
    if (nfds < 0 || nfds > 32) return -EINVAL;
    if (nfds > 0) {
        memset(control, 0, sizeof control);
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t n;
    do { n = sendmsg(sock, &msg, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : (long)n;
}

long cplatform_recv_with_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds, int *truncated) {
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    char control[CMSG_SPACE(sizeof(int) * 32)];
    memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    *nfds = 0;
    *truncated = 0;
    ssize_t n;
    do { n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    int got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *in = (int *)CMSG_DATA(c);
        for (int i = 0; i < count; i++) {
            if (got < maxfds) fds[got++] = in[i];
            else { close(in[i]); *truncated = 1; }
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) *truncated = 1;
    *nfds = got;
    return (long)n;
}

static int unix_address(const char *path, struct sockaddr_un *a) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof a->sun_path) return -ENAMETOOLONG;
    memcpy(a->sun_path, path, n);
    return 0;
}

int cplatform_unix_listen(const char *path, int backlog) {
    struct sockaddr_un a;
    int rc = unix_address(path, &a);
    if (rc < 0) return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int cplatform_unix_connect(const char *path) {
    struct sockaddr_un a;
    int rc = unix_address(path, &a);
    if (rc < 0) return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int r;
    do { r = connect(fd, (struct sockaddr *)&a, sizeof a); } while (r < 0 && errno == EINTR);
    if (r < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int cplatform_accept(int fd) {
    int c;
    do { c = accept4(fd, NULL, NULL, SOCK_CLOEXEC); } while (c < 0 && errno == EINTR);
    return c < 0 ? -errno : c;
}

int cplatform_poll_readable(const int *fds, int n, int64_t timeout_ns, uint64_t *ready) {
    struct pollfd p[64];
    *ready = 0;
    if (n < 0 || n > 64) return -EINVAL;
    for (int i = 0; i < n; i++) { p[i].fd = fds[i]; p[i].events = POLLIN; p[i].revents = 0; }
    struct timespec ts;
    struct timespec *timeout = NULL;
    if (timeout_ns >= 0) {
        ts = relative_timespec(timeout_ns);
        timeout = &ts;
    }
    int rc = ppoll(p, (nfds_t)n, timeout, NULL);
    if (rc < 0) return -errno;
    for (int i = 0; i < n; i++) if (p[i].revents & (POLLIN | POLLERR | POLLHUP)) *ready |= (uint64_t)1 << i;
    return rc;
}
