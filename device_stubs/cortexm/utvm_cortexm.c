/* utvm-host device entry and fault handler for Arm Cortex-M (v7-M and v8-M mainline).
 *
 * The host sets sp to the top of the stack region and pc to UTVMEntry, then continues; the
 * call ends at UTVMDone, where the host keeps a debugger breakpoint (not a BKPT instruction:
 * under QEMU a BKPT escalates to a HardFault lockup). A fault (HardFault, or an escalated
 * MemManage/BusFault/UsageFault) is recorded in utvm_fault (the host reads its layout from
 * DWARF) and the handler returns to UTVMDone in thread mode with the summary "all ones", so
 * the core stops at the breakpoint and stays usable for the next call.
 *
 * Kernels run in thread mode on the process stack (PSP, the stack region the host gives);
 * handlers run on their own small main stack (MSP). So a kernel that overflows its stack
 * faults on exception entry (STKERR) and the handler still runs on a good stack, builds a
 * fresh return frame at the top of the thread stack, and reports the overflow.
 */
#include <stdint.h>

#define SCB_VTOR (*(volatile uint32_t *)0xE000ED08u)
#define SCB_CCR (*(volatile uint32_t *)0xE000ED14u)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
#define SCB_MMFAR (*(volatile uint32_t *)0xE000ED34u)
#define SCB_BFAR (*(volatile uint32_t *)0xE000ED38u)
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define MPU_TYPE (*(volatile uint32_t *)0xE000ED90u)
#define MPU_CTRL (*(volatile uint32_t *)0xE000ED94u)
#define MPU_RNR (*(volatile uint32_t *)0xE000ED98u)
#define MPU_RBAR (*(volatile uint32_t *)0xE000ED9Cu)
#define MPU_RASR (*(volatile uint32_t *)0xE000EDA0u)
#define UTVM_GUARD_BYTES 4096u

typedef struct {
  uint32_t cfsr;  /* configurable fault status (UFSR:BFSR:MMFSR) */
  uint32_t hfsr;  /* HardFault status */
  uint32_t mmfar; /* MemManage fault address (valid when CFSR.MMARVALID) */
  uint32_t bfar;  /* BusFault address (valid when CFSR.BFARVALID) */
  uint32_t pc;    /* stacked pc: the faulting instruction */
  uint32_t lr;
  uint32_t xpsr;
  uint32_t exc;   /* exception number taken (3 = HardFault); 0 while no fault */
} UTVMFault;

volatile UTVMFault utvm_fault;
uint32_t utvm_handler_stack[128] __attribute__((aligned(8), used));
uint32_t utvm_thread_stack_top;
/* Written by the host: the lowest address of the stack region. A stack overflow is stopped
 * there: by PSPLIM on v8-M mainline (it checks sp itself, however big the frame), by no-access
 * MPU regions on v7-M (see utvm_stack_guard). */
volatile uint32_t utvm_stack_limit;
/* Written by the host (v7-M): up to 8 MPU regions as (RBAR, RASR) pairs, no access, that guard
 * the stack from its lowest 4 KiB down below the region as deep as the largest stack frame of
 * the loaded code: a frame bigger than one 4 KiB guard would jump over it and read or write
 * whatever lies below (on QEMU's MPS2: nothing, reads give zeros and writes vanish). A pair
 * with RASR 0 is unused; all unused: the lowest 4 KiB of the stack only. */
#define UTVM_GUARD_REGIONS 8u
volatile uint32_t utvm_stack_guard[2 * UTVM_GUARD_REGIONS];

extern void UTVMMain(void);
extern void UTVMDone(uintptr_t summary, uintptr_t ret_lo, uintptr_t ret_hi);
void UTVMEntry(void) __attribute__((used, naked, noreturn));
void UTVMStart(void) __attribute__((used, noreturn));
void UTVMFaultHandler(void) __attribute__((naked, used));
void UTVMFaultRecord(uint32_t *frame, uint32_t exc) __attribute__((used));

/* Only the system exceptions: no interrupt is ever enabled. VTOR needs the table aligned to
 * a power of two covering it (128 bytes at least); 512 covers any core's minimum. */
__attribute__((aligned(512))) void (*const utvm_vectors[16])(void) = {
    0, 0, UTVMFaultHandler, UTVMFaultHandler, UTVMFaultHandler, UTVMFaultHandler, UTVMFaultHandler, 0,
    0, 0, 0, UTVMFaultHandler, UTVMFaultHandler, 0, UTVMFaultHandler, UTVMFaultHandler,
};

void UTVMEntry(void) {
  __asm__ volatile(
      "mov r0, sp\n\t"
      "ldr r1, =utvm_thread_stack_top\n\t"
      "str r0, [r1]\n\t"
      "msr psp, r0\n\t"                       /* thread mode: the stack the host set up */
      "ldr r0, =utvm_handler_stack + 512\n\t"
      "msr msp, r0\n\t"                       /* handlers: a stack of their own */
      "movs r0, #2\n\t"
      "msr control, r0\n\t"                   /* SPSEL = 1: thread mode uses PSP */
      "isb\n\t"
      "b UTVMStart\n\t");
}

void UTVMStart(void) {
  SCB_VTOR = (uint32_t)(uintptr_t)utvm_vectors;
#if defined(__ARM_FP)
  SCB_CPACR |= 0xFu << 20; /* CP10, CP11: full access to the FPU */
#endif
  SCB_CCR |= 1u << 4;      /* DIV_0_TRP: an integer division by zero faults */
  if (utvm_stack_limit != 0u) {
#if defined(__ARM_ARCH_8M_MAIN__)
    __asm__ volatile("msr psplim, %0" : : "r"(utvm_stack_limit));
#elif defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__)
    uint32_t regions = (MPU_TYPE >> 8) & 0xFFu, used = 0u;
    for (uint32_t i = 0u; i < UTVM_GUARD_REGIONS && i < regions; i++) {
      MPU_RNR = i;
      MPU_RBAR = utvm_stack_guard[2u * i] & ~0x1Fu;
      MPU_RASR = utvm_stack_guard[2u * i + 1u]; /* XN, no access (AP=0), its size, enabled; or 0: off */
      used |= utvm_stack_guard[2u * i + 1u];
    }
    if (used == 0u && regions != 0u) {          /* no table: the stack's lowest 4 KiB */
      MPU_RNR = 0u;
      MPU_RBAR = utvm_stack_limit & ~(UTVM_GUARD_BYTES - 1u);
      MPU_RASR = (1u << 28) | (11u << 1) | 1u; /* XN, no access (AP=0), 2^(11+1) = 4 KiB, enabled */
    }
    MPU_CTRL = (1u << 2) | 1u;                /* PRIVDEFENA: everything else as without an MPU */
#endif
  }
  __asm__ volatile("dsb\n\tisb" ::: "memory");
  utvm_fault.exc = 0;
  UTVMMain();
  for (;;) {
  }
}

void UTVMFaultHandler(void) {
  __asm__ volatile(
      "tst lr, #4\n\t"
      "ite eq\n\t"
      "mrseq r0, msp\n\t"
      "mrsne r0, psp\n\t"
      "mrs r1, ipsr\n\t"
      "b UTVMFaultRecord\n\t"); /* not bl: its return is this exception's return (lr = EXC_RETURN) */
}

void UTVMFaultRecord(uint32_t *frame, uint32_t exc) {
  uint32_t cfsr = SCB_CFSR;
  if (cfsr & ((1u << 12) | (1u << 4) | (1u << 20))) {
    /* Stacking failed (or the v8-M stack limit hit): the frame is not there. Build one at the
     * top of the thread stack so the exception return below lands in UTVMDone. */
    frame = (uint32_t *)((utvm_thread_stack_top - 64u) & ~7u);
    frame[5] = 0;
    frame[6] = 0;
    frame[7] = 0;
    __asm__ volatile("msr psp, %0" : : "r"(frame));
  }
  utvm_fault.cfsr = cfsr;
  utvm_fault.hfsr = SCB_HFSR;
  utvm_fault.mmfar = SCB_MMFAR;
  utvm_fault.bfar = SCB_BFAR;
  utvm_fault.pc = frame[6];
  utvm_fault.lr = frame[5];
  utvm_fault.xpsr = frame[7];
  utvm_fault.exc = exc & 0x1FFu;
  SCB_CFSR = SCB_CFSR; /* write-one-to-clear: the next fault reports afresh */
  SCB_HFSR = SCB_HFSR;
  /* Return to thread mode at UTVMDone(all ones, 0, 0). */
  frame[0] = 0xFFFFFFFFu;
  frame[1] = 0;
  frame[2] = 0;
  frame[6] = (uint32_t)(uintptr_t)UTVMDone & ~1u;
  frame[7] = 1u << 24; /* xPSR: Thumb state */
}

/* ---- counter: DWT CYCCNT where the core has it, else SysTick at the core clock ------------ */
#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static uint32_t utvm_counter_kind; /* 0: not set up, 1: DWT, 2: SysTick */
static uint32_t utvm_counter_last;
static uint64_t utvm_counter_high;

uint64_t UTVMCounter(void) {
  uint32_t now;
  if (utvm_counter_kind == 0) {
    DEMCR |= 1u << 24; /* TRCENA */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;
    if (DWT_CTRL & 1u) {
      utvm_counter_kind = 1;
    } else { /* no DWT (QEMU models none): SysTick, 24 bits, processor clock, no interrupt */
      SYST_RVR = 0xFFFFFFu;
      SYST_CVR = 0;
      SYST_CSR = 5u;
      utvm_counter_kind = 2;
    }
  }
  if (utvm_counter_kind == 1) {
    now = DWT_CYCCNT;
    if (now < utvm_counter_last) utvm_counter_high += 1ull << 32;
  } else {
    now = 0xFFFFFFu - (SYST_CVR & 0xFFFFFFu); /* it counts down */
    if (now < utvm_counter_last) utvm_counter_high += 1ull << 24;
  }
  utvm_counter_last = now;
  return utvm_counter_high + now;
}

/* Objects from LLVM (TVM's backend) carry .ARM.exidx unwind entries that name a personality
 * routine; nothing unwinds on the device, so these stand in for libgcc's unwinder (which would
 * drag in abort() and the exception index). The linker discards the entries themselves. */
void __aeabi_unwind_cpp_pr0(void) {}
void __aeabi_unwind_cpp_pr1(void) {}
void __aeabi_unwind_cpp_pr2(void) {}
