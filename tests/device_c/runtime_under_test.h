/* The device runtime built into a host test program (unit tests and fuzzers of
 * tests/device_c): utvm_runtime.c and its parts linked on demand (on_demand/) #included, so
 * their static functions are reachable, with its memcpy/memset/memmove/memcmp renamed so the C library's (which ASan intercepts) stay intact;
 * and said(), an error text as the host prints it. */
#ifndef UTVM_RUNTIME_UNDER_TEST_H_
#define UTVM_RUNTIME_UNDER_TEST_H_
#define memcpy utvm_rt_memcpy
#define memmove utvm_rt_memmove
#define memset utvm_rt_memset
#define memcmp utvm_rt_memcmp
#include "../../device_stubs/runtime/utvm_runtime.c"
#include "../../device_stubs/runtime/on_demand/utvm_errors.c"
#include "../../device_stubs/runtime/on_demand/utvm_workspace.c"
#undef memcpy
#undef memmove
#undef memset
#undef memcmp

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utvm_runtime_errors.h"

/* The error text as the host prints it: the runtime's own code (utvm_runtime.h) written out. */
static const char *said(const char *raw) {
  static const char *const texts[4] = {UTVM_RUNTIME_ERROR_1, UTVM_RUNTIME_ERROR_2, UTVM_RUNTIME_ERROR_3,
                                       UTVM_RUNTIME_ERROR_4};
  static char out[UTVM_ERROR_LEN + 128];
  if (raw[0] == UTVM_RUNTIME_ERROR[0] && raw[1] >= '1' && raw[1] <= '4') {
    if (raw[1] == '4') { /* the header's address, from utvm_ws_bad */
      snprintf(out, sizeof out, "%s%0*jx%s", texts[3], (int)(2u * sizeof(uintptr_t)), (uintmax_t)utvm_ws_bad,
               &raw[2]);
    } else {
      snprintf(out, sizeof out, "%s%s", texts[raw[1] - '1'], &raw[2]);
    }
  } else {
    snprintf(out, sizeof out, "%s", raw);
  }
  return out;
}
#endif /* UTVM_RUNTIME_UNDER_TEST_H_ */
