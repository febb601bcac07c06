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
extern char utvm_last_error[UTVM_ERROR_LEN];
extern char utvm_last_error_kind[UTVM_ERROR_KIND_LEN];
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

/* A workspace block's header (the workspace, below). */
typedef struct {
  uint32_t word;    /* units of this block (the header included) << 1 | 1 while allocated */
  uint32_t check;   /* UTVM_WS_MAGIC ^ word ^ index: anything else was written over */
  uint32_t spare[2];
} UTVMBlock;

/* The runtime's scalar state, one object: the code reaches every field from one base address
 * (an offset in the instruction) instead of forming each symbol's address (8 bytes a use on
 * RISC-V). Each field the host uses still has a symbol of its own, of its type's size: an alias
 * at the field's offset, defined in UTVMDone (UTVM_FIELD_SYMBOL). */
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
  uint32_t ws_count;     /* the workspace's units (the runtime's own: no symbol) */
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
} UTVMState;
static UTVMState utvm_state __attribute__((used));
/* A field's symbol: name = utvm_state + the field's offset (operand off), an object of the
 * field's size (operand size); UTVMDone holds the directives, once. */
#define UTVM_FIELD_SYMBOL(name, off, size)                                                         \
  ".globl " name "\n\t.type " name ", STT_OBJECT\n\t.set " name ", utvm_state + %c" off "\n\t.size " name \
  ", %c" size "\n\t"
#define UTVM_ERROR_BY_RUNTIME 2u

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

/* Devices reached without a debugger (the serial stub, device_stubs/serial/) have no breakpoint
 * at UTVMDone: they link this hook to get control back at the end of a call. */
void UTVMDoneHook(uintptr_t summary, uintptr_t ret_lo, uintptr_t ret_hi) __attribute__((weak));

/* ---- errors ---------------------------------------------------------------------------- */

/* Append src to the text buffer buf of cap bytes from position at; returns the new end. Text
 * that does not fit ends in "..." so a cut message is recognisable. */
static size_t __attribute__((noinline)) text_append(char *buf, size_t cap, size_t at, const char *src) {
  size_t end = at;
  size_t i = 0u;
  if (src != NULL) {
    while ((src[i] != '\0') && (end < (cap - 1u))) {
      buf[end] = src[i];
      end++;
      i++;
    }
    if (src[i] != '\0') {
      buf[cap - 4u] = '.';
      buf[cap - 3u] = '.';
      buf[cap - 2u] = '.';
    }
  }
  buf[end] = '\0';
  return end;
}

/* TVM FFI (apache-tvm >= 0.20): generated checks report "kind" plus a message in parts. */
/* cppcheck-suppress misra-c2012-8.7 ; deviation R6 */
void TVMFFIErrorSetRaisedFromCStrParts(const char *kind, const char **parts, int32_t num_parts) {
  size_t at = 0u;
  int32_t i;
  utvm_last_error[0] = '\0';
  for (i = 0; i < num_parts; i++) {
    at = text_append(utvm_last_error, UTVM_ERROR_LEN, at, parts[i]);
  }
  (void)text_append(utvm_last_error_kind, UTVM_ERROR_KIND_LEN, 0u, kind);
  utvm_state.error_set = 1u;
}

void TVMFFIErrorSetRaisedFromCStr(const char *kind, const char *message) {
  const char *parts[1];
  parts[0] = message;
  TVMFFIErrorSetRaisedFromCStrParts(kind, parts, 1);
}

void TVMAPISetLastError(const char *msg) {
  TVMFFIErrorSetRaisedFromCStr(NULL, msg);
}

/* The runtime's own errors: a code (UTVM_RUNTIME_ERROR and a digit, utvm_runtime.h), whose text
 * the host prints. */
static void runtime_error(const char *code) {
  TVMFFIErrorSetRaisedFromCStr(NULL, code);
}

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
    if (utvm_state.ws_first != NULL) { /* the run used the workspace: did this task write over a header? */
      (void)ws_walk(NULL, UTVM_WS_NONE);
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
