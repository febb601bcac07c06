/* utvm-host device runtime, linked on demand: the error API kernels call (TVM's C backend
 * name and TVM FFI's). The session places it the first time a loaded library calls one of
 * these (so does the firmware's link); the resident runtime holds the buffers it writes. */
#include <stddef.h>
#include <stdint.h>

#include "../utvm_runtime_state.h"

/* Append src to the text buffer buf of cap bytes from position at; returns the new end. Text
 * that does not fit ends in "..." so a cut message is recognisable. */
static size_t __attribute__((noinline)) text_append(char *buf, size_t cap, size_t at, const char *src) {
  size_t end = at;
  size_t i = 0u;
  if (src != NULL) {
    while ((src[i] != '\0') && (end < (cap - 1u))) {
      buf[end] = src[i];
      end++;
      i++;
    }
    if (src[i] != '\0') {
      buf[cap - 4u] = '.';
      buf[cap - 3u] = '.';
      buf[cap - 2u] = '.';
    }
  }
  buf[end] = '\0';
  return end;
}

/* TVM FFI (apache-tvm >= 0.20): generated checks report "kind" plus a message in parts. */
/* cppcheck-suppress misra-c2012-8.7 ; deviation R6 */
void TVMFFIErrorSetRaisedFromCStrParts(const char *kind, const char **parts, int32_t num_parts) {
  size_t at = 0u;
  int32_t i;
  utvm_last_error[0] = '\0';
  for (i = 0; i < num_parts; i++) {
    at = text_append(utvm_last_error, UTVM_ERROR_LEN, at, parts[i]);
  }
  (void)text_append(utvm_last_error_kind, UTVM_ERROR_KIND_LEN, 0u, kind);
  utvm_state.error_set = 1u;
}

void TVMFFIErrorSetRaisedFromCStr(const char *kind, const char *message) {
  const char *parts[1];
  parts[0] = message;
  TVMFFIErrorSetRaisedFromCStrParts(kind, parts, 1);
}

void TVMAPISetLastError(const char *msg) {
  TVMFFIErrorSetRaisedFromCStr(NULL, msg);
}

