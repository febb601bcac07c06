/* utvm-host device data for RISC-V: the fault record and Spike's HTIF mailboxes. */
#include <stdint.h>

/* Filled by UTVMTrapEntry (utvm_riscv_entry.S stores the fields in this order). */
typedef struct {
  uintptr_t mcause; /* 0 while no trap has happened during the call */
  uintptr_t mepc;
  uintptr_t mtval;
  uintptr_t sp;
  uintptr_t ra;
} UTVMFault;

volatile UTVMFault utvm_fault;

/* Spike's host-target interface looks these symbols up in the ELF it loads. */
volatile uint64_t tohost __attribute__((aligned(64)));
volatile uint64_t fromhost __attribute__((aligned(64)));
