/* utvm-host device runtime: what kernels may call on every target.
 *
 * Kernels report an error by calling TVMAPISetLastError("...") and returning nonzero; the
 * host raises KernelError with that text. TVMFFIErrorSetRaisedFromCStr("ValueError", "...")
 * names the kind too: the host raises a KernelError that is also a Python ValueError. Workspace memory comes from the session's
 * workspace region and is released when the call ends.
 */
#ifndef UTVM_RUNTIME_H_
#define UTVM_RUNTIME_H_

#include <stddef.h>
#include <stdint.h>

#include "utvm_port.h"

#ifdef __cplusplus
extern "C" {
#endif

void TVMAPISetLastError(const char *msg);
void TVMFFIErrorSetRaisedFromCStr(const char *kind, const char *message);
void TVMFFIErrorSetRaisedFromCStrParts(const char *kind, const char **parts, int32_t num_parts);
/* The runtime's own errors, as utvm_last_error holds them: UTVM_RUNTIME_ERROR (ESC) and a digit
 * (for "4", the block header it names is at the address in utvm_ws_bad). What each says is in
 * utvm_runtime_errors.h, once, for the host (utvm_host/session.py) and the firmware, which print
 * it. */
#define UTVM_RUNTIME_ERROR "\033"
/* Workspace memory: NULL (and an error the host raises for the calling kernel) when the
 * workspace is exhausted or was corrupted by a kernel writing past its buffer. Freeing NULL
 * does nothing and returns 0. */
void *TVMBackendAllocWorkspace(int device_type, int device_id, uint64_t nbytes, int dtype_code_hint,
                               int dtype_bits_hint);
int TVMBackendFreeWorkspace(int device_type, int device_id, void *ptr);


/* cppcheck-suppress misra-c2012-21.2 ; deviation R2 */
void *memcpy(void *dst, const void *src, size_t n);
/* cppcheck-suppress misra-c2012-21.2 ; deviation R2 */
void *memmove(void *dst, const void *src, size_t n);
/* cppcheck-suppress misra-c2012-21.2 ; deviation R2 */
void *memset(void *dst, int c, size_t n);
/* cppcheck-suppress misra-c2012-21.2 ; deviation R2 */
int memcmp(const void *a, const void *b, size_t n);

/* For the ports (device_stubs/ports/<arch>/), not for kernels: the runtime's entry and the stop at the
 * end of every call (also where a trap handler goes, with summary all ones). What the ports
 * provide the runtime (the counter, ...) is in utvm_port.h. */
void UTVMMain(void) __attribute__((noinline, used));
void UTVMDone(uintptr_t summary, uintptr_t ret_lo, uintptr_t ret_hi) __attribute__((noinline, used));

/* The device console (cfg["console"]): a bounded line buffer sent through the device's UART,
 * Spike's HTIF or the host process, a line at a time; sess.console reads it.
 *
 * printf formats as C99 does for the conversions d i u o x X c s p %, and with
 * cfg["console_float"] (the define UTVM_CONSOLE_FLOAT) f F e E g G, exactly like glibc (ties
 * round to even); flags - + space # 0; a width and a .precision as digits or *; the length
 * modifiers hh h l ll j z t (and L as ll for integers). It returns the number of characters
 * printed. %p prints 0x and hex digits, or (nil), like glibc; %lc the wide character's low byte.
 * Limits: widths and precisions above 4095 count as 4095; float precisions above 40 as 40.
 * What it does not print it marks, and still consumes the argument, so later ones stay right:
 *   "<float>"   for f F e E g G without cfg["console_float"], and always for a A and L doubles
 *   as written  for %n (nothing is stored), %ls, and a conversion C does not have ("%y")
 * The line is sent at '\n', when more comes for a full buffer (128 characters), and at the end
 * of a call. What a hook called by the console prints while a line is being sent is dropped. */
/* cppcheck-suppress misra-c2012-21.2 ; deviation C2 */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* cppcheck-suppress misra-c2012-21.2 ; deviation C2 */
int puts(const char *s);
/* cppcheck-suppress misra-c2012-21.2 ; deviation C2 */
int putchar(int c);
void utvm_console_flush(void);
/* Starts a call with an empty line buffer (UTVMMain calls it): text a faulted call left unsent
 * belongs to that call, and the host has already read it from utvm_console_line. */
void utvm_console_begin(void);

/* The line buffer itself, for the host: after a fault (the host device's process died, or a
 * trap ended the call before its flush) the session reads the unsent text here. Kernels print
 * through printf, puts and putchar, never through these. */
#define UTVM_CONSOLE_LINE_SIZE 128u
extern char utvm_console_line[UTVM_CONSOLE_LINE_SIZE];
extern uint32_t utvm_console_len;

#ifdef __cplusplus
}
#endif
#endif /* UTVM_RUNTIME_H_ */
