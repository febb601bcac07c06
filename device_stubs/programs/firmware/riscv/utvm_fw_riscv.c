/* utvm-host standalone firmware for RISC-V under Spike: the console and the exit go through
 * HTIF (tohost/fromhost, in device_stubs/ports/riscv/utvm_riscv.c, and the write below): a
 * write(1, buf, n) system call that Spike's front end performs, and tohost = status << 1 | 1 to
 * end with that exit status. */
#include "../utvm_firmware.h"
#include "utvm_htif.h"

/* The trap handler's report (utvm_fw_start.S calls it with mcause, mepc, mtval). */
void utvm_fw_fault(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval) __attribute__((noreturn));

void utvm_fw_write(const char *buf, size_t n) { utvm_htif_write(buf, n); }

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
