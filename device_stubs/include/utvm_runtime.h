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

#ifdef __cplusplus
extern "C" {
#endif

void TVMAPISetLastError(const char *msg);
void TVMFFIErrorSetRaisedFromCStr(const char *kind, const char *message);
void *TVMBackendAllocWorkspace(int device_type, int device_id, uint64_t nbytes, int dtype_code_hint,
                               int dtype_bits_hint);
int TVMBackendFreeWorkspace(int device_type, int device_id, void *ptr);

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* The device console (cfg["console"]): a bounded line buffer sent through the device's UART,
 * Spike's HTIF or the host process; sess.console reads it. Formats: %d %i %u %x %X %o %c %s
 * %p %f (with flags - 0, a width, .precision, and l ll z). */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int puts(const char *s);
int putchar(int c);
void utvm_console_flush(void);

#ifdef __cplusplus
}
#endif
#endif /* UTVM_RUNTIME_H_ */
