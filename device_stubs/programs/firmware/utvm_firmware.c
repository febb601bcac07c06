/* utvm-host standalone firmware: console formatting shared by every target (no C library). */
#include "utvm_firmware.h"
#include "utvm_runtime_errors.h"

void utvm_fw_run(void) { utvm_fw_exit(main()); }

void utvm_fw_puts(const char *s) {
  size_t n = 0u;
  while (s[n] != '\0') {
    n++;
  }
  utvm_fw_write(s, n);
}

void utvm_fw_put_u64(uint64_t v) {
  static const char digits[] = "0123456789";
  char buf[21];
  size_t i = sizeof(buf);
  uint64_t rest = v;
  do {
    i--;
    buf[i] = digits[rest % 10u];
    rest /= 10u;
  } while (rest != 0u);
  utvm_fw_write(&buf[i], sizeof(buf) - i);
}

void utvm_fw_put_i64(int64_t v) {
  if (v < 0) {
    utvm_fw_write("-", 1u);
    utvm_fw_put_u64((uint64_t)0u - (uint64_t)v);
  } else {
    utvm_fw_put_u64((uint64_t)v);
  }
}

void utvm_fw_put_hex(const void *data, size_t n) {
  static const char digits[] = "0123456789abcdef";
  /* cppcheck-suppress misra-c2012-11.5 ; deviation S6 */
  const uint8_t *const p = (const uint8_t *)data;
  char buf[64];
  size_t used = 0u;
  size_t i;
  for (i = 0u; i < n; i++) {
    buf[used] = digits[p[i] >> 4u];
    buf[used + 1u] = digits[p[i] & 15u];
    used += 2u;
    if (used == sizeof(buf)) {
      utvm_fw_write(buf, used);
      used = 0u;
    }
  }
  if (used != 0u) {
    utvm_fw_write(buf, used);
  }
}

void utvm_fw_put_error(const char *text, uintptr_t bad_header) {
  /* The runtime's own errors are stored as ESC and a digit (utvm_runtime.h): print what it says. */
  static const char *const said[4] = {UTVM_RUNTIME_ERROR_1, UTVM_RUNTIME_ERROR_2, UTVM_RUNTIME_ERROR_3,
                                      UTVM_RUNTIME_ERROR_4};
  const char *rest = text;
  if ((uint8_t)text[0] == 0x1Bu) { /* ESC */
    const uint32_t code = (uint32_t)(uint8_t)text[1] - (uint32_t)(uint8_t)'1';
    if (code < 4u) {
      utvm_fw_puts(said[code]);
      rest = &text[2];
    }
    if (code == 3u) { /* the header's address */
      char hex[2u * sizeof(uintptr_t)];
      uintptr_t addr = bad_header;
      size_t k = sizeof(hex);
      while (k != 0u) {
        k--;
        hex[k] = "0123456789abcdef"[addr & 15u];
        addr >>= 4;
      }
      utvm_fw_write(hex, sizeof(hex));
    }
  }
  utvm_fw_puts(rest);
}
