/* utvm-host device console: printf, puts and putchar for kernels, with no heap.
 *
 * Text is collected in a bounded line buffer and sent, a line (or a full buffer) at a time,
 * through the device's natural channel, chosen when the runtime is built (cfg["console"]):
 *   UTVM_CONSOLE_NS16550=base   a 16550 UART (QEMU riscv virt: 0x10000000)
 *   UTVM_CONSOLE_CMSDK=base     an Arm CMSDK APB UART (QEMU MPS2: 0x40004000)
 *   UTVM_CONSOLE_HTIF           Spike's host interface: a write(1, ...) system call
 *   UTVM_CONSOLE_FD=n           the host device: a write(n, ...) system call
 * and with none of them the text goes to UTVMConsoleHook if a link provides one (the serial
 * stub sends it in console frames), else it is dropped. UTVMMain starts every call with
 * utvm_console_begin() and the runtime flushes at its end; what a call that faulted left in the
 * line buffer (utvm_console_line, utvm_console_len) is read by the host.
 *
 * printf implements the formats listed in utvm_runtime.h. %f %e %g are compiled only with
 * UTVM_CONSOLE_FLOAT (cfg["console_float"]); they use integer arithmetic on the double's bits
 * (exact, correctly rounded like glibc), so even then no soft-float code is linked.
 *
 * Safety: every store into a buffer is checked against its size right before it is made, so
 * no format, argument, corrupted length or re-entered call (a hook that prints) writes out of
 * bounds; widths and precisions saturate instead of overflowing. MISRA C:2012 deviations are
 * marked inline and listed in device_stubs/MISRA.md (Console). */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "utvm_htif.h"
#include "utvm_runtime.h"
#include "utvm_uart.h"

char utvm_console_line[UTVM_CONSOLE_LINE_SIZE];
uint32_t utvm_console_len;
static bool console_busy; /* a flush is sending the line */

#if defined(UTVM_CONSOLE_NS16550)
static void channel_write(const char *s, uint32_t n)
{
  uint32_t i;
  for (i = 0u; i < n; i++) {
    utvm_ns16550_put((uintptr_t)(UTVM_CONSOLE_NS16550), (uint8_t)s[i]);
  }
}
#elif defined(UTVM_CONSOLE_CMSDK)
static void channel_write(const char *s, uint32_t n)
{
  uint32_t i;
  utvm_cmsdk_tx_on((uintptr_t)(UTVM_CONSOLE_CMSDK));
  for (i = 0u; i < n; i++) {
    utvm_cmsdk_put((uintptr_t)(UTVM_CONSOLE_CMSDK), (uint8_t)s[i]);
  }
}
#elif defined(UTVM_CONSOLE_HTIF)
static void channel_write(const char *s, uint32_t n) { utvm_htif_write(s, n); }
#elif defined(UTVM_CONSOLE_FD)
static void channel_write(const char *s, uint32_t n)
{
  uint32_t done = 0u;
  bool failed = false;
  while ((!failed) && (done < n)) {
    const uint32_t left = n - done;
    const long wrote = utvm_sys_write(UTVM_CONSOLE_FD, &s[done], left);
    if ((wrote <= 0) || (wrote > (long)left)) {
      failed = true; /* the host stopped reading: the rest of the line is dropped */
    } else {
      done += (uint32_t)wrote;
    }
  }
}
#else
/* No channel of its own: a link that carries the console (the serial stub) provides this. */
void UTVMConsoleHook(const char *s, size_t n) __attribute__((weak));
static void channel_write(const char *s, uint32_t n)
{
  if (UTVMConsoleHook != NULL) {
    UTVMConsoleHook(s, n);
  }
}
#endif

void utvm_console_begin(void)
{
  utvm_console_len = 0u;
  console_busy = false; /* a call that faulted inside a flush left it set */
}

void utvm_console_flush(void)
{
  uint32_t sent = utvm_console_len;
  if ((!console_busy) && (sent > 0u)) {
    if (sent > UTVM_CONSOLE_LINE_SIZE) {
      sent = UTVM_CONSOLE_LINE_SIZE; /* a corrupted length: never read past the buffer */
    }
    console_busy = true; /* what a hook prints while the line is sent is dropped: no recursion */
    channel_write(utvm_console_line, sent);
    utvm_console_len = 0u;
    console_busy = false;
  }
}

/* One character into the line buffer, its index checked right before the store: a full buffer
 * (or a corrupted length) is sent first. While a flush is sending the line (a hook that prints)
 * the character may find it still full, and is dropped; stored, it is dropped with the line. */
static void console_put(char c)
{
  if (utvm_console_len >= UTVM_CONSOLE_LINE_SIZE) {
    utvm_console_flush();
  }
  if (utvm_console_len < UTVM_CONSOLE_LINE_SIZE) {
    utvm_console_line[utvm_console_len] = c;
    utvm_console_len++;
  }
  if (c == '\n') {
    utvm_console_flush();
  }
}

int putchar(int c)
{
  const uint8_t byte = (uint8_t)c;
  console_put((char)byte);
  return (int)byte;
}

int puts(const char *s)
{
  uint32_t i = 0u;
  while (s[i] != '\0') {
    console_put(s[i]);
    i++;
  }
  console_put('\n');
  return 1;
}

/* ---- printf ------------------------------------------------------------------------------- */
/* One function: the format is parsed, each argument read and each field printed in line, so
 * every conversion shares the same code for padding and output (and for integers, the same
 * digit loop). */

#define FIELD_MAX 4095u    /* widths and precisions saturate here */
#define FLOAT_PREC_MAX 40u /* and float precisions here */
#define FLAG_LEFT 1u
#define FLAG_PLUS 2u
#define FLAG_SPACE 4u
#define FLAG_ALT 8u
#define FLAG_ZERO 16u
#define FLAG_PREC 32u /* a precision was given */

/* Argument sizes the length modifiers select (j, z and t map to the type of their size). */
#define SIZE_CHAR ((int32_t)-2)
#define SIZE_SHORT ((int32_t)-1)
#define SIZE_INT ((int32_t)0)
#define SIZE_LONG ((int32_t)1)
#define SIZE_LONG_LONG ((int32_t)2)
#define SIZE_LONG_DOUBLE ((int32_t)3) /* L: long long for integers, as glibc takes it */

/* The sign a signed conversion shows: '-', '+' (flag +), ' ' (flag space) or none (0). */
static char sign_of(uint32_t flags, bool negative)
{
  char sign = '\0';
  if (negative) {
    sign = '-';
  } else if ((flags & FLAG_PLUS) != 0u) {
    sign = '+';
  } else if ((flags & FLAG_SPACE) != 0u) {
    sign = ' ';
  } else {
    /* no sign */
  }
  return sign;
}

#if defined(UTVM_CONSOLE_FLOAT)
typedef struct {
  uint32_t count; /* characters printed */
  uint32_t flags;
  uint32_t width; /* after field_begin: the padding still owed after the body */
  uint32_t prec;
} console_field;

static void emit_repeat(char c, uint32_t n)
{
  uint32_t i;
  for (i = 0u; i < n; i++) {
    console_put(c);
  }
}

/* Starts a field whose body is len characters after sign (none: '\0'): a right-aligned field
 * gets its padding (spaces, or zeros with the 0 flag) now, a left-aligned one keeps it in
 * f->width for the end. Counts the whole field. */
static void field_begin(console_field *f, char sign, uint32_t len)
{
  const uint32_t used = ((sign != '\0') ? 1u : 0u) + len;
  uint32_t fill = (f->width > used) ? (f->width - used) : 0u;
  uint32_t zero_fill = 0u;
  f->count += used + fill;
  if ((f->flags & FLAG_LEFT) == 0u) {
    if ((f->flags & FLAG_ZERO) != 0u) {
      zero_fill = fill;
    } else {
      emit_repeat(' ', fill);
    }
    fill = 0u;
  }
  if (sign != '\0') {
    console_put(sign);
  }
  emit_repeat('0', zero_fill);
  f->width = fill;
}

/* big /= d for a number of n 32-bit limbs, least significant first, and d <= 0x10000 (so
 * 32-bit division does: no 64-bit division routine is linked); returns the remainder. */
static uint32_t big_div(uint32_t *big, uint32_t n, uint32_t d)
{
  uint32_t rem = 0u;
  uint32_t i = n;
  while (i > 0u) {
    uint32_t part;
    uint32_t quot;
    i--;
    part = (rem << 16) | (big[i] >> 16);
    quot = part / d;
    part = ((part % d) << 16) | (big[i] & 0xFFFFu);
    big[i] = (quot << 16) | (part / d);
    rem = part % d;
  }
  return rem;
}

/* A number as big as m * 5^p * 2^(e+p+1), the largest %f makes with the largest precision
 * (53 + 2.33 * 40 + 971 + 41 bits < 37 limbs), and its decimal digits (309 + 40 + a carry). */
typedef struct {
  uint32_t limb[38]; /* least significant first */
  uint32_t n;        /* limbs in use; the top one is nonzero */
  uint8_t pair[176]; /* big_digits: two decimal digits per byte, least significant first */
} console_big;

static void big_trim(console_big *b)
{
  while ((b->n > 0u) && (b->limb[b->n - 1u] == 0u)) {
    b->n--;
  }
}

/* b = b * m + add (what does not fit in b->limb is dropped; its size ensures it never is). */
static void big_mul_add(console_big *b, uint32_t m, uint32_t add)
{
  uint64_t carry = add;
  uint32_t i;
  for (i = 0u; i < b->n; i++) {
    const uint64_t product = ((uint64_t)b->limb[i] * m) + carry;
    b->limb[i] = (uint32_t)product;
    carry = product >> 32;
  }
  if ((carry != 0u) && (b->n < (uint32_t)(sizeof(b->limb) / sizeof(b->limb[0])))) {
    b->limb[b->n] = (uint32_t)carry;
    b->n++;
  }
}

/* b /= d (d <= 0x10000); true when the division was not exact. */
static bool big_div_inexact(console_big *b, uint32_t d)
{
  const uint32_t rem = big_div(b->limb, b->n, d);
  big_trim(b);
  return rem != 0u;
}

/* b = m * 2^e * 10^t rounded to an integer, ties to even (glibc's default rounding). */
static void big_scaled(console_big *b, uint64_t m, int32_t e, int32_t t)
{
  int32_t shift = e + t + 1; /* one more bit: the half */
  int32_t k;
  bool inexact = false;
  bool half;
  b->limb[0] = (uint32_t)m;
  b->limb[1] = (uint32_t)(m >> 32);
  b->n = 2u;
  big_trim(b);
  for (k = 0; k < t; k++) {
    big_mul_add(b, 5u, 0u);
  }
  while (shift > 0) {
    const int32_t step = (shift > 16) ? 16 : shift;
    big_mul_add(b, (uint32_t)1u << (uint32_t)step, 0u);
    shift -= step;
  }
  while (shift < 0) {
    const int32_t step = (shift < -16) ? 16 : -shift;
    inexact = big_div_inexact(b, (uint32_t)1u << (uint32_t)step) || inexact;
    shift += step;
  }
  for (k = t; k < 0; k++) {
    inexact = big_div_inexact(b, 5u) || inexact;
  }
  half = big_div_inexact(b, 2u);
  if (half && (inexact || ((b->n > 0u) && ((b->limb[0] & 1u) != 0u)))) {
    big_mul_add(b, 1u, 1u);
  }
}

/* The decimal digits of b (b is consumed), two per byte, least significant first; returns how
 * many there are without leading zeros (at least 1). */
static uint32_t big_digits(console_big *b)
{
  uint32_t n = 0u;
  while ((b->n > 0u) && (n < (2u * (uint32_t)sizeof(b->pair)))) {
    const uint32_t pair = big_div(b->limb, b->n, 100u);
    big_trim(b);
    b->pair[n / 2u] = (uint8_t)(((pair / 10u) << 4) | (pair % 10u));
    n += 2u;
  }
  if (n == 0u) {
    b->pair[0] = 0u; /* zero: one digit */
    n = 1u;
  }
  while ((n > 1u) && ((((uint32_t)b->pair[(n - 1u) / 2u] >> (((n - 1u) % 2u) * 4u)) & 15u) == 0u)) {
    n--;
  }
  return n;
}

/* Digit i (0: least significant) of a big_digits result of n digits; 0 above them. */
static char big_digit(const console_big *b, uint32_t n, uint32_t i)
{
  uint32_t d = 0u;
  if (i < n) {
    d = ((uint32_t)b->pair[i / 2u] >> ((i % 2u) * 4u)) & 15u;
  }
  return "0123456789"[d];
}

/* %f %e %g (and F E G): exact decimal digits of the double, rounded ties-to-even. */
static void float_field(console_field *f, double value, char conv)
{
  uint64_t bits = 0u;
  const uint8_t *const bytes = (const uint8_t *)&value;
  uint8_t *const bits_bytes = (uint8_t *)&bits;
  uint32_t i;
  for (i = 0u; i < sizeof(bits); i++) { /* the double's bits, without a union or a cast */
    bits_bytes[i] = bytes[i];
  }
  {
    const bool negative = (bits >> 63) != 0u;
    const uint32_t biased = (uint32_t)(bits >> 52) & 0x7FFu;
    uint64_t m = bits & 0xFFFFFFFFFFFFFull;
    const char prefix = sign_of(f->flags, negative);
    const bool upper = ((uint32_t)(uint8_t)conv & 32u) == 0u;
    if (biased == 0x7FFu) {
      uint32_t special = 0u; /* "inf" */
      if (m != 0u) {
        special = 6u; /* "nan" */
      }
      if (upper) {
        special += 3u;
      }
      f->flags &= ~FLAG_ZERO;
      field_begin(f, prefix, 3u);
      for (i = special; i < (special + 3u); i++) {
        console_put("infINFnanNAN"[i]);
      }
      emit_repeat(' ', f->width);
    } else {
      console_big b;
      int32_t e = -1074;
      int32_t x = 0; /* the decimal exponent of %e */
      uint32_t p = 6u;
      uint32_t frac;     /* digits after the point */
      uint32_t skip = 0u; /* low digits %g drops (trailing zeros) */
      uint32_t n;         /* digits of the rounded value */
      bool exponent = (conv != 'f') && (conv != 'F');
      if ((f->flags & FLAG_PREC) != 0u) {
        p = f->prec; /* at most FLOAT_PREC_MAX */
      }
      if (biased != 0u) {
        m |= 0x10000000000000ull;
        e = (int32_t)biased - 1075;
      }
      if (!exponent) {
        big_scaled(&b, m, e, (int32_t)p);
        n = big_digits(&b);
        frac = p;
      } else {
        const bool general = (conv == 'g') || (conv == 'G');
        if (general && (p == 0u)) {
          p = 1u;
        }
        frac = p;
        if (general) {
          frac--;
        }
        if (m != 0u) {
          int32_t top = -1; /* the highest set bit of m */
          uint64_t rest = m;
          while (rest != 0u) {
            top++;
            rest >>= 1;
          }
          /* log10(2) from below (1233/4096), minus one: never above the exponent */
          x = (((((e + top) * 1233) + (4096 * 400)) / 4096) - 400) - 1;
        }
        big_scaled(&b, m, e, (int32_t)frac - x);
        n = big_digits(&b);
        while (n > (frac + 1u)) { /* the estimate was low, or rounding carried into a new digit */
          x++;
          big_scaled(&b, m, e, (int32_t)frac - x);
          n = big_digits(&b);
        }
        if (general) {
          if ((x < (int32_t)p) && (x >= -4)) {
            int32_t moved = x; /* the same digits, as %f: the point moves x places */
            exponent = false;
            if (moved >= 0) {
              frac -= (uint32_t)moved;
            } else {
              moved = -moved;
              frac += (uint32_t)moved;
            }
          }
          if ((f->flags & FLAG_ALT) == 0u) {
            while ((skip < frac) && (big_digit(&b, n, skip) == '0')) {
              skip++;
            }
          }
        }
      }
      {
        const uint32_t shown = (n > frac) ? n : (frac + 1u); /* with leading zeros: 0.00ddd */
        const bool point = (frac > skip) || ((f->flags & FLAG_ALT) != 0u);
        const int32_t x_magnitude = (x < 0) ? -x : x;
        const uint32_t abs_x = (uint32_t)x_magnitude;
        uint32_t len = (shown - skip) + (point ? 1u : 0u);
        if (exponent) {
          len += (abs_x >= 100u) ? 5u : 4u;
        }
        field_begin(f, prefix, len);
        i = shown;
        while (i > skip) {
          i--;
          console_put(big_digit(&b, n, i));
          if ((i == frac) && point) {
            console_put('.');
          }
        }
        if (exponent) {
          console_put(upper ? 'E' : 'e');
          console_put((x < 0) ? '-' : '+');
          if (abs_x >= 100u) {
            console_put("0123456789"[abs_x / 100u]);
          }
          console_put("0123456789"[(abs_x / 10u) % 10u]);
          console_put("0123456789"[abs_x % 10u]);
        }
        emit_repeat(' ', f->width);
      }
    }
  }
}
/* %f %e %g of value in a field: returns the characters printed. */
static uint32_t put_float(uint32_t flags, uint32_t width, uint32_t prec, double value, char conv)
{
  console_field f;
  f.count = 0u;
  f.flags = flags;
  f.width = width;
  f.prec = prec;
  float_field(&f, value, conv);
  return f.count;
}
#endif /* UTVM_CONSOLE_FLOAT */

/* The index of c in the NUL-terminated set; the set's length when c is not in it (or is NUL). */
static uint32_t index_in(const char *set, char c)
{
  uint32_t i = 0u;
  while ((set[i] != '\0') && (set[i] != c)) {
    i++;
  }
  return i;
}

/* v /= base (2..16) and the remainder: on 32-bit machines in 16-bit steps that 32-bit division
 * does, so no 64-bit division routine (libgcc's __udivdi3) is linked. */
static uint32_t divide(uint64_t *v, uint32_t base)
{
#if defined(__LP64__)
  const uint32_t rem = (uint32_t)(*v % base);
  *v /= base;
  return rem;
#else
  const uint32_t lo = (uint32_t)*v;
  uint32_t hi = (uint32_t)(*v >> 32);
  uint32_t part = ((hi % base) << 16) | (lo >> 16);
  uint32_t mid;
  hi /= base;
  mid = part / base;
  part = ((part % base) << 16) | (lo & 0xFFFFu);
  *v = ((uint64_t)hi << 32) | (mid << 16) | (part / base);
  return part % base;
#endif
}

/* Each character of the format, and each conversion, is one field, which one loop prints: a
 * prefix of plen characters (buf[0..1]: a sign, 0x or 0X), zeros, the len characters of body,
 * padded with spaces (or zeros) to the width. */
int printf(const char *fmt, ...)
{
  /* what index_in numbers: flags (0-4), length modifiers (5-10), conversions (11-29) */
  static const char spec[] = "-+ #0hlLjztdiouxXpcsfFeEgGaA%n";
  char buf[26]; /* a prefix, then an integer's digits (64 bits in octal: 22) from the end */
  uint32_t count = 0u;
  uint32_t i = 0u;
  /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
  va_list ap;
  /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
  va_start(ap, fmt);
  while (fmt[i] != '\0') {
    const uint32_t start = i;
    const char *body = &fmt[start];
    uint32_t len = 1u;
    uint32_t plen = 0u;
    uint32_t zeros = 0u;
    uint32_t width = 0u;
    uint32_t flags = 0u;
    uint32_t lead = 0u;
    uint32_t used;
    uint32_t k;
    i++;
    if (*body == '%') {
      int32_t size = SIZE_INT;
      uint32_t prec = 1u; /* integers: at least one digit */
      char conv;
      do { /* the flags, in the order of the FLAG_ bits */
        k = index_in(spec, fmt[i]);
        if (k < 5u) {
          flags |= (uint32_t)1u << k;
          i++;
        }
      } while (k < 5u);
      for (k = 0u; k < 2u; k++) { /* the width, then a precision: digits, or * and an int */
        int32_t number = 0;
        if (k == 1u) {
          if (fmt[i] != '.') {
            break;
          }
          i++;
        }
        if (fmt[i] == '*') {
          /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
          number = va_arg(ap, int);
          i++;
        } else {
          while ((fmt[i] >= '0') && (fmt[i] <= '9')) {
            if (number <= (int32_t)FIELD_MAX) {
              const uint32_t digit = (uint32_t)(uint8_t)fmt[i] - 48u;
              number = (number * 10) + (int32_t)digit;
            }
            i++;
          }
        }
        if (number > (int32_t)FIELD_MAX) { /* saturates at +-FIELD_MAX */
          number = (int32_t)FIELD_MAX;
        } else if (number < -(int32_t)FIELD_MAX) {
          number = -(int32_t)FIELD_MAX;
        } else {
          /* in range */
        }
        if (k == 0u) {
          if (number < 0) {
            flags |= FLAG_LEFT; /* a negative * width: the - flag */
            number = -number;
          }
          width = (uint32_t)number;
        } else if (number >= 0) { /* a negative * precision: as if none was given */
          flags |= FLAG_PREC;
          prec = (uint32_t)number;
        } else {
          /* no precision */
        }
      }
      k = index_in(spec, fmt[i]) - 5u;
      if (k < 6u) {
        /* size_t and ptrdiff_t are int or long here, intmax_t long or long long */
        static const int8_t sizes[6] = {SIZE_SHORT, SIZE_LONG, SIZE_LONG_DOUBLE,
                                        (sizeof(intmax_t) == sizeof(long)) ? SIZE_LONG : SIZE_LONG_LONG,
                                        (sizeof(size_t) == sizeof(int)) ? SIZE_INT : SIZE_LONG,
                                        (sizeof(size_t) == sizeof(int)) ? SIZE_INT : SIZE_LONG};
        size = sizes[k];
        i++;
        if ((k < 2u) && (fmt[i] == fmt[i - 1u])) { /* hh, ll */
          size *= 2;
          i++;
        }
      }
      conv = fmt[i];
      if (conv != '\0') {
        i++;
      }
      if ((flags & FLAG_LEFT) != 0u) {
        flags &= ~FLAG_ZERO; /* C: - turns the 0 flag off */
      }
      /* 0-6 integers, 7 c, 8 s, 9-16 floats, 17 %, 18 n (and ls); the rest is shown as written */
      k = index_in(spec, conv) - 11u;
      if (k > 19u) {
        k = 19u;
      }
      if ((k == 8u) && (size == SIZE_LONG)) {
        k = 18u; /* %ls: like %n */
      }
      if (k < 7u) {
        uint64_t v;
        uint32_t first = sizeof(buf);
        uint32_t base = 16u;
        if ((flags & FLAG_PREC) != 0u) {
          flags &= ~FLAG_ZERO; /* and so does an integer's precision */
        }
        if (k == 2u) {
          base = 8u;
        } else if (k < 4u) {
          base = 10u;
        } else {
          /* x X p */
        }
        if (k == 6u) {
          /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
          const char *const ptr = va_arg(ap, const char *);
          /* cppcheck-suppress misra-c2012-11.4 ; deviation C4 */
          v = (uint64_t)(uintptr_t)ptr;
          conv = 'x';
          flags |= FLAG_ALT; /* 0x */
        } else if (k < 2u) {
          if (size >= SIZE_LONG_LONG) {
            /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
            v = (uint64_t)va_arg(ap, long long);
          } else if (size == SIZE_LONG) {
            /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
            v = (uint64_t)va_arg(ap, long);
          } else {
            /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
            int32_t w = va_arg(ap, int);
            if (size == SIZE_SHORT) { /* h, hh: the argument converted to short or char */
              w = (int32_t)(int16_t)w;
            } else if (size == SIZE_CHAR) {
              w = (int32_t)(int8_t)w;
            } else {
              /* all of it */
            }
            v = (uint64_t)(int64_t)w;
          }
          if ((int64_t)v < 0) {
            v = 0u - v;
            buf[0] = '-';
          } else {
            buf[0] = sign_of(flags, false);
          }
          if (buf[0] != '\0') {
            plen = 1u;
          }
        } else {
          if (size >= SIZE_LONG_LONG) {
            /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
            v = va_arg(ap, unsigned long long);
          } else if (size == SIZE_LONG) {
            /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
            v = va_arg(ap, unsigned long);
          } else {
            /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
            uint32_t w = va_arg(ap, unsigned int);
            if (size == SIZE_SHORT) {
              w = (uint32_t)(uint16_t)w;
            } else if (size == SIZE_CHAR) {
              w = (uint32_t)(uint8_t)w;
            } else {
              /* all of it */
            }
            v = w;
          }
        }
        if ((k > 3u) && ((flags & FLAG_ALT) != 0u) && (v != 0u)) {
          buf[0] = '0'; /* %p, %#x, %#X: 0x or 0X */
          buf[1] = conv;
          plen = 2u;
        }
        while ((v != 0u) && (first > 2u)) {
          uint32_t digit = divide(&v, base);
          if (digit > 9u) {
            digit += 7u + ((uint32_t)(uint8_t)conv & 32u); /* a-f, or A-F for %X */
          }
          digit += 48u;
          first--;
          buf[first] = (char)digit;
        }
        body = &buf[first];
        len = (uint32_t)sizeof(buf) - first;
        if (prec > len) {
          zeros = prec - len;
        } else if (((flags & FLAG_ALT) != 0u) && (k == 2u)) {
          zeros = 1u; /* %#o: a leading zero */
        } else {
          /* none */
        }
        if ((k == 6u) && (len == 0u)) {
          body = "(nil)"; /* as glibc prints it */
          len = 5u;
          plen = 0u;
          zeros = 0u;
          flags &= ~FLAG_ZERO;
        }
      } else {
        const uint32_t zero = flags & FLAG_ZERO; /* only numbers pad with zeros */
        flags &= ~FLAG_ZERO;
        if (k == 7u) { /* %lc too: the low byte of the wide character */
          /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
          const int c = va_arg(ap, int);
          buf[0] = (char)(uint8_t)c;
          body = buf;
        } else if (k == 8u) {
          /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
          body = va_arg(ap, const char *);
          if (body == NULL) {
            body = "(null)";
          }
          len = ((flags & FLAG_PREC) != 0u) ? prec : UINT32_MAX;
          k = 0u;
          while ((k < len) && (body[k] != '\0')) {
            k++;
          }
          len = k;
        } else if (k < 17u) {
          if (prec > FLOAT_PREC_MAX) {
            prec = FLOAT_PREC_MAX;
          }
          body = "<float>";
          len = 7u;
          if (size == SIZE_LONG_DOUBLE) {
            /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
            (void)va_arg(ap, long double);
          } else {
            /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
            const double v = va_arg(ap, double);
#if defined(UTVM_CONSOLE_FLOAT)
            if (k < 15u) { /* not %a %A */
              count += put_float(flags | zero, width, prec, v, conv);
              len = 0u;
              width = 0u;
            }
#else
            (void)v;
            (void)zero;
#endif
          }
        } else {
          width = 0u; /* shown as written */
          if (k == 17u) {
            body = &fmt[i - 1u]; /* %%: just the % */
          } else {
            if (k == 18u) { /* %n and %ls consume their pointer */
              /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
              (void)va_arg(ap, const char *);
            }
            len = i - start;
          }
        }
      }
    }
    used = plen + zeros + len;
    if (width > used) {
      const uint32_t fill = width - used;
      if ((flags & FLAG_LEFT) == 0u) {
        if ((flags & FLAG_ZERO) != 0u) {
          zeros += fill;
        } else {
          lead = fill;
        }
      }
      used = width;
    }
    count += used;
    for (k = 0u; k < used; k++) { /* spaces, prefix, zeros, body, spaces */
      uint32_t at = k - lead;
      char c = ' ';
      if (k >= lead) {
        if (at < plen) {
          c = buf[at];
        } else {
          at -= plen;
          if (at < zeros) {
            c = '0';
          } else if ((at - zeros) < len) {
            c = body[at - zeros];
          } else {
            /* padding after a left-aligned field */
          }
        }
      }
      console_put(c);
    }
  }
  /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
  va_end(ap);
  return (count > (uint32_t)INT32_MAX) ? INT32_MAX : (int)count;
}
