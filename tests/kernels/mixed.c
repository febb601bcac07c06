#include <stdint.h>

/* Every scalar width by value, a double back. */
double mixed(int8_t a, uint16_t b, int32_t c, int64_t d, float e, double f) {
  return (double)a + (double)b * 2.0 + (double)c * 3.0 + (double)d * 4.0 + (double)e * 5.0 + f * 6.0;
}

uint64_t add_u64(uint64_t a, uint64_t b) { return a + b; }
int64_t neg_i64(int64_t a) { return -a; }
uint8_t wrap_u8(uint8_t a, uint8_t b) { return (uint8_t)(a + b); }
int16_t sub_i16(int16_t a, int16_t b) { return (int16_t)(a - b); }
float scale_f32(float x, float k) { return x * k; }
_Bool is_positive(int32_t x) { return x > 0; }
void nothing(void) {}

/* A loop whose instruction count per iteration is fixed: for timing tests. */
void count_loop(int32_t n) {
  for (int32_t i = 0; i < n; i++) __asm__ volatile("nop");
}

/* Exactly two instructions per iteration on RISC-V (the asm is its own disassembly). */
void count_asm(int32_t n) {
#if defined(__riscv)
  if (n > 0) __asm__ volatile("1: addi %0, %0, -1\n\tbnez %0, 1b" : "+r"(n));
#else
  for (int32_t i = 0; i < n; i++) __asm__ volatile("nop");
#endif
}
