/* utvm-host device runtime: what a port provides. The portable runtime (device_stubs/runtime/)
 * calls only these; each port folder (device_stubs/ports/) implements them for one family:
 *
 *   ports/riscv/    UTVMCounter (mcycle/minstret CSRs), UTVMEntry and UTVMTrapEntry (assembly: the
 *                   stack, mtvec, the trap record utvm_fault), Spike's HTIF mailboxes
 *   ports/cortexm/  UTVMCounter (DWT cycle counter, else SysTick with every wrap counted), UTVMEntry,
 *                   UTVMFaultHandler (the vector table, PSPLIM or an MPU stack guard)
 *   ports/linux/    UTVMCounter (CLOCK_MONOTONIC in ns), utvm_sys_write (write(2): the console of the
 *                   host device's process, device_stubs/programs/host/)
 *
 * A new port is a folder under device_stubs/ports/ with these (and an utvm_host/arch/ file naming
 * it). Standalone programs (device_stubs/programs/: host/, firmware/, serial/) are not ports: they
 * link the runtime or stand alone. */
#ifndef UTVM_PORT_H_
#define UTVM_PORT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The device's counter (cfg["counter"]: cycles, retired instructions or nanoseconds). */
uint64_t UTVMCounter(void);

/* The linux port's console channel (the host device's process): write(2). */
long utvm_sys_write(int fd, const void *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* UTVM_PORT_H_ */
