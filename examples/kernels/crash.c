#include <stdint.h>

/* Writes through a null pointer (plus an offset): a segmentation fault on purpose. */
void write_null(int32_t offset) {
  volatile int32_t *p = (volatile int32_t *)0;
  p[offset] = 42;
}
