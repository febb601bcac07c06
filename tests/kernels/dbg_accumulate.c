/* For the debugger tests: line numbers are asserted, keep them where they are. */
#include <stdint.h>

int32_t accumulate(const int32_t *x, int32_t n) {
  int32_t total = 0;
  for (int32_t i = 0; i < n; i++) {
    total += x[i] * 2;
  }
  return total;
}
