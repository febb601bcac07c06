/* A kernel that scribbles over the runtime's HTIF mailbox (Spike's console and exit channel):
 * Spike takes an odd value as "exit with this code" and ends. */
#include <stdint.h>

extern volatile uint64_t tohost;

void clobber_tohost(uint32_t hi, uint32_t lo) {
  tohost = ((uint64_t)hi << 32) | lo;
}
