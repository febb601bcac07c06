#include <stdint.h>
#include "utvm_runtime.h"

/* An error message longer than a small runtime keeps (cfg["runtime"]["error_text"]), or a short one. */
int32_t long_error(int32_t short_one) {
  TVMAPISetLastError(short_one != 0 ? "long_error: short"
                                    : "long_error: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
  return -1;
}
