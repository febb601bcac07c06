/* utvm-host device console: printf, puts and putchar for kernels, with no heap.
 *
 * Text is collected in a bounded line buffer and sent, a line (or a full buffer) at a time,
 * through the device's natural channel, chosen when the runtime is built (cfg["console"]):
 *   UTVM_CONSOLE_NS16550=base   a 16550 UART (QEMU riscv virt: 0x10000000)
 *   UTVM_CONSOLE_CMSDK=base     an Arm CMSDK APB UART (QEMU MPS2: 0x40004000)
 *   UTVM_CONSOLE_HTIF           Spike's host interface: a write(1, ...) system call
 *   UTVM_CONSOLE_FD=n           the host device: a write(n, ...) system call
 * and with none of them the text goes to UTVMConsoleHook if a link provides one (the serial
 * stub sends it in console frames), else it is dropped. The runtime flushes at the end of every call. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "utvm_runtime.h"

#define UTVM_CONSOLE_LINE 128

static char line_buf[UTVM_CONSOLE_LINE];
static size_t line_len;

#if defined(UTVM_CONSOLE_NS16550)
static void channel_write(const char *s, size_t n) {
  volatile uint8_t *uart = (volatile uint8_t *)(uintptr_t)(UTVM_CONSOLE_NS16550);
  for (size_t i = 0; i < n; i++) {
    while (!(uart[5] & 0x20)) { /* LSR: transmit holding register empty */
    }
    uart[0] = (uint8_t)s[i];
  }
}
#elif defined(UTVM_CONSOLE_CMSDK)
static void channel_write(const char *s, size_t n) {
  volatile uint32_t *uart = (volatile uint32_t *)(uintptr_t)(UTVM_CONSOLE_CMSDK);
  if (!(uart[2] & 1u)) { /* CTRL: enable the transmitter (and a valid baud divider) once */
    uart[4] = 16u;
    uart[2] |= 1u;
  }
  for (size_t i = 0; i < n; i++) {
    while (uart[1] & 1u) { /* STATE: transmit buffer full */
    }
    uart[0] = (uint8_t)s[i];
  }
}
#elif defined(UTVM_CONSOLE_HTIF)
void utvm_htif_write(const char *buf, size_t n); /* device_stubs/riscv */
static void channel_write(const char *s, size_t n) { utvm_htif_write(s, n); }
#elif defined(UTVM_CONSOLE_FD)
long utvm_sys_write(int fd, const void *buf, size_t n); /* device_stubs/linux */
static void channel_write(const char *s, size_t n) {
  while (n > 0) {
    long done = utvm_sys_write(UTVM_CONSOLE_FD, s, n);
    if (done <= 0) return;
    s += done;
    n -= (size_t)done;
  }
}
#else
/* No channel of its own: a link that carries the console (the serial stub) provides this. */
void UTVMConsoleHook(const char *s, size_t n) __attribute__((weak));
static void channel_write(const char *s, size_t n) {
  if (UTVMConsoleHook) UTVMConsoleHook(s, n);
}
#endif

void utvm_console_flush(void) {
  if (line_len) {
    channel_write(line_buf, line_len);
    line_len = 0;
  }
}

int putchar(int c) {
  line_buf[line_len++] = (char)c;
  if (c == '\n' || line_len == UTVM_CONSOLE_LINE) utvm_console_flush();
  return (unsigned char)c;
}

int puts(const char *s) {
  while (*s) putchar(*s++);
  putchar('\n');
  return 1;
}

static void put_str(const char *s, int width, int left) {
  int n = 0;
  while (s[n]) n++;
  for (; !left && width > n; width--) putchar(' ');
  while (*s) putchar(*s++);
  for (; left && width > n; width--) putchar(' ');
}

static void put_uint(unsigned long long v, unsigned base, int upper, int width, char pad, int left, int neg) {
  char tmp[24];
  int n = 0;
  const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  do {
    tmp[n++] = digits[v % base];
    v /= base;
  } while (v);
  if (neg && pad == '0') putchar('-');
  int len = n + (neg ? 1 : 0);
  for (; !left && width > len; width--) putchar(pad);
  if (neg && pad != '0') putchar('-');
  while (n) putchar(tmp[--n]);
  for (; left && width > len; width--) putchar(' ');
}

static void put_double(double v, int precision, int width, int left) {
  char tmp[48];
  int n = 0, neg = v < 0;
  if (v != v) {
    put_str("nan", width, left);
    return;
  }
  if (neg) v = -v;
  if (v > 1e18) {
    put_str(neg ? "-inf" : "inf", width, left); /* large values: not worth digits here */
    return;
  }
  double scale = 1;
  for (int i = 0; i < precision; i++) scale *= 10;
  unsigned long long whole = (unsigned long long)v;
  unsigned long long frac = (unsigned long long)((v - (double)whole) * scale + 0.5);
  if (frac >= (unsigned long long)scale) {
    whole += 1;
    frac -= (unsigned long long)scale;
  }
  for (int i = 0; i < precision; i++) {
    tmp[n++] = (char)('0' + frac % 10);
    frac /= 10;
  }
  if (precision) tmp[n++] = '.';
  do {
    tmp[n++] = (char)('0' + whole % 10);
    whole /= 10;
  } while (whole);
  if (neg) tmp[n++] = '-';
  for (; !left && width > n; width--) putchar(' ');
  int len = n;
  while (n) putchar(tmp[--n]);
  for (; left && width > len; width--) putchar(' ');
}

/* %d %i %u %x %X %o %c %s %p %f %%, flags - and 0, a width, .precision (for %f), and the
 * length modifiers l, ll and z. */
int vprintf(const char *fmt, va_list ap) {
  for (; *fmt; fmt++) {
    if (*fmt != '%') {
      putchar(*fmt);
      continue;
    }
    int left = 0, width = 0, precision = 6, longs = 0;
    char pad = ' ';
    for (fmt++; *fmt == '-' || *fmt == '0'; fmt++) {
      if (*fmt == '-') left = 1;
      else pad = '0';
    }
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    if (*fmt == '.') {
      precision = 0;
      for (fmt++; *fmt >= '0' && *fmt <= '9'; fmt++) precision = precision * 10 + (*fmt - '0');
    }
    for (; *fmt == 'l' || *fmt == 'z'; fmt++) longs += *fmt == 'l' ? 1 : (sizeof(size_t) > sizeof(int) ? 1 : 0);
    if (left) pad = ' ';
    switch (*fmt) {
      case 'd':
      case 'i': {
        long long v = longs >= 2 ? va_arg(ap, long long) : longs ? va_arg(ap, long) : va_arg(ap, int);
        put_uint(v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v, 10, 0, width, pad, left, v < 0);
        break;
      }
      case 'u':
      case 'x':
      case 'X':
      case 'o': {
        unsigned long long v = longs >= 2 ? va_arg(ap, unsigned long long)
                               : longs ? va_arg(ap, unsigned long) : va_arg(ap, unsigned int);
        put_uint(v, *fmt == 'u' ? 10 : *fmt == 'o' ? 8 : 16, *fmt == 'X', width, pad, left, 0);
        break;
      }
      case 'p':
        put_str("0x", 0, 0);
        put_uint((uintptr_t)va_arg(ap, void *), 16, 0, width, pad, left, 0);
        break;
      case 'c':
        putchar(va_arg(ap, int));
        break;
      case 's': {
        const char *s = va_arg(ap, const char *);
        put_str(s ? s : "(null)", width, left);
        break;
      }
      case 'f':
      case 'F':
        put_double(va_arg(ap, double), precision, width, left);
        break;
      case '%':
        putchar('%');
        break;
      case '\0':
        return 0;
      default: /* unknown conversion: show it as written */
        putchar('%');
        putchar(*fmt);
    }
  }
  return 0;
}

int printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  return 0;
}
