/* utvm-host device runtime: portable C for every target (host, rv32, rv64, Cortex-M).
 *
 * The host writes a batch of tasks into utvm_tasks[] and their count into the run record
 * (utvm_run), then starts the device at UTVMMain. Each task names a generated shim (one per
 * kernel signature: the compiler, not this file, does the calling convention), its argument
 * block and the slot for its return value. UTVMMain runs the tasks in order and ends in
 * UTVMDone, where the host stops the device (a debugger breakpoint on real targets; a plain
 * return on the host device). Struct layouts are read by the host from this file's DWARF: no
 * constant here is repeated in Python.
 *
 * The tables need not be volatile: the host reads and writes them only while the device is
 * stopped (or before it starts), calls through the task table are calls the compiler cannot
 * see into, and every store of a run is complete before the device reaches UTVMDone, whose
 * memory clobber the compiler cannot look through. (The few objects other C declares volatile
 * are volatile here too.)
 */
#include <stddef.h>
#include <stdint.h>

#include "utvm_runtime_state.h"

/* A generated shim: reads the kernel's arguments from their 8-byte slots, calls it, stores its
 * return value in the slot at ret (little-endian targets: a value starts the slot). */
typedef int32_t (*UTVMShim)(const uint64_t *args, uint64_t *ret);

typedef struct {
  UTVMShim func;         /* the shim to call (bit 0 set for Thumb code) */
  const uint64_t *args;  /* argument block: one 8-byte slot per argument */
  uint64_t *ret;         /* 8-byte slot receiving the return value */
  int32_t status;        /* what the shim returned: 0 unless it could not run the kernel */
  int32_t error;         /* utvm_error_set after the task: 0, 1 (an error), 2 (found by the runtime) */
} UTVMTask;

/* Read and written by the host through their ELF symbols. Declared here, not in the kernels'
 * header; the few that other C reads by name are volatile as it declares them (the firmware's
 * utvm_firmware.h, the integrity tests' kernels). */
extern UTVMTask utvm_tasks[UTVM_MAX_TASKS];
extern uint64_t utvm_counts[UTVM_MAX_REPEAT];
extern uint64_t utvm_task_counts[UTVM_MAX_TASKS];
/* The fields of utvm_state (below), by the names the host and other C use. */
extern volatile uint32_t utvm_run[2];
extern uintptr_t utvm_summary;
extern uint32_t utvm_tasks_done;
extern volatile uint32_t utvm_error_set;
extern uint32_t utvm_timing[2];
extern uint32_t utvm_profile;
extern uint64_t utvm_batch_count;
extern volatile uintptr_t utvm_workspace_base;
extern volatile uintptr_t utvm_workspace_size;
extern uintptr_t utvm_workspace_peak;
extern uintptr_t utvm_ws_bad;

UTVMTask utvm_tasks[UTVM_MAX_TASKS];
char utvm_last_error[UTVM_ERROR_LEN];
/* TVM FFI's error kind ("TypeError"), or "" */
/* cppcheck-suppress misra-c2012-8.7 ; deviation R6 */
char utvm_last_error_kind[UTVM_ERROR_KIND_LEN];
uint64_t utvm_counts[UTVM_MAX_REPEAT];
uint64_t utvm_task_counts[UTVM_MAX_TASKS];

/* The runtime's scalar state (utvm_runtime_state.h); the parts linked on demand reach it by name. */
UTVMState utvm_state;
/* A field's symbol: name = utvm_state + the field's offset (operand off), an object of the
 * field's size (operand size); UTVMDone holds the directives, once. */
#define UTVM_FIELD_SYMBOL(name, off, size)                                                         \
  ".globl " name "\n\t.type " name ", STT_OBJECT\n\t.set " name ", utvm_state + %c" off "\n\t.size " name \
  ", %c" size "\n\t"

/* Defined here for TVM's generated code, which declares them itself (c_backend_api.h). */
typedef struct {
  void *sync_handle;
  int32_t num_task;
} TVMParallelGroupEnv;
typedef int (*FTVMParallelLambda)(int task_id, TVMParallelGroupEnv *penv, void *cdata);
int TVMBackendParallelLaunch(FTVMParallelLambda flambda, void *cdata, int num_task);
int TVMBackendParallelBarrier(int task_id, TVMParallelGroupEnv *penv);

/* The device's shims (the host calls them like kernels: session.py's _FillKernel, ...). */
int32_t UTVMFillShim(const uint64_t *args, uint64_t *ret) __attribute__((noinline, used));
int32_t UTVMCrcShim(const uint64_t *args, uint64_t *ret) __attribute__((noinline, used));
int32_t UTVMEmptyShim(const uint64_t *args, uint64_t *ret) __attribute__((noinline, used));

/* Devices reached without a debugger (the serial stub, device_stubs/programs/serial/) have no breakpoint
 * at UTVMDone: they link this hook to get control back at the end of a call. */
void UTVMDoneHook(uintptr_t summary, uintptr_t ret_lo, uintptr_t ret_hi) __attribute__((weak));

/* TVM's parallel loops (te parallel schedules) run serially: one task of one. */
int TVMBackendParallelLaunch(FTVMParallelLambda flambda, void *cdata, int num_task) {
  TVMParallelGroupEnv env;
  (void)num_task;
  env.sync_handle = NULL;
  env.num_task = 1;
  return flambda(0, &env, cdata);
}

int TVMBackendParallelBarrier(int task_id, TVMParallelGroupEnv *penv) {
  (void)task_id;
  (void)penv;
  return 0;
}

/* ---- the C library subset kernels (and gcc) may call ------------------------------------ */

/* cppcheck-suppress misra-c2012-21.2 ; deviation R2 */
/* cppcheck-suppress misra-c2012-8.7 ; deviation R6 */
void *memmove(void *dst, const void *src, size_t n) {
  /* cppcheck-suppress misra-c2012-11.5 ; deviation R3 */
  unsigned char *d = dst;
  /* cppcheck-suppress misra-c2012-11.5 ; deviation R3 */
  const unsigned char *s = src;
  size_t i;
  /* Which way to copy: ISO C orders pointers only within one object, and these may be two. */
  /* cppcheck-suppress misra-c2012-11.4 ; deviation R7 */
  if ((uintptr_t)d < (uintptr_t)s) {
    for (i = 0u; i < n; i++) {
      d[i] = s[i];
    }
  } else {
    for (i = n; i > 0u; i--) {
      d[i - 1u] = s[i - 1u];
    }
  }
  return dst;
}

/* cppcheck-suppress misra-c2012-21.2 ; deviation R2 */
void *memcpy(void *dst, const void *src, size_t n) {
  return memmove(dst, src, n);
}

/* cppcheck-suppress misra-c2012-21.2 ; deviation R2 */
/* cppcheck-suppress misra-c2012-8.7 ; deviation R6 */
void *memset(void *dst, int c, size_t n) {
  /* cppcheck-suppress misra-c2012-11.5 ; deviation R3 */
  unsigned char *d = dst;
  size_t i;
  for (i = 0u; i < n; i++) {
    d[i] = (unsigned char)c;
  }
  return dst;
}

/* cppcheck-suppress misra-c2012-21.2 ; deviation R2 */
int memcmp(const void *a, const void *b, size_t n) {
  /* cppcheck-suppress misra-c2012-11.5 ; deviation R3 */
  const unsigned char *x = a;
  /* cppcheck-suppress misra-c2012-11.5 ; deviation R3 */
  const unsigned char *y = b;
  int out = 0;
  size_t i;
  for (i = 0u; (i < n) && (out == 0); i++) {
    out = (int)x[i] - (int)y[i];
  }
  return out;
}

/* ---- shims of the runtime's own ----------------------------------------------------------- */

/* Fill device memory on the device (no bytes cross the link): args = {dst, byte, n}. Used to
 * reset tensors between calls (e.g. tuning candidates). */
int32_t UTVMFillShim(const uint64_t *args, uint64_t *ret) {
  (void)ret;
  /* cppcheck-suppress misra-c2012-11.4 ; deviation R1 */
  (void)memset((void *)(uintptr_t)args[0], (int)(uint32_t)args[1], (size_t)(uint32_t)args[2]);
  return 0;
}

/* CRC-32 (zlib's) of n bytes at src, computed on the device: Session(verify=True) checks long
 * writes with it where reading them back over the link is slower. args = {src, n}. */
int32_t UTVMCrcShim(const uint64_t *args, uint64_t *ret) {
  /* cppcheck-suppress misra-c2012-11.4 ; deviation R1 */
  const unsigned char *src = (const unsigned char *)(uintptr_t)args[0];
  uint32_t n = (uint32_t)args[1];
  uint32_t crc = 0xFFFFFFFFu;
  uint32_t i;
  uint32_t bit;
  for (i = 0u; i < n; i++) {
    crc ^= src[i];
    for (bit = 0u; bit < 8u; bit++) {
      crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
  }
  crc = ~crc;
  *ret = crc;
  return 0;
}

/* A kernel that does nothing: timing it gives the loop's own overhead, which the host
 * subtracts from every measurement. */
int32_t UTVMEmptyShim(const uint64_t *args, uint64_t *ret) {
  (void)args;
  (void)ret;
  return 0;
}

/* ---- task loop -------------------------------------------------------------------------- */

/* The host stops here. Its arguments land in registers, which a debugger transport reads at
 * the stop instead of memory: summary = tasks done | (error flag << 16) ... (all ones when a
 * trap handler jumped here), then the first task's return slot as two 32-bit words. Where no
 * breakpoint stops the device at the first instruction (the host process; the serial stub,
 * whose hook takes over), the console is flushed here too: after a trap, only here. */
/* cppcheck-suppress misra-c2012-8.7 ; deviation R6 */
void UTVMDone(uintptr_t summary, uintptr_t ret_lo, uintptr_t ret_hi) {
  /* MISRA C:2012 1.2, deviation R8: GCC inline assembly: an empty asm keeps the arguments in registers for the debugger, and the field symbols are assembler directives */
  __asm__ volatile("" : : "r"(summary), "r"(ret_lo), "r"(ret_hi) : "memory");
  /* The symbols of utvm_state's fields (assembler directives only: no instruction). */
  __asm__(UTVM_FIELD_SYMBOL("utvm_batch_count", "0", "1") UTVM_FIELD_SYMBOL("utvm_run", "2", "3")
          UTVM_FIELD_SYMBOL("utvm_timing", "4", "5") UTVM_FIELD_SYMBOL("utvm_tasks_done", "6", "7")
          UTVM_FIELD_SYMBOL("utvm_error_set", "8", "9") UTVM_FIELD_SYMBOL("utvm_profile", "10", "11")
          UTVM_FIELD_SYMBOL("utvm_summary", "12", "13") UTVM_FIELD_SYMBOL("utvm_workspace_base", "14", "15")
          UTVM_FIELD_SYMBOL("utvm_workspace_size", "16", "17") UTVM_FIELD_SYMBOL("utvm_workspace_peak", "18", "19")
          UTVM_FIELD_SYMBOL("utvm_ws_bad", "20", "21")
          :
          : "i"(offsetof(UTVMState, batch_count)), "i"(sizeof(utvm_state.batch_count)),
            "i"(offsetof(UTVMState, run)), "i"(sizeof(utvm_state.run)),
            "i"(offsetof(UTVMState, timing)), "i"(sizeof(utvm_state.timing)),
            "i"(offsetof(UTVMState, tasks_done)), "i"(sizeof(utvm_state.tasks_done)),
            "i"(offsetof(UTVMState, error_set)), "i"(sizeof(utvm_state.error_set)),
            "i"(offsetof(UTVMState, profile)), "i"(sizeof(utvm_state.profile)),
            "i"(offsetof(UTVMState, summary)), "i"(sizeof(utvm_state.summary)),
            "i"(offsetof(UTVMState, workspace_base)), "i"(sizeof(utvm_state.workspace_base)),
            "i"(offsetof(UTVMState, workspace_size)), "i"(sizeof(utvm_state.workspace_size)),
            "i"(offsetof(UTVMState, workspace_peak)), "i"(sizeof(utvm_state.workspace_peak)),
            "i"(offsetof(UTVMState, ws_bad)), "i"(sizeof(utvm_state.ws_bad)));
  utvm_console_flush();
  if (UTVMDoneHook != NULL) {
    UTVMDoneHook(summary, ret_lo, ret_hi);
  }
}

void UTVMMain(void) {
  UTVMTask *t = utvm_tasks;
  uint64_t *count = utvm_task_counts;
  const uint64_t *last;
  uint32_t asked = utvm_state.run[0];
  uint32_t calls = 1u;     /* calls per round: the timing's number, else 1 */
  uint32_t timed = 0u;     /* 1: every round calls task 0 (time_evaluator) */
  uint64_t value = 0u;
  uint32_t seen;
  uintptr_t summary;
  utvm_console_begin(); /* an empty console line: what a faulted call left belongs to it */
  utvm_state.run[1] += 1u; /* this run's id: the host expects exactly this one */
  utvm_state.ws_first = NULL;    /* the workspace starts afresh when the run first uses it */
  utvm_state.after_task = NULL;
  utvm_state.workspace_peak = 0u;
  utvm_state.tasks_done = 0u;
  utvm_state.error_set = 0u; /* (the error text is written whenever it is set) */
  if (asked > (uint32_t)UTVM_MAX_TASKS) { /* not a count the host writes: run nothing, the summary tells */
    asked = 0u;
  }
  last = &utvm_task_counts[asked];
  if ((utvm_state.timing[0] != 0u) && (asked != 0u)) { /* timing: task 0, number x repeat times */
    calls = utvm_state.timing[0];
    timed = 1u;
    count = utvm_counts;
    last = &utvm_counts[(utvm_state.timing[1] > (uint32_t)UTVM_MAX_REPEAT) ? (uint32_t)UTVM_MAX_REPEAT : utvm_state.timing[1]];
  }
  utvm_state.batch_count = UTVMCounter();
  while ((count != last) && (utvm_state.error_set == 0u)) {
    uint32_t k = calls;
    *count = UTVMCounter();
    do {
      t->status = t->func(t->args, t->ret);
      k--;
    } while ((k != 0u) && (utvm_state.error_set == 0u));
    *count = UTVMCounter() - *count;
    if (utvm_state.after_task != NULL) { /* the run used the workspace: did this task write over a header? */
      utvm_state.after_task();
    }
    t->error = (int32_t)utvm_state.error_set; /* an error: the rest of the batch does not run */
    if (timed == 0u) {
      t = &t[1];
      utvm_state.tasks_done++;
    } else {
      utvm_state.tasks_done = 1u;
    }
    count = &count[1];
  }
  utvm_state.batch_count = UTVMCounter() - utvm_state.batch_count;
  if (asked != 0u) { /* the return slot, or the first measurement, rides in the return registers */
    value = ((timed != 0u) && (utvm_state.error_set == 0u)) ? utvm_counts[0] : *utvm_tasks[0].ret;
  }
  /* Echo the run record as it is now: a kernel that wrote over it (or over the task count) makes
   * the host refuse this run's result instead of trusting it. */
  seen = (utvm_state.run[0] > 126u) ? 127u : utvm_state.run[0];
  summary = (uintptr_t)(utvm_state.tasks_done | ((utvm_state.error_set != 0u) ? 0x10000u : 0u) | (seen << 17) |
                        ((utvm_state.run[1] & 0xFFu) << 24));
  utvm_state.summary = summary;
  utvm_console_flush(); /* what the kernels printed, before the host looks (it stops at UTVMDone) */
  UTVMDone(summary, (uintptr_t)(uint32_t)value, (uintptr_t)(uint32_t)(value >> 32));
}
