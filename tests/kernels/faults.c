#include <stdint.h>

void segv(int32_t offset) {
  volatile int32_t *p = (volatile int32_t *)0;
  p[offset] = 1;                      /* faults.c:5 */
}

void illegal(void) {
  __builtin_trap();
}

int32_t spin(int32_t n) {
  volatile int32_t x = n;
  for (;;) x++;                       /* never returns */
  return x;
}

static int32_t deep(int32_t n) {
  volatile char buf[4096];
  buf[0] = (char)n;
  return deep(n + 1) + buf[0];
}

int32_t overflow_stack(int32_t n) { return deep(n); }
