#include <stdint.h>
/* Each level's frame is 24 KiB: two levels fit in a 64 KiB stack, three do not. */
__attribute__((noinline)) int32_t chain(int32_t levels, int32_t seed) {
  volatile int32_t buf[6 * 1024];
  for (int32_t i = 0; i < 6 * 1024; i++) buf[i] = i ^ seed;
  int32_t sum = levels > 1 ? chain(levels - 1, seed + 1) : 0;
  for (int32_t i = 0; i < 6 * 1024; i++) sum += buf[i];
  return sum;
}
