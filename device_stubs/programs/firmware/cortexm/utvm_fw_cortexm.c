/* utvm-host standalone firmware for Arm Cortex-M: the reset vector table, startup (.bss, FPU),
 * and a console and exit over semihosting (QEMU with -semihosting-config enable=on, or a
 * debugger that serves it). A fault prints its status registers and exits with status 3. */
#include "../utvm_firmware.h"

/* MISRA C:2012 21.2, deviation S8: section bounds named by the linker script */
extern uint32_t __stack_top; /* linker/firmware.ld.in: the top of the stack */
extern char __bss_start;     /* and the .bss to clear, 16-byte aligned at both ends */
extern char __bss_end;
void utvm_fw_reset(void) __attribute__((noreturn));
void utvm_fw_fault_handler(void);

/* The vector table: the initial stack pointer, then the handlers of exceptions 1 to 15 (reset,
 * NMI, HardFault, MemManage, BusFault, UsageFault, 4 reserved, SVCall, DebugMonitor, reserved,
 * PendSV, SysTick); the core reads it from address 0 (the linker script puts it first). */
typedef void (*utvm_fw_handler)(void);
typedef struct {
  const uint32_t *initial_sp;
  utvm_fw_handler handler[15];
} utvm_fw_vector_table;

extern const utvm_fw_vector_table utvm_fw_vectors;
__attribute__((section(".vectors"), used)) const utvm_fw_vector_table utvm_fw_vectors = {
    &__stack_top,
    {utvm_fw_reset, utvm_fw_fault_handler, utvm_fw_fault_handler, utvm_fw_fault_handler, utvm_fw_fault_handler,
     utvm_fw_fault_handler, NULL, NULL, NULL, NULL, utvm_fw_fault_handler, utvm_fw_fault_handler, NULL,
     utvm_fw_fault_handler, utvm_fw_fault_handler}};

/* A word of the system's address space: memory or a register. */
static volatile uint32_t *word_at(uint32_t addr) {
  /* cppcheck-suppress misra-c2012-11.4 ; deviation S2 */
  return (volatile uint32_t *)addr;
}

/* The address of p, as the semihosting parameter blocks and the .bss bounds need it. */
static uint32_t address_of(const char *p) {
  /* cppcheck-suppress misra-c2012-11.4 ; deviation S4 */
  return (uint32_t)p;
}

static int32_t semihost(uint32_t op, const uint32_t args[]) {
  /* MISRA C:2012 1.2, deviation S7: the semihosting trap has no ISO C form */
  register uint32_t r0 __asm__("r0") = op;
  register const uint32_t *r1 __asm__("r1") = args;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return (int32_t)r0;
}

void utvm_fw_write(const char *buf, size_t n) {
  static const char tt[] = ":tt";
  static int32_t console = -1;
  if (console < 0) {
    const uint32_t open_args[3] = {address_of(tt), 4u /* "w" */, 3u};
    console = semihost(0x01u /* SYS_OPEN */, open_args);
  }
  {
    const uint32_t args[3] = {(uint32_t)console, address_of(buf), (uint32_t)n};
    (void)semihost(0x05u /* SYS_WRITE */, args);
  }
}

void utvm_fw_exit(int status) {
  const uint32_t args[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)status};
  (void)semihost(0x20u /* SYS_EXIT_EXTENDED */, args);
  for (;;) {
  }
}

/* The FPU (where the core has one): usable once CPACR allows it and the pipeline saw that. */
static void enable_fpu(void) {
#if defined(__ARM_FP)
  *word_at(0xE000ED88u) |= 0x00F00000u; /* CPACR: CP10, CP11 full access */
  __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
}

void utvm_fw_reset(void) {
  const uint32_t end = address_of(&__bss_end);
  uint32_t at = address_of(&__bss_start);
  while (at < end) {
    *word_at(at) = 0u;
    at += 4u;
  }
  enable_fpu();
  utvm_fw_run();
}

void utvm_fw_fault_handler(void) {
  const uint32_t cfsr = *word_at(0xE000ED28u);
  const uint32_t hfsr = *word_at(0xE000ED2Cu);
  utvm_fw_puts("utvm-fault cfsr ");
  utvm_fw_put_u64(cfsr);
  utvm_fw_puts(" hfsr ");
  utvm_fw_put_u64(hfsr);
  utvm_fw_puts("\n");
  utvm_fw_exit(3);
}
