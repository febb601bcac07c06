#include <stdint.h>
#include "utvm_runtime.h"
#include "scale.h"

/* Reports errors the TVM way: TVMAPISetLastError + nonzero return. */
int32_t checked_scale(const float *x, float *y, int32_t n) {
  if (n <= 0) {
    TVMAPISetLastError("checked_scale: n must be positive");
    return -1;
  }
  for (int32_t i = 0; i < n; i++) y[i] = x[i] * SCALE;
  return 0;
}

/* Uses workspace memory from the runtime: reverse through a scratch buffer. */
int32_t reverse_ws(const int32_t *x, int32_t *y, int32_t n) {
  int32_t *tmp = (int32_t *)TVMBackendAllocWorkspace(1, 0, (uint64_t)n * sizeof(int32_t), 0, 32);
  int32_t *tmp2 = (int32_t *)TVMBackendAllocWorkspace(1, 0, 64, 0, 32);
  if (tmp == 0 || tmp2 == 0) return -2;
  for (int32_t i = 0; i < n; i++) tmp[n - 1 - i] = x[i];
  memcpy(y, tmp, (size_t)n * sizeof(int32_t));
  if (TVMBackendFreeWorkspace(1, 0, tmp2) != 0) return -3;
  if (TVMBackendFreeWorkspace(1, 0, tmp) != 0) return -4;
  return 0;
}

/* Asks for more workspace than exists: the runtime's own error text comes back. */
int32_t greedy_ws(int32_t n) {
  void *p = TVMBackendAllocWorkspace(1, 0, (uint64_t)0x7fffffff, 0, 8);
  (void)n;
  return p == 0 ? -1 : 0;
}
