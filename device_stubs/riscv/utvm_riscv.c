/* utvm-host device data for RISC-V: the fault record, Spike's HTIF mailboxes and a write through
 * them. */
#include <stddef.h>
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

/* write(1, buf, n) as a system call Spike's front end performs (HTIF device 0): the console of
 * the runtime (cfg["console"] htif) and of standalone firmware. */
void utvm_htif_write(const char *buf, size_t n) {
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
