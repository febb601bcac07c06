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

char utvm_console_line[UTVM_CONSOLE_LINE_SIZE];
uint32_t utvm_console_len;
static bool console_busy; /* a flush is sending the line */

#if defined(UTVM_CONSOLE_NS16550)
static void channel_write(const char *s, uint32_t n)
{
  /* cppcheck-suppress misra-c2012-11.4 ; deviation C3 */
  volatile uint8_t *const uart = (volatile uint8_t *)(uintptr_t)(UTVM_CONSOLE_NS16550);
  uint32_t i;
  for (i = 0u; i < n; i++) {
    while ((uart[5] & 0x20u) == 0u) { /* LSR: wait until the transmit holding register is empty */
    }
    uart[0] = (uint8_t)s[i];
  }
}
#elif defined(UTVM_CONSOLE_CMSDK)
static void channel_write(const char *s, uint32_t n)
{
  /* cppcheck-suppress misra-c2012-11.4 ; deviation C3 */
  volatile uint32_t *const uart = (volatile uint32_t *)(uintptr_t)(UTVM_CONSOLE_CMSDK);
  uint32_t i;
  if ((uart[2] & 1u) == 0u) { /* CTRL: enable the transmitter (and a valid baud divider) once */
    uart[4] = 16u;
    uart[2] |= 1u;
  }
  for (i = 0u; i < n; i++) {
    while ((uart[1] & 1u) != 0u) { /* STATE: wait while the transmit buffer is full */
    }
    uart[0] = (uint8_t)s[i];
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
  uint32_t n = utvm_console_len;
  if (n >= UTVM_CONSOLE_LINE_SIZE) {
    utvm_console_flush();
    n = utvm_console_len;
  }
  if (n < UTVM_CONSOLE_LINE_SIZE) {
    utvm_console_line[n] = c;
    utvm_console_len = n + 1u;
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

#define FIELD_MAX 4095u    /* widths and precisions saturate here */
#define FLOAT_PREC_MAX 40u /* and float precisions here */
#define FLAG_LEFT 1u
#define FLAG_PLUS 2u
#define FLAG_SPACE 4u
#define FLAG_ALT 8u
#define FLAG_ZERO 16u
#define FLAG_PREC 32u /* a precision was given */
#define FLAG_UPPER 64u

/* Argument sizes the length modifiers select (j, z and t map to the type of their size). */
#define SIZE_CHAR ((int32_t)-2)
#define SIZE_SHORT ((int32_t)-1)
#define SIZE_INT ((int32_t)0)
#define SIZE_LONG ((int32_t)1)
#define SIZE_LONG_LONG ((int32_t)2)
#define SIZE_LONG_DOUBLE ((int32_t)3) /* L: long long for integers, as glibc takes it */

typedef struct {
  uint32_t count; /* characters printed by this printf */
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

static void emit_text(const char *s, uint32_t n)
{
  uint32_t i;
  for (i = 0u; i < n; i++) {
    console_put(s[i]);
  }
}

/* The length of s, at most max. */
static uint32_t text_len(const char *s, uint32_t max)
{
  uint32_t n = 0u;
  while ((n < max) && (s[n] != '\0')) {
    n++;
  }
  return n;
}

/* Starts a field whose body is len characters after prefix (a sign or "0x") and zeros leading
 * zeros: a right-aligned field gets its padding (spaces, or zeros with the 0 flag) now, a
 * left-aligned one keeps it in f->width for the end. Counts the whole field. */
static void field_begin(console_field *f, const char *prefix, uint32_t len, uint32_t zeros)
{
  const uint32_t prefix_len = text_len(prefix, 2u);
  const uint32_t used = prefix_len + len + zeros;
  uint32_t fill = (f->width > used) ? (f->width - used) : 0u;
  uint32_t zero_fill = zeros;
  f->count += used + fill;
  if ((f->flags & FLAG_LEFT) == 0u) {
    if ((f->flags & FLAG_ZERO) != 0u) {
      zero_fill += fill;
    } else {
      emit_repeat(' ', fill);
    }
    fill = 0u;
  }
  emit_text(prefix, prefix_len);
  emit_repeat('0', zero_fill);
  f->width = fill;
}

/* A whole field: prefix, zeros, then the len characters of body, padded to the width. */
static void put_field(console_field *f, const char *prefix, uint32_t zeros, const char *body, uint32_t len)
{
  field_begin(f, prefix, len, zeros);
  emit_text(body, len);
  emit_repeat(' ', f->width);
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

static const char *sign_prefix(const console_field *f, bool negative)
{
  const char *prefix = "";
  if (negative) {
    prefix = "-";
  } else if ((f->flags & FLAG_PLUS) != 0u) {
    prefix = "+";
  } else if ((f->flags & FLAG_SPACE) != 0u) {
    prefix = " ";
  } else {
    /* no sign */
  }
  return prefix;
}

#if defined(UTVM_CONSOLE_FLOAT)
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
static void put_float(console_field *f, double value, char conv)
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
    const char *const prefix = sign_prefix(f, negative);
    const bool upper = (f->flags & FLAG_UPPER) != 0u;
    if (biased == 0x7FFu) {
      uint32_t special = 0u; /* "inf" */
      if (m != 0u) {
        special = 6u; /* "nan" */
      }
      if (upper) {
        special += 3u;
      }
      f->flags &= ~FLAG_ZERO;
      field_begin(f, prefix, 3u, 0u);
      emit_text(&"infINFnanNAN"[special], 3u);
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
        field_begin(f, prefix, len, 0u);
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
#endif /* UTVM_CONSOLE_FLOAT */

/* The index of c in the NUL-terminated set, or the set's length when c is not in it. */
static uint32_t index_in(const char *set, char c)
{
  uint32_t i = 0u;
  while ((set[i] != '\0') && (set[i] != c)) {
    i++;
  }
  return i;
}

/* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
static uint64_t arg_integer(va_list *ap, int32_t size, bool is_signed)
{
  uint64_t v;
  if (size >= SIZE_LONG_LONG) {
    if (is_signed) {
      /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
      v = (uint64_t)va_arg(*ap, long long);
    } else {
      /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
      v = va_arg(*ap, unsigned long long);
    }
  } else if (size == SIZE_LONG) {
    if (is_signed) {
      /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
      v = (uint64_t)va_arg(*ap, long);
    } else {
      /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
      v = va_arg(*ap, unsigned long);
    }
  } else {
    int32_t w;
    if (is_signed) {
      /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
      w = va_arg(*ap, int);
    } else {
      /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
      w = (int32_t)va_arg(*ap, unsigned int);
    }
    if (size == SIZE_SHORT) { /* h, hh: the argument converted to short or char */
      w = is_signed ? (int32_t)(int16_t)w : (int32_t)(uint16_t)w;
    } else if (size == SIZE_CHAR) {
      w = is_signed ? (int32_t)(int8_t)w : (int32_t)(uint8_t)w;
    } else {
      /* all of it */
    }
    v = is_signed ? (uint64_t)(int64_t)w : (uint64_t)(uint32_t)w;
  }
  return v;
}

/* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
static const char *arg_pointer(va_list *ap)
{
  /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
  return va_arg(*ap, const char *);
}

/* A width or precision: digits, or * and an int argument; saturates at +-FIELD_MAX. */
/* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
static int32_t field_number(const char *fmt, uint32_t *pos, va_list *ap)
{
  int32_t value = 0;
  uint32_t i = *pos;
  if (fmt[i] == '*') {
    /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
    value = va_arg(*ap, int);
    i++;
  } else {
    while ((fmt[i] >= '0') && (fmt[i] <= '9')) {
      if (value <= (int32_t)FIELD_MAX) {
        const uint32_t digit = (uint32_t)(uint8_t)fmt[i] - 48u;
        value = (value * 10) + (int32_t)digit;
      }
      i++;
    }
  }
  if (value > (int32_t)FIELD_MAX) {
    value = (int32_t)FIELD_MAX;
  } else if (value < -(int32_t)FIELD_MAX) {
    value = -(int32_t)FIELD_MAX;
  } else {
    /* in range */
  }
  *pos = i;
  return value;
}

/* One conversion: fmt[pos] is the character after the '%'; returns the position after it. */
/* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
static uint32_t put_conversion(console_field *f, const char *fmt, uint32_t pos, va_list *ap)
{
  char buf[24]; /* an integer's digits (64 bits in octal: 22), from the end; %c's character */
  const char *body = buf;
  const char *prefix = "";
  uint32_t len = 0u;
  uint32_t zeros = 0u;
  uint32_t i = pos;
  int32_t size = SIZE_INT;
  int32_t number;
  uint32_t k;
  char conv;
  bool printed = false;
  f->flags = 0u;
  do { /* the flags, in the order of the FLAG_ bits */
    k = index_in("-+ #0", fmt[i]);
    if (k < 5u) {
      f->flags |= (uint32_t)1u << k;
      i++;
    }
  } while (k < 5u);
  number = field_number(fmt, &i, ap);
  if (number < 0) {
    f->flags |= FLAG_LEFT; /* a negative * width: the - flag */
    number = -number;
  }
  f->width = (uint32_t)number;
  f->prec = 1u; /* integers: at least one digit */
  if (fmt[i] == '.') {
    i++;
    number = field_number(fmt, &i, ap);
    if (number >= 0) { /* a negative * precision: as if none was given */
      f->flags |= FLAG_PREC;
      f->prec = (uint32_t)number;
    }
  }
  conv = fmt[i];
  if ((conv == 'h') || (conv == 'l')) {
    size = (conv == 'h') ? SIZE_SHORT : SIZE_LONG;
    i++;
    if (fmt[i] == conv) {
      size *= 2;
      i++;
    }
  } else if (conv == 'j') {
    size = (sizeof(intmax_t) == sizeof(long)) ? SIZE_LONG : SIZE_LONG_LONG;
    i++;
  } else if ((conv == 'z') || (conv == 't')) { /* size_t and ptrdiff_t are int or long here */
    size = (sizeof(size_t) == sizeof(int)) ? SIZE_INT : SIZE_LONG;
    i++;
  } else if (conv == 'L') {
    size = SIZE_LONG_DOUBLE;
    i++;
  } else {
    /* no length modifier */
  }
  conv = fmt[i];
  if (conv != '\0') {
    i++;
  }
  if ((conv >= 'A') && (conv <= 'Z')) {
    f->flags |= FLAG_UPPER;
  }
  if ((f->flags & FLAG_LEFT) != 0u) {
    f->flags &= ~FLAG_ZERO; /* C: - turns the 0 flag off */
  }
  k = index_in("diouxXp", conv);
  if (k < 7u) {
    if ((f->flags & FLAG_PREC) != 0u) {
      f->flags &= ~FLAG_ZERO; /* and so does an integer's precision */
    }
    static const char digit_chars[] = "0123456789abcdef0123456789ABCDEF";
    uint64_t v;
    uint32_t limbs[2];
    uint32_t upper = 0u;
    uint32_t first = sizeof(buf);
    uint32_t base = 16u;
    if (k == 2u) {
      base = 8u;
    } else if (k < 4u) {
      base = 10u;
    } else {
      /* x X p */
    }
    if (k == 6u) {
      /* cppcheck-suppress misra-c2012-11.4 ; deviation C4 */
      v = (uint64_t)(uintptr_t)arg_pointer(ap);
      prefix = "0x";
    } else {
      v = arg_integer(ap, size, k < 2u);
      if (k < 2u) {
        const bool negative = (int64_t)v < 0;
        prefix = sign_prefix(f, negative);
        if (negative) {
          v = 0u - v;
        }
      } else if (((f->flags & FLAG_ALT) != 0u) && (k > 3u) && (v != 0u)) {
        prefix = (k == 4u) ? "0x" : "0X";
      } else {
        /* no prefix */
      }
    }
    if ((f->flags & FLAG_UPPER) != 0u) {
      upper = 16u;
    }
    limbs[0] = (uint32_t)v;
    limbs[1] = (uint32_t)(v >> 32);
    while (((limbs[0] | limbs[1]) != 0u) && (first > 0u)) {
      first--;
      buf[first] = digit_chars[big_div(limbs, 2u, base) + upper];
    }
    body = &buf[first];
    len = (uint32_t)sizeof(buf) - first;
    zeros = (f->prec > len) ? (f->prec - len) : 0u;
    if (((f->flags & FLAG_ALT) != 0u) && (k == 2u) && (zeros == 0u)) {
      zeros = 1u; /* %#o: a leading zero */
    }
    if ((k == 6u) && (v == 0u)) {
      body = "(nil)"; /* as glibc prints it */
      len = 5u;
      prefix = "";
      zeros = 0u;
      f->flags &= ~FLAG_ZERO;
    }
  } else {
    const uint32_t zero = f->flags & FLAG_ZERO; /* only numbers pad with zeros */
    f->flags &= ~FLAG_ZERO;
    if (conv == 'c') { /* %lc too: the low byte of the wide character */
      buf[0] = (char)(uint8_t)arg_integer(ap, SIZE_INT, true);
      len = 1u;
    } else if ((conv == 's') && (size != SIZE_LONG)) {
      body = arg_pointer(ap);
      if (body == NULL) {
        body = "(null)";
      }
      len = text_len(body, ((f->flags & FLAG_PREC) != 0u) ? f->prec : UINT32_MAX);
    } else if (index_in("fFeEgGaA", conv) < 8u) {
      if (f->prec > FLOAT_PREC_MAX) {
        f->prec = FLOAT_PREC_MAX;
      }
      body = "<float>";
      len = 7u;
      if (size == SIZE_LONG_DOUBLE) {
        /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
        (void)va_arg(*ap, long double);
      } else {
        /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
        const double v = va_arg(*ap, double);
#if defined(UTVM_CONSOLE_FLOAT)
        if ((conv != 'a') && (conv != 'A')) {
          f->flags |= zero;
          put_float(f, v, conv);
          printed = true;
        }
#else
        (void)v;
        (void)zero;
#endif
      }
    } else {
      f->width = 0u; /* %% and what is shown as written */
      if (conv == '%') {
        body = "%";
        len = 1u;
      } else { /* not printed: shown as written; %n and %ls consume their pointer */
        if ((conv == 'n') || (conv == 's')) {
          (void)arg_pointer(ap);
        }
        body = &fmt[pos - 1u];
        len = i - (pos - 1u);
      }
    }
  }
  if (!printed) {
    put_field(f, prefix, zeros, body, len);
  }
  return i;
}

int printf(const char *fmt, ...)
{
  console_field f;
  uint32_t i = 0u;
  /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
  va_list ap;
  f.count = 0u;
  /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
  va_start(ap, fmt);
  while (fmt[i] != '\0') {
    if (fmt[i] == '%') {
      i = put_conversion(&f, fmt, i + 1u, &ap);
    } else {
      console_put(fmt[i]);
      f.count++;
      i++;
    }
  }
  /* cppcheck-suppress misra-c2012-17.1 ; deviation C1 */
  va_end(ap);
  return (f.count > (uint32_t)INT32_MAX) ? INT32_MAX : (int)f.count;
}
