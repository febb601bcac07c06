/* libFuzzer harness of the device console (device_stubs/runtime/utvm_console.c), with %f %e %g
 * compiled in (UTVM_CONSOLE_FLOAT; the float-free build differs only in printing "<float>",
 * which tests/device_c/unit/test_console.c covers).
 *
 * The input is a sequence of directives; each becomes one printf call whose format is built from
 * a grammar (literal text, then one conversion with flags, width, precision and length modifier
 * as digits or *, then "|%s" and a sentinel string), with arguments of exactly the types C gives
 * that conversion, so any desynchronised argument shows (the sentinel %s would read garbage).
 * Where C (and glibc) define the output, it must equal snprintf's, and the return values too.
 * Directives may also make the console's hook print while the console sends a line (re-entrant
 * putchar and printf), corrupt the line buffer's length as a wild kernel would, or leave the
 * console busy as a trap inside a flush would.
 *
 * A directive (missing bytes read as 0):
 *   [0] mode: bits 0-1 the hook (0, 3: capture; 1: putchar 2 characters; 2: a nested printf),
 *       bit 2 corrupt utvm_console_len to 4 * [1] first, bit 3 leave the console busy, then
 *       call utvm_console_begin(), bit 4 also puts() the %s argument
 *   [1] flags: bit 0 '-', 1 '+', 2 ' ', 3 '#', 4 '0'; bit 5: a 20-digit width; bit 6: a 20-digit precision
 *   [2] width: 0 none, 1 digits ([6] % 100), 2 '*' ([6..7] as int16), 3 digits ([6..7] as uint16)
 *   [3] precision: 0 none, 1 '.', 2 '.' digits ([8] % 64 or [8..9] as uint16 when [8] & 0x80), 3 '.*' ([8..9] as int16)
 *   [4] length: index into "", hh, h, l, ll, j, z, t, L
 *   [5] conversion: index into "diouxXcspfFeEgGaAn%y"
 *   [6..9] width and precision values, [10..17] the argument's bits (little-endian)
 *   [18] literal length (0-7) and [19] %s argument length (0-31; bit 7: a null pointer), then those bytes
 *
 * Run: python tests/device_c/checks.py fuzz console --seconds 60 */
#define UTVM_CONSOLE_FLOAT
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

void UTVMConsoleHook(const char *s, size_t n);

#include "../../../device_stubs/runtime/utvm_console.c"

#define OUT_SIZE (1u << 17)

static char got[OUT_SIZE + 1u];
static size_t got_len;
static char want[OUT_SIZE];
static int hook_mode;

void UTVMConsoleHook(const char *s, size_t n)
{
  size_t i;
  for (i = 0; i < n && got_len < OUT_SIZE; i++) {
    got[got_len++] = s[i];
  }
  got[got_len] = '\0';
  if (hook_mode == 1) {
    putchar('#');
    putchar('\n');
  } else if (hook_mode == 2) {
    printf("<%d|%s|%.2f>\n", 42, "nested", 1.5);
  }
}

static const char *const lengths[] = {"", "hh", "h", "l", "ll", "j", "z", "t", "L"};
static const char conversions[] = "diouxXcspfFeEgGaAn%y";

enum kind { K_NONE, K_INT, K_UINT, K_LONG, K_ULONG, K_LLONG, K_ULLONG, K_INTMAX, K_UINTMAX, K_SSIZE, K_SIZE,
            K_WINT, K_STR, K_WSTR, K_PTR, K_DOUBLE, K_LDOUBLE, K_NPTR };

typedef struct {
  int stars; /* bit 0: a * width argument, bit 1: a * precision argument */
  int w, p;
  enum kind kind;
  uint64_t bits;
  const char *s;
} call_args;

static const char *const sentinel = "END";

/* OUT(fmt, ...) with the star arguments, the value of its kind, and the sentinel. */
#define WITH_STARS(OUT, fmt, a, ...) \
  do { \
    switch ((a)->stars) { \
    case 0: OUT(fmt, __VA_ARGS__ sentinel); break; \
    case 1: OUT(fmt, (a)->w, __VA_ARGS__ sentinel); break; \
    case 2: OUT(fmt, (a)->p, __VA_ARGS__ sentinel); break; \
    default: OUT(fmt, (a)->w, (a)->p, __VA_ARGS__ sentinel); break; \
    } \
  } while (0)

#define DISPATCH(OUT, fmt, a) \
  do { \
    double d_; \
    int n_ = 0; \
    memcpy(&d_, &(a)->bits, sizeof d_); \
    switch ((a)->kind) { \
    case K_NONE: WITH_STARS(OUT, fmt, a, ); break; \
    case K_INT: WITH_STARS(OUT, fmt, a, (int)(a)->bits,); break; \
    case K_UINT: WITH_STARS(OUT, fmt, a, (unsigned)(a)->bits,); break; \
    case K_LONG: WITH_STARS(OUT, fmt, a, (long)(a)->bits,); break; \
    case K_ULONG: WITH_STARS(OUT, fmt, a, (unsigned long)(a)->bits,); break; \
    case K_LLONG: WITH_STARS(OUT, fmt, a, (long long)(a)->bits,); break; \
    case K_ULLONG: WITH_STARS(OUT, fmt, a, (unsigned long long)(a)->bits,); break; \
    case K_INTMAX: WITH_STARS(OUT, fmt, a, (intmax_t)(a)->bits,); break; \
    case K_UINTMAX: WITH_STARS(OUT, fmt, a, (uintmax_t)(a)->bits,); break; \
    case K_SSIZE: WITH_STARS(OUT, fmt, a, (ptrdiff_t)(a)->bits,); break; \
    case K_SIZE: WITH_STARS(OUT, fmt, a, (size_t)(a)->bits,); break; \
    case K_WINT: WITH_STARS(OUT, fmt, a, (wint_t)((a)->bits & 0x7F),); break; \
    case K_STR: WITH_STARS(OUT, fmt, a, (a)->s,); break; \
    case K_WSTR: WITH_STARS(OUT, fmt, a, L"wide",); break; \
    case K_PTR: WITH_STARS(OUT, fmt, a, (void *)(uintptr_t)(a)->bits,); break; \
    case K_DOUBLE: WITH_STARS(OUT, fmt, a, d_,); break; \
    case K_LDOUBLE: WITH_STARS(OUT, fmt, a, (long double)1.5,); break; \
    case K_NPTR: WITH_STARS(OUT, fmt, a, &n_,); break; \
    } \
  } while (0)

static int got_ret;
static int want_ret;
#define OUT_CONSOLE(...) got_ret = printf(__VA_ARGS__)
#define OUT_LIBC(...) want_ret = snprintf(want, sizeof want, __VA_ARGS__)

static uint32_t u16(const uint8_t *b) { return (uint32_t)b[0] | ((uint32_t)b[1] << 8); }

/* One directive starting at data; returns the bytes it used. */
static size_t one_call(const uint8_t *data, size_t size)
{
  uint8_t d[20] = {0};
  char fmt[128];
  char text[40];
  size_t used = size < sizeof d ? size : sizeof d;
  size_t n = 0;
  size_t i;
  size_t literal, string;
  int comparable = 1;
  int hooked;
  int int_conv, length, conv;
  uint32_t width = 0, prec = 0;
  int has_prec = 0;
  call_args a;
  memcpy(d, data, used);
  memset(&a, 0, sizeof a);
  /* literal text and the %s argument, printable and never '%' */
  literal = d[18] % 8u;
  string = d[19] % 32u;
  for (i = 0; i < literal && used < size; i++, used++) {
    fmt[n++] = (char)(data[used] % 95u + 32u) == '%' ? '+' : (char)(data[used] % 95u + 32u);
  }
  for (i = 0; i < string && used < size; i++, used++) {
    text[i] = (char)(data[used] % 255u + 1u);
  }
  text[i] = '\0';
  a.s = (d[19] & 0x80) ? NULL : text;
  fmt[n++] = '%';
  if (d[1] & 1) fmt[n++] = '-';
  if (d[1] & 2) fmt[n++] = '+';
  if (d[1] & 4) fmt[n++] = ' ';
  if (d[1] & 8) fmt[n++] = '#';
  if (d[1] & 16) fmt[n++] = '0';
  if (d[1] & 32) {
    n += (size_t)sprintf(fmt + n, "99999999999999999999");
    comparable = 0;
  } else if (d[2] % 4 == 1) {
    width = d[6] % 100u;
    n += (size_t)sprintf(fmt + n, "%u", (unsigned)width);
  } else if (d[2] % 4 == 2) {
    fmt[n++] = '*';
    a.stars |= 1;
    a.w = (int16_t)u16(&d[6]);
    width = (uint32_t)(a.w < 0 ? -a.w : a.w);
  } else if (d[2] % 4 == 3) {
    width = u16(&d[6]);
    n += (size_t)sprintf(fmt + n, "%u", (unsigned)width);
  }
  if (d[1] & 64) {
    n += (size_t)sprintf(fmt + n, ".99999999999999999999");
    comparable = 0;
  } else if (d[3] % 4 == 1) {
    fmt[n++] = '.';
    has_prec = 1;
  } else if (d[3] % 4 == 2) {
    prec = (d[8] & 0x80) ? u16(&d[8]) : d[8] % 64u;
    has_prec = 1;
    n += (size_t)sprintf(fmt + n, ".%u", (unsigned)prec);
  } else if (d[3] % 4 == 3) {
    fmt[n++] = '.';
    fmt[n++] = '*';
    a.stars |= 2;
    a.p = (int16_t)u16(&d[8]);
    has_prec = a.p >= 0;
    prec = has_prec ? (uint32_t)a.p : 0u;
  }
  length = d[4] % 9;
  conv = conversions[d[5] % (sizeof conversions - 1)];
  n += (size_t)sprintf(fmt + n, "%s%c|%%s", lengths[length], conv);
  fmt[n] = '\0';
  for (i = 0; i < 8; i++) {
    a.bits |= (uint64_t)d[10 + i] << (8 * i);
  }
  /* the argument's type, as C gives it for this conversion and length */
  int_conv = strchr("diouxX", conv) != NULL;
  if (int_conv) {
    int sig = conv == 'd' || conv == 'i';
    static const enum kind signed_kinds[] = {K_INT, K_INT, K_INT, K_LONG, K_LLONG, K_INTMAX, K_SSIZE, K_SSIZE, K_LLONG};
    static const enum kind unsigned_kinds[] = {K_UINT, K_UINT, K_UINT, K_ULONG, K_ULLONG, K_UINTMAX, K_SIZE, K_SIZE,
                                               K_ULLONG};
    a.kind = sig ? signed_kinds[length] : unsigned_kinds[length];
  } else if (conv == 'c') {
    a.kind = length == 3 ? K_WINT : K_INT;
    if (length != 0 && length != 3) comparable = 0;
  } else if (conv == 's') {
    a.kind = length == 3 ? K_WSTR : K_STR;
    if (length != 0 || a.s == NULL) comparable = 0;
  } else if (conv == 'p') {
    a.kind = K_PTR;
    if (length != 0 || (d[1] & (2 | 4 | 8))) comparable = 0; /* glibc's %p takes + space #: C leaves it undefined */
  } else if (strchr("fFeEgGaA", conv) != NULL) {
    a.kind = length == 8 ? K_LDOUBLE : K_DOUBLE;
    if ((length != 0 && length != 3) || conv == 'a' || conv == 'A') comparable = 0; /* markers */
    if (has_prec && prec > FLOAT_PREC_MAX) comparable = 0;
    if ((d[1] & 8) && (conv == 'g' || conv == 'G')) comparable = 0; /* glibc drops zeros %#g keeps */
  } else if (conv == 'n') {
    a.kind = K_NPTR;
    comparable = 0;
  } else { /* '%' and 'y': no argument */
    a.kind = K_NONE;
    if (conv == 'y' || a.stars != 0 || length != 0) comparable = 0;
  }
  if (width > FIELD_MAX || (has_prec && prec > FIELD_MAX)) comparable = 0; /* the console saturates */
  /* the console's state, as kernels and traps may leave it */
  hook_mode = d[0] & 3;
  if (hook_mode == 1 || hook_mode == 2) comparable = 0;
  if (d[0] & 4) {
    utvm_console_len = 4u * d[1];
    comparable = 0;
  }
  if (d[0] & 8) {
    console_busy = true;
    utvm_console_begin();
  }
  hooked = hook_mode != 0 && hook_mode != 3;
  got_len = 0;
  got[0] = '\0';
  DISPATCH(OUT_CONSOLE, fmt, &a);
  if (d[0] & 16) {
    size_t before = got_len;
    utvm_console_flush();
    before = got_len;
    if (puts(text) < 0) abort();
    utvm_console_flush();
    if (!hooked && (got_len - before != strlen(text) + 1 || memcmp(got + before, text, strlen(text)) != 0)) {
      fprintf(stderr, "puts(\"%s\") printed \"%s\"\n", text, got + before);
      abort();
    }
    got_len = before; /* the sentinel check below looks at printf's output */
    got[got_len] = '\0';
  }
  utvm_console_flush();
  hook_mode = 0;
  utvm_console_flush(); /* what the hook printed while a line was sent */
  if (utvm_console_len > UTVM_CONSOLE_LINE_SIZE) abort();
  if (comparable) {
    DISPATCH(OUT_LIBC, fmt, &a);
    if (strcmp(got, want) != 0 || got_ret != want_ret) {
      fprintf(stderr, "format \"%s\": console printed \"%.200s\" (%d), the C library \"%.200s\" (%d)\n", fmt, got,
              got_ret, want, want_ret);
      abort();
    }
  } else {
    /* whatever was printed, the sentinel after the conversion came out whole: arguments in step */
    if (!hooked && got_len < OUT_SIZE &&
        (got_len < 4 || memcmp(got + got_len - 4, "|END", 4) != 0)) {
      fprintf(stderr, "format \"%s\": the sentinel is missing from \"%.200s\"\n", fmt, got);
      abort();
    }
  }
  utvm_console_begin();
  return used;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  size_t pos = 0;
  utvm_console_begin();
  while (pos < size) {
    pos += one_call(data + pos, size - pos);
  }
  return 0;
}
