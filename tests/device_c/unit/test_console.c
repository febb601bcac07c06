/* Unit test of the device console (device_stubs/runtime/utvm_console.c) under ASan and UBSan.
 *
 * The console is built with no channel of its own, so its text goes to UTVMConsoleHook, which
 * this test defines to capture it. printf's output and return value are compared with the host
 * C library's snprintf for many formats, and each bug fixed in issue 15 has a check of its own
 * (bug1_..., bug2_..., ...). test_console_float.c includes this file with UTVM_CONSOLE_FLOAT.
 *
 * Run: python tests/device_c/checks.py unit console console_float */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <wchar.h>

void UTVMConsoleHook(const char *s, size_t n);

#include "../../../device_stubs/runtime/utvm_console.c"

#define CAPTURE_SIZE 65536u

static char captured[CAPTURE_SIZE + 1u];
static size_t captured_len;
static size_t hook_calls;
static int hook_prints; /* > 0: the hook itself prints (re-enters the console) that many characters */
static char want[CAPTURE_SIZE];
static int failures;
static int checks;
static char context[160]; /* what a table-driven check was checking, for its failure message */

void UTVMConsoleHook(const char *s, size_t n)
{
  size_t i;
  hook_calls++;
  for (i = 0; i < n && captured_len < CAPTURE_SIZE; i++) {
    captured[captured_len++] = s[i];
  }
  captured[captured_len] = '\0';
  if (hook_prints > 0) {
    int k;
    for (k = 0; k < hook_prints; k++) {
      putchar('#');
    }
  }
}

static void reset(void)
{
  utvm_console_begin();
  captured_len = 0;
  captured[0] = '\0';
  hook_calls = 0;
  hook_prints = 0;
}

/* What the console printed: flushed, as a string. */
static const char *output(void)
{
  utvm_console_flush();
  return captured;
}

static void expect_text(int line, const char *got, int got_ret, const char *expected, int expected_ret)
{
  checks++;
  if (strcmp(got, expected) != 0 || got_ret != expected_ret) {
    failures++;
    fprintf(stderr, "line %d%s: got \"%.300s\" (returned %d), want \"%.300s\" (returned %d)\n", line, context, got,
            got_ret, expected, expected_ret);
  }
}

static void expect_true(int line, int ok, const char *what)
{
  checks++;
  if (!ok) {
    failures++;
    fprintf(stderr, "line %d: %s\n", line, what);
  }
}

#define EXPECT(cond) expect_true(__LINE__, (cond), #cond)

/* The console's printf(...) against the C library's snprintf(...) of the same arguments. */
static void same_as_libc(int line, int got_ret, int want_ret)
{
  expect_text(line, output(), got_ret, want, want_ret);
  context[0] = '\0';
  reset();
}
#define SAME(...) \
  do { \
    reset(); \
    same_as_libc(__LINE__, printf(__VA_ARGS__), snprintf(want, sizeof want, __VA_ARGS__)); \
  } while (0)

/* The console's printf(...) against a fixed text (and its length as the return value). */
static void prints(int line, int got_ret, const char *expected)
{
  expect_text(line, output(), got_ret, expected, (int)strlen(expected));
  reset();
}
#define PRINTS(expected, ...) \
  do { \
    reset(); \
    prints(__LINE__, printf(__VA_ARGS__), expected); \
  } while (0)

/* ---- the C library's formats --------------------------------------------------------------- */

static const char *const int_formats[] = {
    "%d", "%i", "%5d", "%-5d|", "%05d", "%+d", "% d", "%+ d", "%.3d", "%8.3d", "%-8.3d|", "%+08d", "% 08d",
    "%.0d", "%+.0d", "%u", "%10u", "%x", "%X", "%#x", "%#X", "%#10x", "%#010x", "%-#10x|", "%.5x", "%#.5x",
    "%o", "%#o", "%#.0o", "%#5o", "%.0x", "%#.0x", "%08.3x", "%hd", "%hu", "%hx", "%hhd", "%hhu", "%hhx",
    "%hho", "%+hhd", "%1d", "%40d", "%-40d|", "%040d"};
static const int int_values[] = {0, 1, -1, 7, -7, 42, -42, 255, 256, 65535, 65536, 70000, -70000, 123456789,
                                 INT_MAX, INT_MIN, INT_MIN + 1};

static const char *const long_long_formats[] = {"%lld", "%lli", "%llu", "%llx", "%llX", "%llo", "%#llx",
                                                "%25lld", "%-25lld|", "%025lld", "%+lld", "%.20lld", "%#llo"};
static const long long long_long_values[] = {0, 1, -1, 4294967295LL, 4294967296LL, -4294967296LL,
                                             1234567890123LL, -1234567890123LL, LLONG_MAX, LLONG_MIN};

static const char *const string_formats[] = {"%s", "%10s", "%-10s|", "%.2s", "%10.2s", "%-10.2s|", "%.0s",
                                             "%.20s", "%1s", "%.10s|"};
static const char *const string_values[] = {"", "a", "abc", "hello, world", "0123456789abcdefghij"};

static void test_ints_match_libc(void)
{
  size_t f, v;
  for (f = 0; f < sizeof int_formats / sizeof int_formats[0]; f++) {
    for (v = 0; v < sizeof int_values / sizeof int_values[0]; v++) {
      snprintf(context, sizeof context, " (format \"%s\", %d)", int_formats[f], int_values[v]);
      SAME(int_formats[f], int_values[v]);
    }
  }
  for (f = 0; f < sizeof long_long_formats / sizeof long_long_formats[0]; f++) {
    for (v = 0; v < sizeof long_long_values / sizeof long_long_values[0]; v++) {
      snprintf(context, sizeof context, " (format \"%s\", %lld)", long_long_formats[f], long_long_values[v]);
      SAME(long_long_formats[f], long_long_values[v]);
    }
  }
  SAME("[%ld|%lu|%lx|%5ld|%-5ld|%+ld]", -1L, ULONG_MAX, 0xBEEFUL, 7L, -7L, LONG_MAX);
  SAME("[%zu|%zd|%zx|%td|%tx|%ju|%jd|%jx]", (size_t)12, (ptrdiff_t)-5, SIZE_MAX, (ptrdiff_t)-1,
       (ptrdiff_t)PTRDIFF_MAX, (uintmax_t)UINTMAX_MAX, (intmax_t)INTMAX_MIN, (uintmax_t)0xABCDEF);
  SAME("[%d|%5d|%-5d|%05d|%u|%x|%08X|%o|%ld|%lld|%zu]", -42, 7, 7, -7, 4000000000u, 255, 0xBEEFu, 8, -1L,
       -1234567890123LL, (size_t)12);
  SAME("%Ld|%Lu", 123456789012LL, 18446744073709551615ULL); /* L with integers: long long, as glibc */
}

static void test_strings_chars_pointers_match_libc(void)
{
  size_t f, v;
  int x = 0;
  for (f = 0; f < sizeof string_formats / sizeof string_formats[0]; f++) {
    for (v = 0; v < sizeof string_values / sizeof string_values[0]; v++) {
      snprintf(context, sizeof context, " (format \"%s\", \"%s\")", string_formats[f], string_values[v]);
      SAME(string_formats[f], string_values[v]);
    }
  }
  SAME("[%c|%5c|%-5c|%c%c]", 'z', 'a', 'b', '\t', 0xE9);
  SAME("[%p|%20p|%-20p|%p|%10p|%-10p]", (void *)&x, (void *)&x, (void *)&x, (void *)0x1234, (void *)0x1234,
       (void *)0x1234);
  SAME("[%p|%10p|%-10p]", (void *)0, (void *)0, (void *)0);
  SAME("[%%|100%%|%s%%]", "x");
  SAME("[%*d|%-*d|%*d|%.*d|%.*d|%*.*s|%.*s]", 6, 42, 6, 42, -6, 42, 4, 7, -1, 7, 8, 3, "abcdef", 2, "xyz");
  SAME("%s", "a plain string, no conversions");
  SAME("%s\n%s", "two", "lines");
  SAME("[%lc]", (wint_t)'A'); /* the low byte of a wide character */
}

/* ---- issue 15: each bug ---------------------------------------------------------------------- */

/* 1. %f with a large precision overflowed a 48-byte stack buffer (and precision >= 20 was
 * undefined behaviour): precisions saturate at 40, nothing overflows. */
static void test_bug1_large_float_precision_never_overflows(void)
{
#if defined(UTVM_CONSOLE_FLOAT)
  char zeros[64];
  memset(zeros, '0', 40);
  zeros[40] = '\0';
  reset();
  prints(__LINE__, printf("%.47f", 0.0), (snprintf(want, sizeof want, "0.%s", zeros), want));
  reset();
  prints(__LINE__, printf("%.4000f|", 1.5), (snprintf(want, sizeof want, "1.5%.39s|", zeros), want));
  SAME("%.40f", 0.1);
  SAME("%.25f", 1e-20);
  SAME("%.30e", 1.0 / 3.0);
  SAME("%.40g", 2.0 / 3.0);
#else
  PRINTS("<float>|<float>", "%.47f|%.4000f", 0.0, 1.5);
#endif
}

/* 2. Conversions the console did not implement desynchronised the argument list: a following
 * %s dereferenced a small integer. Each is implemented or consumes its argument and shows a marker. */
static void test_bug2_every_conversion_keeps_arguments_in_step(void)
{
  const char *volatile fmt_n = "%n|%s";
  const char *volatile fmt_ls = "%ls|%s";
  const char *volatile fmt_unknown = "%y|%s";
  int stored = -1;
  SAME("%hd|%s", 70000, "ok");
  SAME("%hhd|%s", 300, "ok");
  SAME("%+d|%s", 5, "ok");
  SAME("% d|%s", 5, "ok");
  SAME("%*d|%s", 4, 5, "ok");
  SAME("%.*d|%s", 4, 5, "ok");
  SAME("%jd|%s", (intmax_t)-5, "ok");
  SAME("%td|%s", (ptrdiff_t)-5, "ok");
  SAME("%zd|%s", (ptrdiff_t)-5, "ok");
  SAME("%lld|%s", -5LL, "ok");
  PRINTS("<float>|ok", "%Lf|%s", (long double)1.5, "ok");
  PRINTS("<float>|ok", "%a|%s", 1.5, "ok");
  PRINTS("<float>|ok", "%LA|%s", (long double)1.5, "ok");
  PRINTS("%n|ok", fmt_n, &stored, "ok");
  EXPECT(stored == -1); /* %n stores nothing */
  PRINTS("%ls|ok", fmt_ls, L"wide", "ok");
  PRINTS("%y|ok", fmt_unknown, "ok"); /* not a C conversion: nothing consumed */
#if defined(UTVM_CONSOLE_FLOAT)
  SAME("%e|%s", 1.5, "ok");
  SAME("%g|%s", 1.5, "ok");
  SAME("%E|%G|%s", 1.5, 2.5, "ok");
#else
  PRINTS("<float>|<float>|<float>|<float>|ok", "%f|%e|%g|%E|%s", 1.5, 2.5, 3.5, 4.5, "ok");
  PRINTS("   <float>|<float>   |ok", "%10f|%-10e|%s", 1.5, 2.5, "ok");
#endif
}

/* 3. A long digit string as width or precision overflowed a signed int: they saturate at 4095. */
static void test_bug3_huge_widths_and_precisions_saturate(void)
{
  const char *volatile fmt_width = "%99999999999999999999d|";
  const char *volatile fmt_prec = "%.99999999999999999999d|";
  const char *volatile fmt_star = "%*d|";
  const char *volatile fmt_s = "%.99999999999999999999s|";
  memset(want, ' ', 4094);
  want[4094] = '1';
  want[4095] = '|';
  want[4096] = '\0';
  reset();
  prints(__LINE__, printf(fmt_width, 1), want);
  memset(want, '0', 4094);
  reset();
  prints(__LINE__, printf(fmt_prec, 1), want);
  memset(want, ' ', 4094);
  reset();
  prints(__LINE__, printf(fmt_star, INT_MAX, 1), want);
  memset(want + 1, ' ', 4094);
  want[0] = '1';
  want[4095] = '|';
  reset();
  prints(__LINE__, printf(fmt_star, INT_MIN, 1), want); /* a negative * width: left-aligned */
  PRINTS("abc|", fmt_s, "abc");
}

/* 4. putchar re-entered by a hook that prints, with the line buffer full, wrote one past it and
 * then never flushed. Nothing is ever written out of bounds; what the hook prints while a line is
 * being sent is dropped (it would recurse). */
static void test_bug4_reentrant_putchar_stays_in_bounds(void)
{
  int i;
  reset();
  hook_prints = 3;
  for (i = 0; i < 300; i++) {
    putchar('a' + (i % 26));
  }
  hook_prints = 0;
  utvm_console_flush();
  EXPECT(utvm_console_len == 0u);
  EXPECT(captured_len == 300u); /* each full line is sent; the hook's text found no room */
  for (i = 0; i < 300; i++) {
    if (captured[i] != (char)('a' + (i % 26))) {
      EXPECT(captured[i] == (char)('a' + (i % 26)));
      break;
    }
  }
  reset();
  hook_prints = 2;
  printf("first\n");
  hook_prints = 0;
  printf("second\n");
  EXPECT(strcmp(output(), "first\nsecond\n") == 0); /* the hook's text was dropped */
  reset();
  utvm_console_len = 100000u; /* a corrupted length (a kernel writing wild) */
  putchar('x');
  utvm_console_flush();
  EXPECT(utvm_console_len == 0u);
  EXPECT(captured_len == UTVM_CONSOLE_LINE_SIZE + 1u); /* sent the buffer, never past it, then the x */
  EXPECT(captured[UTVM_CONSOLE_LINE_SIZE] == 'x');
  reset();
  utvm_console_len = UTVM_CONSOLE_LINE_SIZE;
  console_busy = true; /* a trap inside a flush left the console busy */
  putchar('y');
  EXPECT(utvm_console_len == UTVM_CONSOLE_LINE_SIZE);
  utvm_console_begin();
  EXPECT(utvm_console_len == 0u && !console_busy);
  putchar('z');
  EXPECT(strcmp(output(), "z") == 0);
}

/* 9. printf returns the count; %p and %c take a width; a call's partial line stays in
 * utvm_console_line for the host to read after a fault, and utvm_console_begin() clears it. */
static void test_bug9_count_widths_and_the_line_left_behind(void)
{
  int i;
  char long_text[301];
  SAME("%10p|%-10p|", (void *)0x1234, (void *)0x1234);
  SAME("%5c|%-5c|", 'x', 'y');
  for (i = 0; i < 300; i++) {
    long_text[i] = (char)('a' + (i % 26));
  }
  long_text[300] = '\0';
  SAME("%s and %d", long_text, 12345); /* more than a line buffer: several flushes */
  SAME("%-200s|", "padded past the line buffer");
  reset();
  EXPECT(printf("partial, no newline %d", 7) == 21);
  EXPECT(captured_len == 0u); /* nothing sent yet: it waits for the newline or the flush */
  EXPECT(utvm_console_len == 21u);
  EXPECT(memcmp(utvm_console_line, "partial, no newline 7", 21) == 0);
  utvm_console_begin(); /* the next call: the line a faulted call left is not its output */
  printf("next\n");
  EXPECT(strcmp(output(), "next\n") == 0);
  reset();
  EXPECT(puts("puts adds a newline") >= 0);
  EXPECT(putchar(0x1E9) == 0xE9);
  EXPECT(strcmp(output(), "puts adds a newline\n\xE9") == 0);
}

/* ---- floats -------------------------------------------------------------------------------- */

#if defined(UTVM_CONSOLE_FLOAT)
static const char *const float_formats[] = {
    "%f", "%F", "%.0f", "%.1f", "%.2f", "%.3f", "%.10f", "%.17f", "%.20f", "%.40f", "%#.0f", "%10.3f", "%-10.3f|",
    "%010.3f", "%+f", "% f", "%+010.2f", "%e", "%E", "%.0e", "%#.0e", "%.1e", "%.3e", "%.10e", "%.16e", "%.20e",
    "%.40e", "%15.4e", "%-15.4e|", "%015.4e", "%+e", "% .2e", "%g", "%G", "%.0g", "%.1g", "%.2g", "%.3g", "%.10g",
    "%.17g", "%.25g", "%.40g", "%#g", "%#.3g", "%#.0g", "%12g", "%-12g|", "%012g", "%+g", "% g", "%+.3G"};

static const double float_values[] = {0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, 3.5, -2.5, 0.125, 0.375, 1e-5, 1e-4,
                                      1.25e-5, 0.1, 0.2, 0.3, 1.0 / 3.0, 2.0 / 3.0, 3.14159265358979, 9.5, 99.5,
                                      999999.5, 9999995.0, 0.000123456, 123456.0, 1234567.0, 1e15, 1e16, 1e17,
                                      1e21, 1e22, 1e23, 1e100, 1e-100, 1e300, 1e308, 1.7976931348623157e308,
                                      2.2250738585072014e-308, 4.9406564584124654e-324, 1e-310, 5e-324,
                                      123.456, -0.000001, 0.999999, 0.9999995, 9.9999999, 0.05, 0.45, 1e6, 1e7};

/* glibc (2.36) drops the zeros %#g must keep when rounding carries into a new digit:
 * printf("%#g", 999999.5) gives "1.e+06" where C (and Python) give "1.00000e+06". */
static int glibc_alt_g_bug(const char *format, double value)
{
  return strchr(format, '#') != NULL && strpbrk(format, "gG") != NULL && (value == 999999.5 || value == 9999995.0);
}

static void test_floats_match_libc(void)
{
  size_t f, v;
  for (f = 0; f < sizeof float_formats / sizeof float_formats[0]; f++) {
    for (v = 0; v < sizeof float_values / sizeof float_values[0]; v++) {
      if (glibc_alt_g_bug(float_formats[f], float_values[v])) {
        continue;
      }
      snprintf(context, sizeof context, " (format \"%s\", %.17g)", float_formats[f], float_values[v]);
      SAME(float_formats[f], float_values[v]);
      snprintf(context, sizeof context, " (format \"%s\", %.17g)", float_formats[f], -float_values[v]);
      SAME(float_formats[f], -float_values[v]);
    }
  }
  SAME("[%f|%F|%e|%E|%g|%G|%5f|%-6f|%05f|%+f|% f]", 1.0 / 0.0, -1.0 / 0.0, 1.0 / 0.0, -1.0 / 0.0, 1.0 / 0.0,
       1.0 / 0.0, 1.0 / 0.0, 1.0 / 0.0, 1.0 / 0.0, 1.0 / 0.0, 1.0 / 0.0);
  SAME("[%f|%F|%e|%G|%5f|%-6f|]", __builtin_nan(""), __builtin_nan(""), -__builtin_nan(""),
       -__builtin_nan(""), __builtin_nan(""), __builtin_nan(""));
  SAME("[%s|%.2f|%f|%.0f|%f]", "abc", 3.14159, -0.5, 2.5, 1e6);
  SAME("%*.*f|%-*.*e|", 12, 3, 3.14159, 14, 2, 2.71828);
  PRINTS("1.00000e+06|1.00e+03|-1.00000e+07|99999.9", "%#g|%#.3g|%#g|%#g", 999999.5, 999.5, -9999995.0, 99999.95);
}
#endif

int main(void)
{
  test_ints_match_libc();
  test_strings_chars_pointers_match_libc();
  test_bug1_large_float_precision_never_overflows();
  test_bug2_every_conversion_keeps_arguments_in_step();
  test_bug3_huge_widths_and_precisions_saturate();
  test_bug4_reentrant_putchar_stays_in_bounds();
  test_bug9_count_widths_and_the_line_left_behind();
#if defined(UTVM_CONSOLE_FLOAT)
  test_floats_match_libc();
#endif
  fprintf(stdout, "console%s: %d checks, %d failed\n",
#if defined(UTVM_CONSOLE_FLOAT)
          " (float)",
#else
          "",
#endif
          checks, failures);
  return failures == 0 ? 0 : 1;
}
