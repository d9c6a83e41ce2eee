// liburing, imported as is. Its static inline helpers import directly; the few macros
// the Doorbell layer needs (IOSQE_CQE_SKIP_SUCCESS, the for-each-CQE loop) are
// re-expressed there, not here.
#include <liburing.h>
