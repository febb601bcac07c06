/* utvm-host standalone firmware: what the generated graph program (graph_main.c) needs from the
 * per-target startup code (riscv/, cortexm/) and the shared helpers (utvm_firmware.c). */
#ifndef UTVM_FIRMWARE_H_
#define UTVM_FIRMWARE_H_
#include <stddef.h>
#include <stdint.h>

#include "utvm_port.h"

/* Per target: bytes to the console (Spike: HTIF write(1, ...); Cortex-M: semihosting SYS_WRITE
 * to ":tt"), and the end of the program with an exit status (HTIF tohost; semihosting
 * SYS_EXIT_EXTENDED), which the simulator returns as its own. */
void utvm_fw_write(const char *buf, size_t n);
void utvm_fw_exit(int status) __attribute__((noreturn));

/* Shared: run main() and end with its status (the targets' startup code calls it last). */
void utvm_fw_run(void) __attribute__((noreturn));

/* Shared: text, numbers and hex dumps on the console. */
void utvm_fw_puts(const char *s);
void utvm_fw_put_u64(uint64_t v);
void utvm_fw_put_i64(int64_t v);
void utvm_fw_put_hex(const void *data, size_t n);
/* An error text from the runtime, its own codes written out (utvm_runtime.h; a corruption error
 * names the header at bad_header, the runtime's utvm_ws_bad). */
void utvm_fw_put_error(const char *text, uintptr_t bad_header);

/* From the device runtime. */
#ifndef UTVM_ERROR_LEN
#define UTVM_ERROR_LEN 512 /* as device_stubs/runtime/utvm_runtime.c: the same define sets both */
#endif
extern volatile uint32_t utvm_error_set;
extern char utvm_last_error[UTVM_ERROR_LEN];
extern volatile uintptr_t utvm_workspace_base;
extern volatile uintptr_t utvm_workspace_size;
extern uintptr_t utvm_ws_bad;

int main(void);
#endif
