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
 *
 * The counter (UTVMCounter) is DWT's cycle counter, or on cores without one (QEMU's) SysTick,
 * whose exception counts the wraps of its 24 bits, so kernels of any length are timed in full.
 */
#include <stddef.h>
#include <stdint.h>

#include "utvm_runtime.h"

/* The System Control Space (SCB, SysTick, MPU) as 32-bit registers (the DWT's: UTVMCounter). */
/* cppcheck-suppress misra-c2012-11.4 ; deviation R4 */
static volatile uint32_t *const utvm_scs = (volatile uint32_t *)0xE000E000u;
#define SYST_CSR (utvm_scs[0x010u / 4u])
#define SYST_RVR (utvm_scs[0x014u / 4u])
#define SYST_CVR (utvm_scs[0x018u / 4u])
#define SCB_ICSR (utvm_scs[0xD04u / 4u])
#define SCB_CCR (utvm_scs[0xD14u / 4u])
#define SCB_CFSR (utvm_scs[0xD28u / 4u])
#define SCB_HFSR (utvm_scs[0xD2Cu / 4u])
#define SCB_MMFAR (utvm_scs[0xD34u / 4u])
#define SCB_BFAR (utvm_scs[0xD38u / 4u])
#define DEMCR (utvm_scs[0xDFCu / 4u])
/* and, used once each below: CPACR 0xD88 (FPU access); the MPU's TYPE 0xD90, CTRL 0xD94, RNR 0xD98,
 * RBAR 0xD9C and RASR 0xDA0. */

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

typedef void (*UTVMVector)(void);

/* Read and written by the host through their ELF symbols (the host reads UTVMFault's layout
 * from DWARF). */
extern volatile UTVMFault utvm_fault;
extern uint32_t utvm_handler_stack[128];
extern uint32_t utvm_thread_stack_top;
extern volatile uint32_t utvm_stack_limit;
#define UTVM_GUARD_REGIONS 8u
extern volatile uint32_t utvm_stack_guard[2u * UTVM_GUARD_REGIONS];
extern const UTVMVector utvm_vectors[16];

volatile UTVMFault utvm_fault;
uint32_t utvm_handler_stack[128] __attribute__((aligned(8), used));
/* cppcheck-suppress misra-c2012-8.7 ; deviation R6 */
uint32_t utvm_thread_stack_top;
/* Written by the host: the lowest address of the stack region. A stack overflow is stopped
 * there: by PSPLIM on v8-M mainline (it checks sp itself, however big the frame), by no-access
 * MPU regions on v7-M (see utvm_stack_guard). */
/* cppcheck-suppress misra-c2012-8.7 ; deviation R6 */
volatile uint32_t utvm_stack_limit;
/* Written by the host (v7-M): up to 8 MPU regions as (RBAR, RASR) pairs, no access, that guard
 * the stack from its lowest 4 KiB down below the region as deep as the largest stack frame of
 * the loaded code: a frame bigger than one 4 KiB guard would jump over it and read or write
 * whatever lies below (on QEMU's MPS2: nothing, reads give zeros and writes vanish). A pair
 * with RASR 0 is unused; all unused: the lowest 4 KiB of the stack only. */
volatile uint32_t utvm_stack_guard[2u * UTVM_GUARD_REGIONS];

void UTVMEntry(void) __attribute__((used, naked, noreturn));
void UTVMStart(void) __attribute__((used, noreturn));
void UTVMFaultHandler(void) __attribute__((naked, used));
void UTVMFaultRecord(uint32_t *frame, uint32_t exc, uint32_t done) __attribute__((used));
void UTVMSysTickHandler(void) __attribute__((used));

/* Only the system exceptions: no external interrupt is ever enabled. SysTick's counts the wraps
 * of its 24-bit counter (UTVMCounter's high part, on cores without a DWT cycle counter); every
 * other one is a fault. VTOR needs the table aligned to a power of two covering it (128 bytes
 * at least); 512 covers any core's minimum. Slot 0 (the initial stack pointer) and reset are
 * never read from this table: the host starts the core itself. */
__attribute__((aligned(512))) const UTVMVector utvm_vectors[16] = {
    NULL, NULL, UTVMFaultHandler, UTVMFaultHandler, UTVMFaultHandler, UTVMFaultHandler, UTVMFaultHandler, NULL,
    NULL, NULL, NULL, UTVMFaultHandler, UTVMFaultHandler, NULL, UTVMFaultHandler, UTVMSysTickHandler,
};

void UTVMEntry(void) {
  /* MISRA C:2012 1.2, deviation R8: GCC inline assembly for the stack pointers, PSPLIM and barriers, which have no C form */
  __asm__ volatile(
      "mov r0, sp\n\t"
      "ldr r1, =utvm_thread_stack_top\n\t"
      "str r0, [r1]\n\t"
      "msr psp, r0\n\t"                       /* thread mode: the stack the host set up */
      "ldr r0, =utvm_handler_stack + 512\n\t"
      "msr msp, r0\n\t"                       /* handlers: a stack of their own */
      "movs r0, #2\n\t"
      "msr control, r0\n\t"                   /* SPSEL = 1: thread mode uses PSP */
      "ldr r0, =utvm_vectors\n\t"
      "ldr r1, =0xE000ED08\n\t"
      "str r0, [r1]\n\t"                      /* VTOR: this runtime's exception handlers */
      "dsb\n\t"
      "isb\n\t"
      "b UTVMStart\n\t");
}

void UTVMStart(void) {
#if defined(__ARM_FP)
  utvm_scs[0xD88u / 4u] |= 0x00F00000u; /* CP10, CP11 (bits 20-23): full access to the FPU */
#endif
  SCB_CCR |= 0x10u;         /* DIV_0_TRP (bit 4): an integer division by zero faults */
  if (utvm_stack_limit != 0u) {
#if defined(__ARM_ARCH_8M_MAIN__)
    /* MISRA C:2012 1.2, deviation R8: GCC inline assembly for the stack pointers, PSPLIM and barriers, which have no C form */
    __asm__ volatile("msr psplim, %0" : : "r"(utvm_stack_limit));
#elif defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__)
    uint32_t regions = (utvm_scs[0xD90u / 4u] >> 8) & 0xFFu; /* MPU_TYPE.DREGION: regions there are */
    uint32_t used = 0u;
    uint32_t i;
    for (i = 0u; (i < UTVM_GUARD_REGIONS) && (i < regions); i++) {
      utvm_scs[0xD98u / 4u] = i; /* MPU_RNR, MPU_RBAR, MPU_RASR */
      utvm_scs[0xD9Cu / 4u] = utvm_stack_guard[2u * i] & ~0x1Fu;
      utvm_scs[0xDA0u / 4u] = utvm_stack_guard[(2u * i) + 1u]; /* XN, no access (AP=0), its size, enabled; or 0: off */
      used |= utvm_stack_guard[(2u * i) + 1u];
    }
    if ((used == 0u) && (regions != 0u)) {          /* no table: the stack's lowest 4 KiB */
      utvm_scs[0xD98u / 4u] = 0u;
      utvm_scs[0xD9Cu / 4u] = utvm_stack_limit & ~0xFFFu; /* its 4 KiB */
      utvm_scs[0xDA0u / 4u] = 0x10000017u; /* XN (bit 28), no access (AP=0), SIZE 11 (bits 1-5): 2^(11+1) = 4 KiB, enabled */
    }
    utvm_scs[0xD94u / 4u] = 0x5u; /* MPU_CTRL: PRIVDEFENA (bit 2): everything else as without an MPU; ENABLE */
#else
#endif
  }
  __asm__ volatile("dsb\n\tisb" ::: "memory");
  utvm_fault.exc = 0u;
  UTVMMain();
  for (;;) {
  }
}

void UTVMFaultHandler(void) {
  /* MISRA C:2012 1.2, deviation R8: GCC inline assembly for the stack pointers, PSPLIM and barriers, which have no C form */
  __asm__ volatile(
      "tst lr, #4\n\t"
      "ite eq\n\t"
      "mrseq r0, msp\n\t"
      "mrsne r0, psp\n\t"
      "mrs r1, ipsr\n\t"
      "ldr r2, =UTVMDone\n\t"                 /* where the exception returns to */
      "b UTVMFaultRecord\n\t"); /* not bl: its return is this exception's return (lr = EXC_RETURN) */
}

/* frame: the exception's stacked r0-r3, r12, lr, pc, xPSR; exc: IPSR; done: UTVMDone's address. */
void UTVMFaultRecord(uint32_t *frame, uint32_t exc, uint32_t done) {
  uint32_t cfsr = SCB_CFSR;
  uint32_t *f = frame;
  if ((cfsr & 0x00101010u) != 0u) { /* MSTKERR (bit 4), STKERR (bit 12), STKOF (bit 20) */
    /* Stacking failed (or the v8-M stack limit hit): the frame is not there. Build one at the
     * top of the thread stack so the exception return below lands in UTVMDone. */
    /* cppcheck-suppress misra-c2012-11.4 ; deviation R1 */
    f = (uint32_t *)((utvm_thread_stack_top - 64u) & ~7u);
    f[5] = 0u;
    f[6] = 0u;
    f[7] = 0u;
    /* MISRA C:2012 1.2, deviation R8: GCC inline assembly for the stack pointers, PSPLIM and barriers, which have no C form */
    __asm__ volatile("msr psp, %0" : : "r"(f));
  }
  utvm_fault.cfsr = cfsr;
  utvm_fault.hfsr = SCB_HFSR;
  utvm_fault.mmfar = SCB_MMFAR;
  utvm_fault.bfar = SCB_BFAR;
  utvm_fault.pc = f[6];
  utvm_fault.lr = f[5];
  utvm_fault.xpsr = f[7];
  utvm_fault.exc = exc & 0x1FFu;
  SCB_CFSR = SCB_CFSR; /* write-one-to-clear: the next fault reports afresh */
  SCB_HFSR = SCB_HFSR;
  /* Return to thread mode at UTVMDone(all ones, 0, 0). */
  f[0] = 0xFFFFFFFFu;
  f[1] = 0u;
  f[2] = 0u;
  f[6] = done & ~1u;
  f[7] = 0x01000000u; /* xPSR: Thumb state (bit 24) */
}

/* ---- counter: DWT CYCCNT where the core has it, else SysTick at the core clock ------------ *
 *
 * SysTick counts 24 bits down (0.67 s at QEMU's 25 MHz) and its exception, raised as it
 * reaches 0, counts the wraps: a kernel of any length is timed in full. The count of a period
 * is 0 at the value 0 (the wrap already counted), 1 after the reload to the top, ...; the wrap
 * count and the counter are read again until the count held still across the read, and a wrap
 * whose exception is still pending (the period just began) is added. DWT's 32 bits are
 * extended by comparing with the previous read (the runtime reads the counter at least around
 * every task: one wrap between reads, 43 s at 100 MHz, is the limit there). */
#define SYST_CSR_RUN 7u         /* ENABLE | TICKINT | CLKSOURCE (the processor clock) */
#define SYST_TOP 0xFFFFFFu
#define ICSR_PENDSTSET 0x04000000u   /* bit 26: the SysTick exception is pending */

static volatile uint32_t utvm_systick_wraps;

void UTVMSysTickHandler(void) {
  utvm_systick_wraps++;
}

uint64_t UTVMCounter(void) {
  /* cppcheck-suppress misra-c2012-11.4 ; deviation R4 */
  static volatile uint32_t *const dwt = (volatile uint32_t *)0xE0001000u;   /* DWT_CTRL, DWT_CYCCNT */
  static uint32_t kind;   /* 0: not set up, 1: DWT, 2: SysTick */
  static uint32_t last;   /* DWT: the previous read */
  static uint64_t high;   /* DWT: its wraps, << 32 */
  uint64_t now;
  if ((kind == 0u) || ((kind == 2u) && ((SYST_CSR & SYST_CSR_RUN) != SYST_CSR_RUN))) {
    DEMCR |= 0x01000000u; /* TRCENA (bit 24) */
    dwt[1] = 0u;           /* CYCCNT */
    dwt[0] |= 1u;          /* CTRL.CYCCNTENA */
    if ((dwt[0] & 1u) != 0u) {
      kind = 1u;
    } else { /* no DWT (QEMU models none): SysTick, counting its wraps */
      uint32_t spins;
      SYST_RVR = SYST_TOP;
      SYST_CVR = 0u;
      utvm_systick_wraps = 0u;
      SYST_CSR = SYST_CSR_RUN;
      /* It counts from its first reload: the next clock on a chip, but QEMU's timer thread does it
       * a moment later (until then it reads 0, and a measurement would read 0 cycles). */
      for (spins = 0u; (spins < 0x100000u) && ((SYST_CVR & SYST_TOP) == 0u); spins++) {
      }
      kind = 2u;
    }
  }
  if (kind == 1u) {
    uint32_t c = dwt[1];
    if (c < last) {
      high += 0x100000000u;
    }
    last = c;
    now = high | c;
  } else {
    uint32_t wraps;
    uint32_t value;
    uint32_t pending;
    uint32_t count;
    do {
      wraps = utvm_systick_wraps;
      value = SYST_CVR & SYST_TOP;
      pending = SCB_ICSR & ICSR_PENDSTSET;
    } while (wraps != utvm_systick_wraps);
    count = (SYST_TOP + 1u - value) & SYST_TOP; /* of this period */
    if ((pending != 0u) && (count < (SYST_TOP / 2u))) {
      wraps++;
    }
    now = ((uint64_t)wraps << 24) | (uint64_t)count;
  }
  return now;
}

/* Objects from LLVM (TVM's backend) carry .ARM.exidx unwind entries that name a personality
 * routine; nothing unwinds on the device, so these stand in for libgcc's unwinder (which would
 * drag in abort() and the exception index). The linker discards the entries themselves. */
/* cppcheck-suppress misra-c2012-21.2 ; deviation R2 */
void __aeabi_unwind_cpp_pr0(void);
/* cppcheck-suppress misra-c2012-21.2 ; deviation R2 */
void __aeabi_unwind_cpp_pr1(void);
/* cppcheck-suppress misra-c2012-21.2 ; deviation R2 */
void __aeabi_unwind_cpp_pr2(void);
void __aeabi_unwind_cpp_pr0(void) {}
void __aeabi_unwind_cpp_pr1(void) {}
void __aeabi_unwind_cpp_pr2(void) {}
