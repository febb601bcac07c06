/* utvm-host device entry and trap handler for RISC-V (rv32 and rv64, soft or hard float).
 *
 * The host sets sp to the top of the stack region and pc to UTVMEntry, then resumes; the
 * call ends when the core reaches UTVMDone, where the host keeps a breakpoint. A trap
 * (illegal instruction, access fault, misaligned access, ...) is recorded in utvm_fault
 * (mcause, mepc, mtval, sp, ra: the layout of UTVMFault in utvm_riscv.c, which the host reads
 * from DWARF) and also ends at UTVMDone, so a fault never leaves the core running wild.
 *
 * The handler runs on a stack of its own (utvm_trap_stack): the faulting sp may be what broke (a
 * stack overflow into a guard page, where every store faults again), and UTVMDone's path needs
 * a stack (on a serial device, UTVMDone calls the stub's UTVMDoneHook). The faulting sp is
 * recorded first, as it was.
 */
/* What runs on it: UTVMDone (a 48-byte frame on rv64 at -Os, 32 on rv32), then the serial stub's
 * UTVMDoneHook (16), whose longjmp needs none: 64 bytes at most. 96 leave a third spare and keep
 * the runtime's .bss within the 4 KiB of a microTVM-style hand layout on rv64 (tests/test_auto_layout.py). */
#define UTVM_TRAP_STACK_BYTES 96
#if __riscv_xlen == 64
#define STORE sd
#define REGBYTES 8
#else
#define STORE sw
#define REGBYTES 4
#endif

  .option arch, +zicsr             /* CSR instructions (a separate extension since ISA 20191213) */
  .section .text.utvm_entry, "ax", @progbits
  .globl UTVMEntry
  .type UTVMEntry, @function
  .align 2
UTVMEntry:
  .option push
  .option norelax
  la gp, __global_pointer$        /* defined by linker/library.ld.in; kernels are linked --no-relax */
  .option pop
  la t0, UTVMTrapEntry
  csrw mtvec, t0
#ifdef __riscv_flen
  li t0, 0x2000                   /* mstatus.FS = Initial: the FPU is usable */
  csrs mstatus, t0
  csrwi fcsr, 0
#endif
  la t0, utvm_fault
  STORE zero, 0(t0)               /* mcause 0: no fault (yet) */
  call UTVMMain                   /* ends in UTVMDone */
1:
  j 1b
  .size UTVMEntry, . - UTVMEntry

  .globl UTVMTrapEntry
  .type UTVMTrapEntry, @function
  .align 2                        /* mtvec direct mode needs 4-byte alignment */
UTVMTrapEntry:
  csrw mscratch, t0
  la t0, utvm_fault
  STORE ra, 4*REGBYTES(t0)
  STORE sp, 3*REGBYTES(t0)
  csrr ra, mtval
  STORE ra, 2*REGBYTES(t0)
  csrr ra, mepc
  STORE ra, 1*REGBYTES(t0)
  csrr ra, mcause
  STORE ra, 0(t0)
  la sp, utvm_trap_stack + UTVM_TRAP_STACK_BYTES   /* from here on, a stack that works */
  li a0, -1                       /* UTVMDone's summary: all ones means "trapped" */
  li a1, 0
  li a2, 0
  j UTVMDone
  .size UTVMTrapEntry, . - UTVMTrapEntry

  .section .bss.utvm_trap_stack, "aw", @nobits
  .globl utvm_trap_stack
  .type utvm_trap_stack, @object
  .align 4                        /* 16 bytes: the RISC-V psABI's stack alignment */
utvm_trap_stack:
  .skip UTVM_TRAP_STACK_BYTES
  .size utvm_trap_stack, UTVM_TRAP_STACK_BYTES
