/* utvm-host console for the host device (a Linux process): write(2) by a direct system call. */
#include <stddef.h>
#include <stdint.h>

#include "utvm_runtime.h"

long utvm_sys_write(int fd, const void *buf, size_t n) {
  long done;
  (void)fd; /* (the system call below uses them: the MISRA checker does not read its operands) */
  (void)buf;
  (void)n;
#if defined(__x86_64__)
  /* MISRA C:2012 1.2, deviation R8: GCC inline assembly makes the system call (the runtime links no C library) */
  __asm__ volatile("syscall" : "=a"(done) : "a"(1L), "D"((long)fd), "S"(buf), "d"(n) : "rcx", "r11", "memory");
#elif defined(__aarch64__)
  register long x8 __asm__("x8") = 64;
  register long x0 __asm__("x0") = fd;
  register long x1 __asm__("x1") = (long)buf;
  register long x2 __asm__("x2") = (long)n;
  __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
  done = x0;
#else
  done = (long)n;
#endif
  return done;
}
