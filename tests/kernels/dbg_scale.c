/* For the debugger tests: a second library loaded after the debugger attached. */
#include <stdint.h>

void scale(int32_t *x, int32_t n, int32_t k) {
  for (int32_t i = 0; i < n; i++) {
    x[i] = x[i] * k;
  }
}
