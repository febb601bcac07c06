/* For the console tests: printf's formats on the device, compared with the host C library's
 * printf of this same file (tests/test_console.py also builds it for the host, with a main()).
 * The values come from a fixed generator of bits, so both sides print the same ones; doubles
 * are made from bits too, so no kernel here needs floating-point arithmetic. */
#include <stddef.h>
#include <stdint.h>
#include "utvm_runtime.h"

static uint64_t next_bits(uint64_t *state) {
  *state = *state * 6364136223846793005ull + 1442695040888963407ull; /* Knuth's MMIX generator */
  return *state ^ (*state >> 29);
}

static double double_of(uint64_t bits) {
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

/* Integers of every size and magnitude through every integer conversion, flag and modifier. */
void console_ints(int32_t seed, int32_t lines) {
  uint64_t state = (uint64_t)seed;
  for (int32_t i = 0; i < lines; i++) {
    const uint64_t v = next_bits(&state) >> (next_bits(&state) % 64u);
    const int s = (int)(int32_t)(uint32_t)v;
    const unsigned u = (unsigned)(uint32_t)v;
    const int64_t sl = (int64_t)v;
    printf("%d|%i|%5d|%-6d|%07d|%+d|% d|%.3d|%8.4d|%u|%x|%#X|%o|%#o|%#.0x|%.0d\n", s, s, s % 1000, s % 1000, s % 1000,
           s, s, s % 100, s % 10000, u, u, u, u, u, 0u, 0);
    printf("%hd|%hu|%hhd|%hhu|%hx|%+hhd|%lld|%llu|%llx|%#llX|%+.20lld|%-24lli|%025llo|%ld|%lu|%zu|%zx|%jd|%ju|%td\n",
           s, u, s, u, u, s, (long long)sl, (unsigned long long)v, (unsigned long long)v, (unsigned long long)v,
           (long long)sl, (long long)sl, (unsigned long long)v, (long)s, (unsigned long)u, (size_t)u, (size_t)u,
           (intmax_t)sl, (uintmax_t)v, (ptrdiff_t)s);
    printf("%*d|%-*d|%.*d|%*.*x|%Ld\n", (int)(u % 41u) - 20, s % 1000, (int)(u % 13u), s % 1000, (int)(u % 9u) - 2,
           s % 1000, (int)(u % 17u), (int)(u % 7u), u, (long long)sl);
  }
}

/* Characters, strings, pointers, %% and * fields. */
void console_text(void) {
  static const char *const words[] = {"", "a", "abc", "hello, world", "0123456789abcdefghijklmnopqrstuvwxyz"};
  for (int32_t i = 0; i < 5; i++) {
    const char *w = words[i];
    printf("[%s|%10s|%-10s|%.2s|%10.3s|%-10.0s|%*s|%-*.*s]\n", w, w, w, w, w, w, 7, w, 9, 4, w);
  }
  printf("[%c|%5c|%-5c|%c%c%c|%lc]\n", 'z', 'a', 'b', 'x', '\t', 'y', (int)'W');
  printf("[%p|%10p|%-10p|%.8p|%012p|%p|%8p|%-8p]\n", (void *)(uintptr_t)0x1234u, (void *)(uintptr_t)0x1234u,
         (void *)(uintptr_t)0x1234u, (void *)(uintptr_t)0x1234u, (void *)(uintptr_t)0xBEEFu,
         (void *)(uintptr_t)0xDEADBEEFu, (void *)0, (void *)0);
  printf("[%%|100%%|%s%%|%5%]\n", "x");
  printf("a line longer than the console's line buffer: %s%s%s%s|%-150s|\n", "0123456789abcdefghij",
         "0123456789abcdefghij", "0123456789abcdefghij", "0123456789abcdefghij", "padded");
  puts("puts adds a newline");
  putchar('!');
  putchar('\n');
}

/* Doubles: any bits (subnormals, huge, inf, nan), and ordinary magnitudes, through %f %e %g. */
void console_floats(int32_t seed, int32_t lines) {
  uint64_t state = (uint64_t)seed;
  for (int32_t i = 0; i < lines; i++) {
    const uint64_t any = next_bits(&state);
    const uint64_t r = next_bits(&state);
    /* 2^-20 .. 2^24, either sign: numbers people print */
    const uint64_t ordinary = (r & 0x800FFFFFFFFFFFFFull) | ((uint64_t)(1003u + (uint32_t)(r >> 52) % 45u) << 52);
    const double a = double_of(any);
    const double o = double_of(ordinary);
    printf("%f|%.0f|%.3f|%12.4f|%-12.2e|%+.10e|%e|%g|%.3g|%G|%.17g|%E|%010.3f|%.20f|% g|%F\n", o, o, o, o, o, o, o, o,
           o, o, o, o, o, o, o, o);
    printf("%.17e|%.0e|%#.0f|%#.0e|%.40e|%g|%.25g|%+f|%-30.3e|%08.2g|%.1f\n", a, a, o, o, a, a, a, a, a, o, a);
  }
  printf("%f|%.2f|%.0f|%.0f|%.0f|%.1f|%g|%g|%g|%e\n", 0.0, 0.125, 0.5, 1.5, 2.5, 0.25, 100000.0, 1000000.0,
         0.0001, 1.0);
}

/* What the console does not print shows as a marker, and the arguments stay in step. */
void console_markers(void) {
  int32_t stored = -1;
  printf("[%n|%a|%Lf|%ls|%s|%d]\n", (void *)&stored, 1.5, (long double)2.5, (const wchar_t *)L"w", "after", 7);
  printf("[%f|%10.3e|%-9g|%s|%d]\n", 1.5, 2.5, 3.5, "after floats", 8);
  printf("[%.47f|%hd|%hhu|%+d|% d|%*d|%.*d|%jd|%td|%s]\n", 0.0, 70000, 300, 5, 5, 4, 5, 3, 5, (intmax_t)-5,
         (ptrdiff_t)-6, "ok");
  printf("[%99999999999999999999d]\n", 1); /* a width past 4095: 4095 */
}

/* Prints a line without its newline, then writes where no device has memory. */
void console_partial_then_crash(int32_t n) {
  volatile int32_t *p = (volatile int32_t *)(uintptr_t)0x90000000u; /* unmapped on every device here */
  printf("partial line %d, then", (int)n);
  *p = n;
}

void console_say(void) { printf("next call\n"); }

/* printf's return value: what it printed, padding included. */
int32_t console_count(void) {
  return printf("%-10s|%5d|%c|%10p|%%\n", "count", 42, 'c', (void *)(uintptr_t)0x1234u);
}
