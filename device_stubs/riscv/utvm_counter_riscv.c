/* utvm-host counter for RISC-V: mcycle (on Spike it equals minstret: retired instructions). */
#include <stdint.h>

uint64_t UTVMCounter(void) {
#if __riscv_xlen == 64
  uint64_t c;
  __asm__ volatile(".option push\n\t.option arch, +zicsr\n\tcsrr %0, mcycle\n\t.option pop" : "=r"(c));
  return c;
#else
  uint32_t hi, lo, hi2;
  do { /* read the halves consistently */
    __asm__ volatile(".option push\n\t.option arch, +zicsr\n\tcsrr %0, mcycleh\n\tcsrr %1, mcycle\n\t"
                     "csrr %2, mcycleh\n\t.option pop" : "=r"(hi), "=r"(lo), "=r"(hi2));
  } while (hi != hi2);
  return ((uint64_t)hi << 32) | lo;
#endif
}
