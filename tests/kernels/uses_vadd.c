#include <stdint.h>

void vadd(const float *a, const float *b, float *c, int32_t n);   /* from another library */

/* c = 2a + b using the vadd of a library loaded earlier */
void vadd_twice(const float *a, const float *b, float *c, int32_t n) {
  vadd(a, b, c, n);
  vadd(a, c, c, n);
}
