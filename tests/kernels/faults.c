#include <stdint.h>

void segv(int32_t offset) {
  volatile int32_t *p = (volatile int32_t *)0;
  p[offset] = 1;                      /* faults.c:5 */
}

void illegal(void) {
#if defined(__riscv)
  __asm__ volatile(".4byte 0");     /* all zeros: an illegal instruction */
#elif defined(__thumb__)
  __asm__ volatile(".short 0xde00"); /* udf #0 */
#else
  __builtin_trap();                  /* ud2 on x86_64, brk/udf elsewhere */
#endif
}

void trap_builtin(void) {
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

/* Loads a 32-bit word from an odd address (misaligned on strict targets). */
int32_t load_misaligned(const uint8_t *p) {
  return *(volatile const int32_t *)(p + 1);
}

/* Reads from an arbitrary address. */
int32_t load_from(uintptr_t addr) {
  return *(volatile const int32_t *)addr;
}

#if defined(__thumb__)
/* A BKPT instruction: with gdb attached, QEMU's Cortex-M model locks up on it. */
void bkpt_insn(void) {
  __asm__ volatile("bkpt #0");
}
#endif
