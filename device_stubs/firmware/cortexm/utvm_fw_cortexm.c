/* utvm-host standalone firmware for Arm Cortex-M: the reset vector table, startup (.bss, FPU),
 * and a console and exit over semihosting (QEMU with -semihosting-config enable=on, or a
 * debugger that serves it). A fault prints its status registers and exits with status 3. */
#include "../utvm_firmware.h"

extern uint32_t __stack_top, __bss_start, __bss_end;
void utvm_fw_reset(void) __attribute__((noreturn));
void utvm_fw_fault_handler(void);

__attribute__((section(".vectors"), used)) void (*const utvm_fw_vectors[16])(void) = {
    (void (*)(void))&__stack_top, utvm_fw_reset, utvm_fw_fault_handler, utvm_fw_fault_handler,
    utvm_fw_fault_handler, utvm_fw_fault_handler, utvm_fw_fault_handler, 0,
    0, 0, 0, utvm_fw_fault_handler, utvm_fw_fault_handler, 0, utvm_fw_fault_handler, utvm_fw_fault_handler,
};

static int semihost(int op, const void *arg) {
  register int r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

static int console = -1;

void utvm_fw_write(const char *buf, size_t n) {
  if (console < 0) {
    static const char tt[] = ":tt";
    uint32_t open_args[3] = {(uint32_t)tt, 4 /* "w" */, 3};
    console = semihost(0x01 /* SYS_OPEN */, open_args);
  }
  uint32_t args[3] = {(uint32_t)console, (uint32_t)buf, (uint32_t)n};
  semihost(0x05 /* SYS_WRITE */, args);
}

void utvm_fw_exit(int status) {
  uint32_t args[2] = {0x20026 /* ADP_Stopped_ApplicationExit */, (uint32_t)status};
  semihost(0x20 /* SYS_EXIT_EXTENDED */, args);
  for (;;) {
  }
}

void utvm_fw_reset(void) {
  for (uint32_t *p = &__bss_start; p < &__bss_end; p++) *p = 0;
#if defined(__ARM_FP)
  *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10, CP11 full access */
  __asm__ volatile("dsb\n\tisb");
#endif
  utvm_fw_exit(main());
}

void utvm_fw_fault_handler(void) {
  uint32_t cfsr = *(volatile uint32_t *)0xE000ED28u, hfsr = *(volatile uint32_t *)0xE000ED2Cu;
  utvm_fw_puts("utvm-fault cfsr ");
  utvm_fw_put_u64(cfsr);
  utvm_fw_puts(" hfsr ");
  utvm_fw_put_u64(hfsr);
  utvm_fw_puts("\n");
  utvm_fw_exit(3);
}
