/* utvm-host device runtime, linked on demand: the workspace allocator (TVM's
 * TVMBackendAllocWorkspace/TVMBackendFreeWorkspace). The session places it the first time a
 * loaded library calls one of them (so does the firmware's link); its state lives in the
 * resident runtime (utvm_state: the host writes where the region lies and reads the peak and
 * the header an error names), and UTVMMain calls its check after each task once a run used it. */
#include <stddef.h>
#include <stdint.h>

#include "../utvm_runtime_state.h"

/* The runtime's own errors: a code (UTVM_RUNTIME_ERROR and a digit, utvm_runtime.h), whose text
 * the host prints. */
static void runtime_error(const char *code) {
  TVMFFIErrorSetRaisedFromCStr(NULL, code);
}

/* ---- workspace: first fit over an implicit list of checked blocks, coalescing as it walks --
 *
 * The region is an array of 16-byte units. A block is a header unit and its data units; the
 * header holds its size and whether it is in use, and a check word derived from both and from
 * its position, so a header that a kernel wrote over (running past the end of its buffer) is
 * found instead of trusted: every allocation and free walks and checks the whole list, and so
 * does the task loop after each task once the run used the workspace, so that the error names
 * the kernel that did it. */

#define UTVM_WS_MAGIC 0x5EA1ED57u
#define UTVM_WS_NONE 0xFFFFFFFFu   /* ws_walk: no such block */
#define UTVM_WS_BAD 0xFFFFFFFEu    /* ws_walk: a header was written over (the error is set) */

static void ws_seal(uint32_t i, uint32_t units, uint32_t used) {
  uint32_t word = (units << 1) | used;
  utvm_state.ws_first[i].word = word;
  utvm_state.ws_first[i].check = UTVM_WS_MAGIC ^ word ^ i;
}

static void ws_check(void);

/* The region as the host described it, one free block, the first time a run uses it (and for
 * firmware, which calls kernels without UTVMMain: the first time ever). */
static void ws_start(void) {
  if (utvm_state.ws_first == NULL) {
    uintptr_t begin = (utvm_state.workspace_base + 15u) & ~(uintptr_t)15u;
    uintptr_t end = (utvm_state.workspace_base + utvm_state.workspace_size) & ~(uintptr_t)15u;
    uintptr_t units = (end > begin) ? ((end - begin) >> 4) : 0u;
    utvm_state.ws_count = (units < 0x7FFFFFF0u) ? (uint32_t)units : 0x7FFFFFF0u; /* (a header holds units << 1) */
    /* cppcheck-suppress misra-c2012-11.4 ; deviation R1 */
    utvm_state.ws_first = (UTVMBlock *)begin;
    utvm_state.after_task = &ws_check;   /* UTVMMain checks every header after each task */
    if (utvm_state.ws_count != 0u) {
      ws_seal(0u, utvm_state.ws_count, 0u);
    }
  }
}

/* The error for a header found written over, with its address. */
static void ws_corrupt(uint32_t i) {
  /* cppcheck-suppress misra-c2012-11.4 ; deviation R1 */
  utvm_state.ws_bad = (uintptr_t)&utvm_state.ws_first[i];
  runtime_error(UTVM_RUNTIME_ERROR "4");
  utvm_state.error_set = UTVM_ERROR_BY_RUNTIME;
}

/* Walk the block list from the start, checking every header and merging each free block into
 * the free block before it, if any (a free only marks its block: the next walk, which every use
 * of the workspace makes, coalesces it). Returns the first block that holds the data at target,
 * or (target NULL) the first free one of at least need units; UTVM_WS_NONE when there is no such
 * block; UTVM_WS_BAD when a header was written over (the error is set). */
static uint32_t ws_walk(const void *target, uint32_t need) {
  uint32_t i = 0u;
  uint32_t last = UTVM_WS_NONE;   /* the free block just before i, if there is one */
  uint32_t hit = UTVM_WS_NONE;
  ws_start();
  while (i < utvm_state.ws_count) {
    uint32_t word = utvm_state.ws_first[i].word;
    uint32_t units = word >> 1;
    uint32_t at = i;   /* the block i now is: itself, or the free one it was merged into */
    if ((utvm_state.ws_first[i].check != (UTVM_WS_MAGIC ^ word ^ i)) || ((units - 1u) >= (utvm_state.ws_count - i))) {
      ws_corrupt(i);
      hit = UTVM_WS_BAD;
      i = utvm_state.ws_count;
    } else {
      i += units;
      if ((word & 1u) != 0u) {
        last = UTVM_WS_NONE;
      } else {
        if (last != UTVM_WS_NONE) {   /* coalesce */
          at = last;
          units = i - last;
          ws_seal(at, units, 0u);
        }
        last = at;
      }
      if ((hit == UTVM_WS_NONE) &&
          (((const void *)&utvm_state.ws_first[at + 1u] == target) || (((word & 1u) == 0u) && (units >= need)))) {
        hit = at;
      }
    }
  }
  return hit;
}

/* After each task of a run that used the workspace (UTVMMain): did the task write over a header? */
static void ws_check(void) {
  (void)ws_walk(NULL, UTVM_WS_NONE);
}

void *TVMBackendAllocWorkspace(int device_type, int device_id, uint64_t nbytes, int dtype_code_hint,
                               int dtype_bits_hint) {
  void *out = NULL;
  /* units of data (2^32 bytes or more: more than any region holds) */
  uint32_t units = ((nbytes >> 32) != 0u) ? UTVM_WS_BAD
                                           : (((uint32_t)nbytes >> 4) + ((((uint32_t)nbytes & 15u) != 0u) ? 1u : 0u));
  uint32_t i = ws_walk(NULL, units + 1u);
  (void)device_type;
  (void)device_id;
  (void)dtype_code_hint;
  (void)dtype_bits_hint;
  if (i == UTVM_WS_NONE) {
    runtime_error((units > utvm_state.ws_count) ? UTVM_RUNTIME_ERROR "1" : UTVM_RUNTIME_ERROR "2");
  } else if (i != UTVM_WS_BAD) {
    uint32_t need = units + 1u;   /* the header and the data */
    uint32_t have = utvm_state.ws_first[i].word >> 1;
    if ((have - need) >= 2u) {   /* split off the rest: a header and at least one unit */
      ws_seal(i + need, have - need, 0u);
      have = need;
    }
    ws_seal(i, have, 1u);
    if (((uintptr_t)i + have) > (utvm_state.workspace_peak >> 4)) {
      utvm_state.workspace_peak = ((uintptr_t)i + have) << 4;
    }
    out = &utvm_state.ws_first[i + 1u];
  } else {
    /* the walk set the error */
  }
  return out;
}

int TVMBackendFreeWorkspace(int device_type, int device_id, void *ptr) {
  int status = 0;
  (void)device_type;
  (void)device_id;
  if (ptr != NULL) {
    uint32_t i = ws_walk(ptr, UTVM_WS_NONE);
    if ((i < UTVM_WS_BAD) && ((utvm_state.ws_first[i].word & 1u) != 0u)) {
      ws_seal(i, utvm_state.ws_first[i].word >> 1, 0u);   /* free: the next walk coalesces it */
    } else {
      if (i != UTVM_WS_BAD) {
        runtime_error(UTVM_RUNTIME_ERROR "3");
      }
      status = -1;
    }
  }
  return status;
}

