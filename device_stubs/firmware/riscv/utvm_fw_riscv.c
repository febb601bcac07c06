/* utvm-host standalone firmware for RISC-V under Spike: the console and the exit go through
 * HTIF (tohost/fromhost, defined by the device runtime): a write(1, buf, n) system call that
 * Spike's front end performs, and tohost = status << 1 | 1 to end with that exit status. */
#include "../utvm_firmware.h"

extern volatile uint64_t tohost;
extern volatile uint64_t fromhost;

void utvm_fw_write(const char *buf, size_t n) {
  volatile uint64_t magic[8] __attribute__((aligned(64)));
  magic[0] = 64; /* SYS_write */
  magic[1] = 1;  /* stdout */
  magic[2] = (uintptr_t)buf;
  magic[3] = n;
  __sync_synchronize();
  tohost = (uintptr_t)magic;
  while (fromhost == 0) {
  }
  fromhost = 0;
  __sync_synchronize();
}

void utvm_fw_exit(int status) {
  __sync_synchronize();
  tohost = ((uint64_t)(uint32_t)status << 1) | 1u;
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
