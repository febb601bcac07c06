/* utvm-host counter for RISC-V: mcycle (on Spike it equals minstret: retired instructions). */
#include <stddef.h>
#include <stdint.h>

#include "utvm_runtime.h"

uint64_t UTVMCounter(void) {
  uint64_t count;
#if __riscv_xlen == 64
  /* MISRA C:2012 1.2, deviation R8: GCC inline assembly reads the cycle CSRs, which have no C form */
  __asm__ volatile(".option push\n\t.option arch, +zicsr\n\tcsrr %0, mcycle\n\t.option pop" : "=r"(count));
#else
  uint32_t hi;
  uint32_t lo;
  uint32_t hi2;
  do { /* read the halves consistently */
    __asm__ volatile(".option push\n\t.option arch, +zicsr\n\tcsrr %0, mcycleh\n\tcsrr %1, mcycle\n\t"
                     "csrr %2, mcycleh\n\t.option pop" : "=r"(hi), "=r"(lo), "=r"(hi2));
  } while (hi != hi2);
  count = ((uint64_t)hi << 32) | lo;
#endif
  return count;
}
