/* A kernel whose own stack frame is 96 KiB: a local array it writes and reads back. */
#include <stdint.h>
int32_t big_frame(int32_t seed) {
  volatile int32_t buf[24 * 1024];
  for (int32_t i = 0; i < 24 * 1024; i++) buf[i] = i ^ seed;
  int32_t sum = 0;
  for (int32_t i = 0; i < 24 * 1024; i++) sum += buf[i];
  return sum;
}
