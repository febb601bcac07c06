/* utvm-host standalone firmware for RISC-V under Spike: the console and the exit go through
 * HTIF (tohost/fromhost, in device_stubs/riscv/utvm_riscv.c, and the write below): a write(1, buf, n)
 * system call that Spike's front end performs, and tohost = status << 1 | 1 to end with that
 * exit status. */
#include "../utvm_firmware.h"

extern volatile uint64_t tohost;
extern volatile uint64_t fromhost;
/* The trap handler's report (utvm_fw_start.S calls it with mcause, mepc, mtval). */
void utvm_fw_fault(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval) __attribute__((noreturn));

/* write(1, buf, n) as a system call that the front end of Spike performs (HTIF device 0): the
 * console of standalone firmware and the serial stub's fault report (the runtime's console has
 * its own, in utvm_console.c). */
static void htif_write(const char *buf, size_t n) {
  volatile uint64_t magic[8] __attribute__((aligned(64)));
  magic[0] = 64u; /* SYS_write */
  magic[1] = 1u;  /* stdout */
  /* cppcheck-suppress misra-c2012-11.4 ; deviation R5 */
  magic[2] = (uintptr_t)buf;
  magic[3] = n;
  __sync_synchronize();
  /* cppcheck-suppress misra-c2012-11.4 ; deviation R5 */
  tohost = (uintptr_t)magic;
  while (fromhost == 0u) {
  }
  fromhost = 0u;
  __sync_synchronize();
}

void utvm_fw_write(const char *buf, size_t n) { htif_write(buf, n); }

void utvm_fw_exit(int status) {
  __sync_synchronize();
  tohost = ((uint64_t)(uint32_t)status << 1u) | 1u;
  for (;;) {
  }
}

void utvm_fw_fault(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval) {
  utvm_fw_puts("utvm-fault mcause ");
  utvm_fw_put_u64(mcause);
  utvm_fw_puts(" mepc ");
  utvm_fw_put_u64(mepc);
  utvm_fw_puts(" mtval ");
  utvm_fw_put_u64(mtval);
  utvm_fw_puts("\n");
  utvm_fw_exit(3);
}
