/* utvm-host: Spike's host-target interface, shared by the runtime's console (HTIF kind) and the
 * standalone firmware / serial stub on RISC-V. Spike's front end finds tohost and fromhost (defined
 * in device_stubs/ports/riscv/utvm_riscv.c) in the ELF it loads. */
#ifndef UTVM_HTIF_H_
#define UTVM_HTIF_H_

#include <stddef.h>
#include <stdint.h>

extern volatile uint64_t tohost;
extern volatile uint64_t fromhost;

/* write(1, buf, n) as a system call that the front end of Spike performs (HTIF device 0). */
static inline void utvm_htif_write(const char *buf, size_t n) {
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

#endif /* UTVM_HTIF_H_ */
