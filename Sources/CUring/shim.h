// liburing, imported as is. Its static inline helpers import directly; the few macros
// the Doorbell layer needs (IOSQE_CQE_SKIP_SUCCESS, the for-each-CQE loop) are
// re-expressed there, not here.
//
// <features.h> comes first so glibc's feature macros are settled before liburing.h
// defines _XOPEN_SOURCE and _GNU_SOURCE: otherwise the system structs it pulls in differ
// from SwiftGlibc's (fd_set's `fds_bits` vs `__fds_bits`) and no Swift module can import
// both CUring and Glibc (or Foundation).
#include <features.h>
#include <liburing.h>
