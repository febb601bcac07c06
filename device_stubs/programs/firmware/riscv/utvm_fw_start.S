/* utvm-host standalone firmware for RISC-V (Spike): reset entry, stack, .bss, trap. */
  .option arch, +zicsr
  .section .text.utvm_fw_start, "ax", @progbits
  .globl _start
  .type _start, @function
_start:
  .option push
  .option norelax
  la gp, __global_pointer$
  .option pop
  la sp, __stack_top
  la t0, utvm_fw_trap
  csrw mtvec, t0
#ifdef __riscv_flen
  li t0, 0x2000                   /* mstatus.FS = Initial: the FPU is usable */
  csrs mstatus, t0
  csrwi fcsr, 0
#endif
  la t0, __bss_start
  la t1, __bss_end
1:
  bgeu t0, t1, 2f
  sb zero, 0(t0)
  addi t0, t0, 1
  j 1b
2:
  call utvm_fw_run                /* main(), then utvm_fw_exit with its status */
3:
  j 3b
  .size _start, . - _start

  .align 2
  .globl utvm_fw_trap
utvm_fw_trap:
  csrr a0, mcause
  csrr a1, mepc
  csrr a2, mtval
  la sp, __stack_top              /* the stack may be what broke */
  call utvm_fw_fault
4:
  j 4b
