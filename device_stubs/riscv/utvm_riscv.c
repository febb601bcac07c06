/* utvm-host device data for RISC-V: the fault record, Spike's HTIF mailboxes and a write through
 * them. */
#include <stddef.h>
#include <stdint.h>

#include "utvm_runtime.h"

/* Filled by UTVMTrapEntry (utvm_riscv_entry.S stores the fields in this order). */
typedef struct {
  uintptr_t mcause; /* 0 while no trap has happened during the call */
  uintptr_t mepc;
  uintptr_t mtval;
  uintptr_t sp;
  uintptr_t ra;
} UTVMFault;

/* Read by the host through their ELF symbols (UTVMFault's layout from DWARF), and by Spike's
 * front end, which looks tohost and fromhost up in the ELF it loads. */
extern volatile UTVMFault utvm_fault;
extern volatile uint64_t tohost;
extern volatile uint64_t fromhost;

volatile UTVMFault utvm_fault;
/* cppcheck-suppress misra-c2012-8.7 ; deviation R6 */
volatile uint64_t tohost __attribute__((aligned(64)));
volatile uint64_t fromhost __attribute__((aligned(64)));

/* write(1, buf, n) as a system call that the front end of Spike performs (HTIF device 0): the
 * console of the runtime (console kind htif), of standalone firmware and of the serial stub. */
void utvm_htif_write(const char *buf, size_t n) {
  volatile uint64_t magic[8] __attribute__((aligned(64)));
  magic[0] = 64u; /* SYS_write */
  magic[1] = 1u;  /* stdout */
  /* cppcheck-suppress misra-c2012-11.4 ; deviation R5 */
  magic[2] = (uintptr_t)buf;
  magic[3] = n;
  __sync_synchronize();
  /* cppcheck-suppress misra-c2012-11.4 ; deviation R5 */
  tohost = (uintptr_t)magic;
  while (fromhost == 0u) {
  }
  fromhost = 0u;
  __sync_synchronize();
}
