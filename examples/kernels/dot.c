#include <stdint.h>

/* int8 dot product with int32 accumulation */
int32_t dot_i8(const int8_t *x, const int8_t *y, int32_t n) {
  int32_t acc = 0;
  for (int32_t i = 0; i < n; i++) acc += (int32_t)x[i] * (int32_t)y[i];
  return acc;
}
