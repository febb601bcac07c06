/* The UARTs of the devices, register by register, written once: the runtime console's channel
 * (device_stubs/runtime/utvm_console.c) and the serial stub's link (device_stubs/programs/serial/) use
 * them. A 16550 (QEMU riscv virt: 0x10000000) and an Arm CMSDK APB UART (QEMU MPS2:
 * 0x40004000); every function takes the UART's base address, a build-time constant of the
 * device's configuration. */
#ifndef UTVM_UART_H_
#define UTVM_UART_H_

#include <stdbool.h>
#include <stdint.h>

/* ---- 16550: byte registers THR/RBR 0, IER 1, FCR 2, LCR 3, LSR 5 ---- */

static inline volatile uint8_t *utvm_ns16550_reg(uintptr_t base, uint32_t index) {
  /* cppcheck-suppress misra-c2012-11.4 ; deviation U1 */
  volatile uint8_t *const regs = (volatile uint8_t *)base;
  return &regs[index];
}

static inline void utvm_ns16550_init(uintptr_t base) {
  *utvm_ns16550_reg(base, 3u) = 0x80u; /* LCR: divisor latch */
  *utvm_ns16550_reg(base, 0u) = 1u;    /* the fastest rate the UART's clock allows */
  *utvm_ns16550_reg(base, 1u) = 0u;
  *utvm_ns16550_reg(base, 3u) = 0x03u; /* 8N1 */
  *utvm_ns16550_reg(base, 2u) = 0x07u; /* FCR: FIFOs on (an emulator then hands over 16 bytes at a time), cleared */
}

static inline bool utvm_ns16550_ready(uintptr_t base) {
  return (*utvm_ns16550_reg(base, 5u) & 0x01u) != 0u; /* LSR: data ready */
}

static inline uint8_t utvm_ns16550_get(uintptr_t base) {
  return *utvm_ns16550_reg(base, 0u);
}

static inline void utvm_ns16550_put(uintptr_t base, uint8_t c) {
  while ((*utvm_ns16550_reg(base, 5u) & 0x20u) == 0u) { /* LSR: transmitter holding register empty */
  }
  *utvm_ns16550_reg(base, 0u) = c;
}

/* ---- CMSDK APB UART: word registers DATA 0, STATE 1, CTRL 2, BAUDDIV 4 ---- */

static inline volatile uint32_t *utvm_cmsdk_reg(uintptr_t base, uint32_t index) {
  /* cppcheck-suppress misra-c2012-11.4 ; deviation U1 */
  volatile uint32_t *const regs = (volatile uint32_t *)base;
  return &regs[index];
}

static inline void utvm_cmsdk_init(uintptr_t base) {
  *utvm_cmsdk_reg(base, 4u) = 16u; /* BAUDDIV */
  *utvm_cmsdk_reg(base, 2u) = 3u;  /* CTRL: TX and RX enabled */
}

/* The transmitter on (with a valid baud divider) unless it is already: the console's first write. */
static inline void utvm_cmsdk_tx_on(uintptr_t base) {
  if ((*utvm_cmsdk_reg(base, 2u) & 1u) == 0u) {
    *utvm_cmsdk_reg(base, 4u) = 16u;
    *utvm_cmsdk_reg(base, 2u) |= 1u;
  }
}

static inline bool utvm_cmsdk_ready(uintptr_t base) {
  return (*utvm_cmsdk_reg(base, 1u) & 2u) != 0u; /* STATE: RX full */
}

static inline uint8_t utvm_cmsdk_get(uintptr_t base) {
  return (uint8_t)(*utvm_cmsdk_reg(base, 0u) & 0xFFu);
}

static inline void utvm_cmsdk_put(uintptr_t base, uint8_t c) {
  while ((*utvm_cmsdk_reg(base, 1u) & 1u) != 0u) { /* STATE: TX full */
  }
  *utvm_cmsdk_reg(base, 0u) = (uint32_t)c;
}

#endif /* UTVM_UART_H_ */
