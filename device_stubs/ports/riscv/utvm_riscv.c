/* utvm-host device data for RISC-V: the fault record and Spike's HTIF mailboxes (the write through
 * them is the console's channel, in utvm_console.c, and the firmware's, in
 * device_stubs/programs/firmware/riscv/utvm_fw_riscv.c). */
#include <stddef.h>
#include <stdint.h>

#include "utvm_runtime.h"
#include "utvm_htif.h"

/* Filled by UTVMTrapEntry (utvm_riscv_entry.S stores the fields in this order). */
typedef struct {
  uintptr_t mcause; /* 0 while no trap has happened during the call */
  uintptr_t mepc;
  uintptr_t mtval;
  uintptr_t sp;
  uintptr_t ra;
} UTVMFault;

/* utvm_riscv_entry.S stores the fields at these offsets (one register apart, in this order). */
#if defined(__STDC_VERSION__) && (__STDC_VERSION__ >= 201112L)
_Static_assert((offsetof(UTVMFault, mepc) == sizeof(uintptr_t)) && (offsetof(UTVMFault, mtval) == (2u * sizeof(uintptr_t))) &&
                   (offsetof(UTVMFault, sp) == (3u * sizeof(uintptr_t))) && (offsetof(UTVMFault, ra) == (4u * sizeof(uintptr_t))),
               "UTVMFault's layout differs from what utvm_riscv_entry.S stores");
#endif

/* Read by the host through their ELF symbols (UTVMFault's layout from DWARF), and by Spike's
 * front end, which looks tohost and fromhost up in the ELF it loads. */
extern volatile UTVMFault utvm_fault; /* (tohost and fromhost: utvm_htif.h) */

volatile UTVMFault utvm_fault;
/* (8-byte aligned like any uint64_t: Spike's front end reads them by address, whatever the line) */
/* cppcheck-suppress misra-c2012-8.7 ; deviation R6 */
volatile uint64_t tohost;
volatile uint64_t fromhost;
