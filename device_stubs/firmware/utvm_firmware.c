/* utvm-host standalone firmware: console formatting shared by every target (no C library). */
#include "utvm_firmware.h"

void utvm_fw_puts(const char *s) {
  size_t n = 0;
  while (s[n] != '\0') n++;
  utvm_fw_write(s, n);
}

void utvm_fw_put_u64(uint64_t v) {
  char buf[21];
  size_t i = sizeof buf;
  do {
    buf[--i] = (char)('0' + v % 10u);
    v /= 10u;
  } while (v != 0u);
  utvm_fw_write(buf + i, sizeof buf - i);
}

void utvm_fw_put_i64(int64_t v) {
  if (v < 0) {
    utvm_fw_write("-", 1);
    utvm_fw_put_u64((uint64_t)0 - (uint64_t)v);
  } else {
    utvm_fw_put_u64((uint64_t)v);
  }
}

void utvm_fw_put_hex(const void *data, size_t n) {
  static const char digits[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)data;
  char buf[64];
  size_t used = 0;
  for (size_t i = 0; i < n; i++) {
    buf[used++] = digits[p[i] >> 4];
    buf[used++] = digits[p[i] & 15u];
    if (used == sizeof buf) {
      utvm_fw_write(buf, used);
      used = 0;
    }
  }
  if (used) utvm_fw_write(buf, used);
}
