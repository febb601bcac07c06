/* Recursion with small stack frames: it walks the stack down a few bytes at a time, so the
 * overflow lands just below the stack (in a guard page, where a board has one) instead of
 * jumping far past it as a large frame does. */
#include <stdint.h>

static int32_t descend(volatile int32_t *above, int32_t n) {
  volatile int32_t here[4];           /* about 32 bytes a level */
  here[0] = n;
  here[1] = above[0];
  return descend(here, n + 1) + here[0]; /* small_frames.c:10 (never returns) */
}

int32_t overflow_small(int32_t n) {
  volatile int32_t top[4];
  top[0] = n;
  return descend(top, n);
}

/* How deep the recursion went is visible to the host: each level counts itself here. */
int32_t count_levels(int32_t n) {
  return n <= 0 ? 0 : 1 + count_levels(n - 1);
}
