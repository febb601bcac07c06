/* Kernels for the device runtime's own checks (tests/test_runtime_c.py): workspace buffers
 * overrun by a kernel, freeing NULL, and a spin loop longer than SysTick's 24 bits. */
#include <stdint.h>
#include "utvm_runtime.h"

/* Writes n words of junk just past a 64-byte workspace buffer: over the header of the block
 * allocated after it. Then asks for another block and frees everything, ignoring failures, as
 * buggy code would. Returns 1 when the new block is the live one behind the header (handed out
 * twice: what the runtime did before it checked its headers), else 0. */
int32_t ws_overrun_live(const int32_t *junk, int32_t n) {
  int32_t *a = (int32_t *)TVMBackendAllocWorkspace(1, 0, 64, 0, 32);
  int32_t *b = (int32_t *)TVMBackendAllocWorkspace(1, 0, 64, 0, 32);
  int32_t *c;
  int32_t twice;
  if (a == 0 || b == 0) return -2;
  for (int32_t i = 0; i < n; i++) a[16 + i] = junk[i];
  c = (int32_t *)TVMBackendAllocWorkspace(1, 0, 32, 0, 32);
  twice = c == b;
  (void)TVMBackendFreeWorkspace(1, 0, c);
  (void)TVMBackendFreeWorkspace(1, 0, b);
  (void)TVMBackendFreeWorkspace(1, 0, a);
  return twice;
}

/* Writes n words of junk past a 64-byte workspace buffer, over the header of the free rest of
 * the workspace, and returns without freeing it or asking for more: only the runtime's check
 * after the task can see what it did. */
int32_t ws_overrun_quiet(const int32_t *junk, int32_t n) {
  int32_t *a = (int32_t *)TVMBackendAllocWorkspace(1, 0, 64, 0, 32);
  if (a == 0) return -2;
  for (int32_t i = 0; i < n; i++) a[16 + i] = junk[i];
  return 0;
}

/* Uses the workspace correctly: 1 when allocation and free work. */
int32_t ws_clean(int32_t bytes) {
  void *p = TVMBackendAllocWorkspace(1, 0, (uint64_t)bytes, 0, 8);
  return p != 0 && TVMBackendFreeWorkspace(1, 0, p) == 0;
}

/* TVMBackendFreeWorkspace(NULL) is a no-op, as free(NULL) is. */
int32_t ws_free_null(int32_t unused) {
  (void)unused;
  return TVMBackendFreeWorkspace(1, 0, 0);
}

/* n iterations of a tight loop (about the same cycles each). */
void spin(uint32_t n) {
  for (uint32_t i = 0; i < n; i++) __asm__ volatile("");
}
