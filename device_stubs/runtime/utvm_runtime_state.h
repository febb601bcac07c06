/* utvm-host device runtime, inside: the state the resident runtime (utvm_runtime.c) shares with
 * the parts linked on demand (on_demand/: the error API, the workspace allocator), which the
 * session places only when a loaded library calls into them. Not for kernels: they include
 * utvm_runtime.h. */
#ifndef UTVM_RUNTIME_STATE_H_
#define UTVM_RUNTIME_STATE_H_

#include <stddef.h>
#include <stdint.h>

#include "utvm_runtime.h"

/* The table sizes (cfg["runtime"]: tasks, repeats, error_text; the session passes them). */
#ifndef UTVM_MAX_TASKS
#define UTVM_MAX_TASKS 64
#endif
#ifndef UTVM_MAX_REPEAT
#define UTVM_MAX_REPEAT 64
#endif
#ifndef UTVM_ERROR_LEN
#define UTVM_ERROR_LEN 512
#endif
#if (UTVM_MAX_TASKS < 1) || (UTVM_MAX_TASKS > 126)
#error "UTVM_MAX_TASKS must be 1 to 126: the completion summary echoes the task count in 7 bits"
#endif
#if (UTVM_MAX_REPEAT < 1) || (UTVM_MAX_REPEAT > 4096)
#error "UTVM_MAX_REPEAT must be 1 to 4096"
#endif
#if (UTVM_ERROR_LEN < 16) || (UTVM_ERROR_LEN > 65536)
#error "UTVM_ERROR_LEN must be 16 to 65536 (a cut message ends in \"...\")"
#endif
#define UTVM_ERROR_KIND_LEN 32u
#define UTVM_ERROR_BY_RUNTIME 2u

/* The error text and TVM FFI's error kind ("TypeError", or ""): the host reads them by symbol. */
extern char utvm_last_error[UTVM_ERROR_LEN];
extern char utvm_last_error_kind[UTVM_ERROR_KIND_LEN];

/* A workspace block's header (on_demand/utvm_workspace.c). */
typedef struct {
  uint32_t word;    /* units of this block (the header included) << 1 | 1 while allocated */
  uint32_t check;   /* UTVM_WS_MAGIC ^ word ^ index: anything else was written over */
  uint32_t spare[2];
} UTVMBlock;

/* The runtime's scalar state, one object: the code reaches every field from one base address
 * (an offset in the instruction) instead of forming each symbol's address (8 bytes a use on
 * RISC-V). Each field the host uses still has a symbol of its own, of its type's size: an alias
 * at the field's offset, defined in UTVMDone (UTVM_FIELD_SYMBOL, utvm_runtime.c). */
typedef struct {
  /* utvm_batch_count: see utvm_timing */
  uint64_t batch_count;
  /* utvm_run, the run record {tasks to run, run id}: the host writes it when the task count
   * changes (and after a restart); every run adds one to the run id first and echoes both in
   * its completion summary, so a stale or corrupted runtime state can never pass for this run's
   * result, and an unchanged call costs no write. */
  volatile uint32_t run[2];
  /* utvm_timing (time_evaluator): with timing[0] (number) > 0, UTVMMain calls task 0 number
   * times per measurement, timing[1] (repeat) measurements, and stores each one's counter
   * difference in utvm_counts. Otherwise each task's difference goes to utvm_task_counts (the
   * host reads them when it asked for a profile: utvm_profile, which the device need not read)
   * and the whole loop's, overhead between tasks included, to utvm_batch_count. */
  uint32_t timing[2];
  uint32_t tasks_done;   /* utvm_tasks_done: tasks finished so far: tells the host which one faulted */
  /* utvm_error_set: 1 once the running task reported an error; UTVM_ERROR_BY_RUNTIME when the
   * runtime found one (a workspace header written over): that task fails whatever the kernel
   * returned. */
  volatile uint32_t error_set;
  uint32_t profile;      /* utvm_profile */
  uint32_t ws_count;     /* the workspace's units (the allocator's own: no symbol) */
  /* utvm_summary: the completion summary of the last run, as UTVMDone receives it (hosts
   * without a debugger read it here): tasks done | error << 16 | tasks seen << 17 | (run id &
   * 0xFF) << 24. */
  uintptr_t summary;
  /* utvm_workspace_base, utvm_workspace_size: the session writes where the workspace region
   * lies before the first call. */
  volatile uintptr_t workspace_base;
  volatile uintptr_t workspace_size;
  uintptr_t workspace_peak;   /* utvm_workspace_peak: high-water mark in bytes, for the memory map */
  uintptr_t ws_bad;           /* utvm_ws_bad: the header a corruption error names (its address) */
  UTVMBlock *ws_first;        /* the workspace's first unit; NULL until the run first uses it */
  /* What UTVMMain calls after each task, when set: the allocator sets its check of every
   * header the first time a run uses the workspace (the resident runtime does not link it). */
  void (*after_task)(void);
} UTVMState;
extern UTVMState utvm_state;

#endif /* UTVM_RUNTIME_STATE_H_ */
