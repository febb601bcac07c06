#include <stdint.h>

/* c[i] = a[i] + b[i] */
void vadd(const float *a, const float *b, float *c, int32_t n) {
  for (int32_t i = 0; i < n; i++) c[i] = a[i] + b[i];
}
