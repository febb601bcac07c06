/* examples/debug_fault.py: an index out of range makes the store on line 8 fault. */
#include <stdint.h>

void scatter(const int32_t *idx, const float *src, float *dst, int32_t n) {
  for (int32_t i = 0; i < n; i++) {
    float *slot = dst + idx[i];
    /* the next line faults when slot is outside memory */
    *slot = src[i];
  }
}
