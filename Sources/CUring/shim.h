// liburing, imported as is. Its static inline helpers import directly; the few macros
// the Doorbell layer needs (IOSQE_CQE_SKIP_SUCCESS, the for-each-CQE loop) are
// re-expressed there, not here.
//
// liburing.h defines _XOPEN_SOURCE before its own includes, which renames fd_set's member
// (fds_bits vs __fds_bits) and clashes with Swift's Glibc module ("is not present in
// definition of 'fd_set'"). Including the same system headers first, with the default
// feature macros, keeps one definition.
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <inttypes.h>
#include <time.h>
#include <fcntl.h>
#include <sched.h>
#include <liburing.h>
