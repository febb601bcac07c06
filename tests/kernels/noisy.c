/* For the console tests: kernels that print. */
#include <stdint.h>
#include "utvm_runtime.h"

int32_t noisy(const int32_t *x, int32_t n) {
  int32_t s = 0;
  for (int32_t i = 0; i < n; i++) s += x[i];
  printf("sum=%d\n", s);
  return s;
}

void formats(void) {
  printf("[%d|%5d|%-5d|%05d|%u|%x|%08X|%o|%ld|%lld|%zu]\n", -42, 7, 7, -7, 4000000000u, 255, 0xBEEFu, 8, -1L,
         -1234567890123LL, (size_t)12);
  printf("[%s|%6s|%-6s|%c|%%|%p|%.2f|%f|%.0f|%f]\n", "abc", "ab", "ab", 'z', (void *)0x1234, 3.14159, -0.5, 2.5,
         1e6);
  puts("puts adds a newline");
  putchar('!');
}

void chatter(int32_t lines) {
  for (int32_t i = 0; i < lines; i++) printf("line %04d of %d: %s\n", i, lines, "0123456789abcdefghij");
}

int32_t failing(int32_t n) {
  printf("about to fail with %d\n", n);
  TVMAPISetLastError("bad n");
  return -1;
}

void crash(void) {
  volatile int32_t *p = (volatile int32_t *)(uintptr_t)0x90000000u; /* unmapped on every device here */
  printf("writing through %p\n", (void *)p);
  *p = 1;
}
