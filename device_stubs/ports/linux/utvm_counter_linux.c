/* utvm-host counter for the host device (a Linux process): CLOCK_MONOTONIC in nanoseconds,
 * by a direct system call (the runtime links no C library). */
#include <stddef.h>
#include <stdint.h>

#include "utvm_runtime.h"

struct utvm_timespec {
  int64_t tv_sec;
  int64_t tv_nsec;
};

uint64_t UTVMCounter(void) {
  struct utvm_timespec ts = {0, 0};
#if defined(__x86_64__)
  long ret;
  /* MISRA C:2012 1.2, deviation R8: GCC inline assembly makes the system call (the runtime links no C library) */
  __asm__ volatile("syscall" : "=a"(ret) : "a"(228L), "D"(1L), "S"(&ts) : "rcx", "r11", "memory");
  (void)ret;
#elif defined(__aarch64__)
  register long x8 __asm__("x8") = 113;
  register long x0 __asm__("x0") = 1;
  register long x1 __asm__("x1") = (long)&ts;
  __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1) : "memory");
#else
#endif
  return ((uint64_t)ts.tv_sec * 1000000000u) + (uint64_t)ts.tv_nsec;
}
