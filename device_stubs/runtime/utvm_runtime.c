/* utvm-host device runtime: portable C for every target (host, rv32, rv64, Cortex-M).
 *
 * The host writes a batch of tasks into utvm_tasks[] and utvm_num_tasks, then starts the
 * device at UTVMMain. Each task names a generated shim (one per kernel signature: the
 * compiler, not this file, does the calling convention), its argument block and the slot
 * for its return value. UTVMMain runs the tasks in order and ends in UTVMDone, where the
 * host stops the device (a debugger breakpoint on real targets; a plain return on the host
 * device). Struct layouts are read by the host from this file's DWARF: no constant here is
 * repeated in Python.
 */
#include <stddef.h>
#include <stdint.h>

#include "utvm_runtime.h"

typedef int32_t (*UTVMShim)(const void *args, void *ret);

typedef struct {
  uintptr_t func;   /* address of the shim to call (bit 0 set for Thumb code) */
  uintptr_t args;   /* argument block: one 8-byte slot per argument */
  uintptr_t ret;    /* 8-byte slot receiving the return value */
  int32_t status;   /* what the shim returned: 0 unless it could not run the kernel */
  int32_t error;    /* 1 when the kernel called TVMAPISetLastError during this task */
} UTVMTask;

#ifndef UTVM_MAX_TASKS
#define UTVM_MAX_TASKS 64
#endif
#define UTVM_ERROR_LEN 512
#define UTVM_ERROR_KIND_LEN 32
#define UTVM_WS_ALIGN 16

#if UTVM_MAX_TASKS > 126
#error "UTVM_MAX_TASKS must stay below 127: the completion summary echoes the task count in 7 bits"
#endif

volatile UTVMTask utvm_tasks[UTVM_MAX_TASKS];
/* The run record {tasks to run, run id}: the host writes it when the task count changes (and
 * after a restart); every run adds one to the run id first and echoes both in its completion
 * summary, so a stale or corrupted runtime state can never pass for this run's result, and an
 * unchanged call costs no write. */
volatile uint32_t utvm_run[2];
/* The completion summary of the last run, as UTVMDone receives it (hosts without a debugger
 * read it here): tasks done | error << 16 | tasks seen << 17 | (run id & 0xFF) << 24. */
volatile uintptr_t utvm_summary;
volatile uint32_t utvm_tasks_done;   /* tasks finished so far: tells the host which one faulted */
volatile uint32_t utvm_error_set;
char utvm_last_error[UTVM_ERROR_LEN];
char utvm_last_error_kind[UTVM_ERROR_KIND_LEN]; /* TVM FFI's error kind ("TypeError"), or "" */

/* Timing (time_evaluator): with utvm_number > 0, UTVMMain runs task 0 utvm_number times per
 * measurement, utvm_repeat measurements, and stores each one's counter difference. */
#define UTVM_MAX_REPEAT 64
volatile uint32_t utvm_timing[2]; /* number, repeat: one write sets both */
volatile uint64_t utvm_counts[UTVM_MAX_REPEAT];
/* Profiling (graph executors): with utvm_profile set, each task's counter difference. */
volatile uint32_t utvm_profile;
volatile uint64_t utvm_task_counts[UTVM_MAX_TASKS];
volatile uint64_t utvm_batch_count; /* the whole task loop, overhead between tasks included */

/* The device's counter: cycles, retired instructions or nanoseconds, per target (a strong
 * definition in device_stubs/<arch>/ replaces this one, which counts nothing). */
uint64_t UTVMCounter(void) __attribute__((weak));
uint64_t UTVMCounter(void) { return 0; }

/* The session writes where the workspace region lies before the first call. */
volatile uintptr_t utvm_workspace_base;
volatile uintptr_t utvm_workspace_size;
volatile uintptr_t utvm_workspace_peak;   /* high-water mark in bytes, for the memory map */

void UTVMDone(uintptr_t summary, uintptr_t ret_lo, uintptr_t ret_hi) __attribute__((noinline, used));
void UTVMMain(void) __attribute__((noinline, used));

/* ---- errors ---------------------------------------------------------------------------- */

/* Append msg to utvm_last_error from position at; returns the new end. Text that does not
 * fit ends in "..." so a truncated message is recognisable. */
static size_t error_append(size_t at, const char *msg) {
  for (; msg != NULL && *msg != '\0'; msg++) {
    if (at + 1 >= UTVM_ERROR_LEN) {
      utvm_last_error[UTVM_ERROR_LEN - 4] = utvm_last_error[UTVM_ERROR_LEN - 3] = utvm_last_error[UTVM_ERROR_LEN - 2] = '.';
      break;
    }
    utvm_last_error[at++] = *msg;
  }
  utvm_last_error[at] = '\0';
  return at;
}

static void error_kind(const char *kind) {
  size_t i = 0;
  for (; kind != NULL && i + 1 < UTVM_ERROR_KIND_LEN && kind[i] != '\0'; i++) utvm_last_error_kind[i] = kind[i];
  utvm_last_error_kind[i] = '\0';
  utvm_error_set = 1;
}

void TVMAPISetLastError(const char *msg) {
  error_append(0, msg);
  error_kind("");
}

/* TVM FFI (apache-tvm >= 0.20): generated checks report "kind" plus a message in parts. */
void TVMFFIErrorSetRaisedFromCStrParts(const char *kind, const char **parts, int32_t num_parts) {
  size_t at = 0;
  int32_t i;
  for (i = 0; i < num_parts; i++) at = error_append(at, parts[i]);
  if (num_parts <= 0) error_append(0, "");
  error_kind(kind);
}

void TVMFFIErrorSetRaisedFromCStr(const char *kind, const char *message) {
  error_append(0, message);
  error_kind(kind);
}

/* TVM's parallel loops (te parallel schedules) run serially: one task of one. */
typedef struct {
  void *sync_handle;
  int32_t num_task;
} TVMParallelGroupEnv;
typedef int (*FTVMParallelLambda)(int task_id, TVMParallelGroupEnv *penv, void *cdata);

int TVMBackendParallelLaunch(FTVMParallelLambda flambda, void *cdata, int num_task) {
  TVMParallelGroupEnv env;
  (void)num_task;
  env.sync_handle = NULL;
  env.num_task = 1;
  return flambda(0, &env, cdata);
}

int TVMBackendParallelBarrier(int task_id, TVMParallelGroupEnv *penv) {
  (void)task_id; (void)penv;
  return 0;
}

/* ---- workspace: first fit over an implicit list of blocks, coalescing on free ---------- */

typedef struct {
  uintptr_t size;   /* bytes of this block including the header */
  uintptr_t used;
} UTVMBlock;

#define UTVM_HDR ((sizeof(UTVMBlock) + UTVM_WS_ALIGN - 1) & ~(uintptr_t)(UTVM_WS_ALIGN - 1))

static uintptr_t ws_begin(void) {
  return (utvm_workspace_base + UTVM_WS_ALIGN - 1) & ~(uintptr_t)(UTVM_WS_ALIGN - 1);
}

static uintptr_t ws_end(void) {
  return (utvm_workspace_base + utvm_workspace_size) & ~(uintptr_t)(UTVM_WS_ALIGN - 1);
}

static void ws_reset(void) {
  uintptr_t begin = ws_begin(), end = ws_end();
  utvm_workspace_peak = 0;
  if (end > begin + UTVM_HDR) {
    UTVMBlock *b = (UTVMBlock *)begin;
    b->size = end - begin;
    b->used = 0;
  }
}

void *TVMBackendAllocWorkspace(int device_type, int device_id, uint64_t nbytes, int dtype_code_hint,
                               int dtype_bits_hint) {
  uintptr_t at, end = ws_end();
  uintptr_t need;
  (void)device_type; (void)device_id; (void)dtype_code_hint; (void)dtype_bits_hint;
  if (nbytes > (uint64_t)(end - ws_begin())) {
    TVMAPISetLastError("TVMBackendAllocWorkspace: request larger than the workspace region");
    return NULL;
  }
  need = UTVM_HDR + (((uintptr_t)nbytes + UTVM_WS_ALIGN - 1) & ~(uintptr_t)(UTVM_WS_ALIGN - 1));
  for (at = ws_begin(); at + UTVM_HDR <= end;) {
    UTVMBlock *b = (UTVMBlock *)at;
    if (b->size == 0) break; /* corrupted: refuse rather than loop forever */
    if (!b->used && b->size >= need) {
      if (b->size - need >= UTVM_HDR + UTVM_WS_ALIGN) { /* split */
        UTVMBlock *rest = (UTVMBlock *)(at + need);
        rest->size = b->size - need;
        rest->used = 0;
        b->size = need;
      }
      b->used = 1;
      if (at + b->size - ws_begin() > utvm_workspace_peak) utvm_workspace_peak = at + b->size - ws_begin();
      return (void *)(at + UTVM_HDR);
    }
    at += b->size;
  }
  TVMAPISetLastError("TVMBackendAllocWorkspace: out of workspace memory");
  return NULL;
}

int TVMBackendFreeWorkspace(int device_type, int device_id, void *ptr) {
  uintptr_t at, prev = 0, target = (uintptr_t)ptr - UTVM_HDR, end = ws_end();
  (void)device_type; (void)device_id;
  for (at = ws_begin(); at + UTVM_HDR <= end && ((UTVMBlock *)at)->size != 0; at += ((UTVMBlock *)at)->size) {
    if (at == target) {
      UTVMBlock *b = (UTVMBlock *)at;
      uintptr_t next = at + b->size;
      if (!b->used) break;
      b->used = 0;
      if (next + UTVM_HDR <= end && !((UTVMBlock *)next)->used) b->size += ((UTVMBlock *)next)->size;
      if (prev != 0 && !((UTVMBlock *)prev)->used) ((UTVMBlock *)prev)->size += b->size;
      return 0;
    }
    prev = at;
  }
  TVMAPISetLastError("TVMBackendFreeWorkspace: pointer was not allocated from the workspace");
  return -1;
}

/* ---- the C library subset kernels (and gcc) may call ------------------------------------ */

void *memcpy(void *dst, const void *src, size_t n) {
  unsigned char *d = (unsigned char *)dst;
  const unsigned char *s = (const unsigned char *)src;
  while (n--) *d++ = *s++;
  return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
  unsigned char *d = (unsigned char *)dst;
  const unsigned char *s = (const unsigned char *)src;
  if (d < s) {
    while (n--) *d++ = *s++;
  } else if (d > s) {
    while (n--) d[n] = s[n];
  }
  return dst;
}

void *memset(void *dst, int c, size_t n) {
  unsigned char *d = (unsigned char *)dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}

int memcmp(const void *a, const void *b, size_t n) {
  const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
  for (; n; n--, x++, y++) {
    if (*x != *y) return *x < *y ? -1 : 1;
  }
  return 0;
}

/* ---- task loop -------------------------------------------------------------------------- */

/* Fill device memory on the device (no bytes cross the link): args = {dst, byte, n} in the
 * session's 8-byte slots. Used to reset tensors between calls (e.g. tuning candidates). */
int32_t UTVMFillShim(const void *args, void *ret) __attribute__((noinline, used));
int32_t UTVMFillShim(const void *args, void *ret) {
  const unsigned char *a = (const unsigned char *)args;
  void *dst = *(void *const *)(a + 0);
  int32_t byte = *(const int32_t *)(a + 8);
  uint32_t n = *(const uint32_t *)(a + 16);
  (void)ret;
  memset(dst, byte, n);
  return 0;
}

/* CRC-32 (zlib's) of n bytes at src, computed on the device: Session(verify=True) checks long
 * writes with it where reading them back over the link is slower. args = {src, n}. */
int32_t UTVMCrcShim(const void *args, void *ret) __attribute__((noinline, used));
int32_t UTVMCrcShim(const void *args, void *ret) {
  static const uint32_t nibble[16] = {0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
                                      0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
                                      0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};
  const unsigned char *a = (const unsigned char *)args;
  const unsigned char *src = *(const unsigned char *const *)(a + 0);
  uint32_t n = *(const uint32_t *)(a + 8);
  uint32_t crc = 0xFFFFFFFFu;
  while (n--) {
    crc ^= *src++;
    crc = (crc >> 4) ^ nibble[crc & 15u];
    crc = (crc >> 4) ^ nibble[crc & 15u];
  }
  *(uint32_t *)ret = ~crc;
  ((uint32_t *)ret)[1] = 0;
  return 0;
}

/* A kernel that does nothing: timing it gives the loop's own overhead, which the host
 * subtracts from every measurement. */
int32_t UTVMEmptyShim(const void *args, void *ret) __attribute__((noinline, used));
int32_t UTVMEmptyShim(const void *args, void *ret) {
  __asm__ volatile("" : : "r"(args), "r"(ret) : "memory");
  return 0;
}

/* The host stops here. Its arguments land in registers, which a debugger transport reads at
 * the stop instead of memory: summary = tasks done | (error flag << 16) (all ones when a trap
 * handler jumped here), then the first task's return slot as two 32-bit words. */
/* Devices reached without a debugger (the serial stub, device_stubs/serial/) have no breakpoint
 * here: they link this hook to get control back at the end of a call. */
void UTVMDoneHook(uintptr_t summary, uintptr_t ret_lo, uintptr_t ret_hi) __attribute__((weak));

void UTVMDone(uintptr_t summary, uintptr_t ret_lo, uintptr_t ret_hi) {
  __asm__ volatile("" : : "r"(summary), "r"(ret_lo), "r"(ret_hi) : "memory");
  if (UTVMDoneHook) UTVMDoneHook(summary, ret_lo, ret_hi);
}

void UTVMMain(void) {
  uint32_t i, n = utvm_run[0], asked, run_id, seen, any_error = 0, timed = 0;
  uintptr_t ret_lo = 0, ret_hi = 0, summary;
  utvm_run[1] = utvm_run[1] + 1u; /* this run's id: the host expects exactly this one */
  ws_reset();
  utvm_tasks_done = 0;
  utvm_error_set = 0;
  utvm_last_error[0] = '\0';
  utvm_last_error_kind[0] = '\0';
  if (n > UTVM_MAX_TASKS) n = 0; /* not a count the host writes: run nothing, the summary tells */
  asked = n;                     /* n is zeroed below once a timed run has done the work */
  if (utvm_timing[0] > 0 && n > 0) { /* timing: task 0, number x repeat times */
    volatile UTVMTask *t = &utvm_tasks[0];
    UTVMShim shim = (UTVMShim)t->func;
    uint32_t r, k, number = utvm_timing[0];
    uint32_t repeat = utvm_timing[1] > UTVM_MAX_REPEAT ? UTVM_MAX_REPEAT : utvm_timing[1];
    timed = 1;
    utvm_error_set = 0;
    for (r = 0; r < repeat && !utvm_error_set; r++) {
      uint64_t start = UTVMCounter();
      for (k = 0; k < number && !utvm_error_set; k++) t->status = shim((const void *)t->args, (void *)t->ret);
      utvm_counts[r] = UTVMCounter() - start;
    }
    t->error = (int32_t)utvm_error_set;
    any_error = utvm_error_set ? 1u : 0u;
    utvm_tasks_done = 1;
    n = 0; /* the loop below has nothing left to do */
  }
  uint64_t batch_start = utvm_profile ? UTVMCounter() : 0;
  for (i = 0; i < n; i++) {
    volatile UTVMTask *t = &utvm_tasks[i];
    UTVMShim shim = (UTVMShim)t->func;
    uint64_t start = utvm_profile ? UTVMCounter() : 0;
    utvm_error_set = 0;
    t->status = shim((const void *)t->args, (void *)t->ret);
    if (utvm_profile) utvm_task_counts[i] = UTVMCounter() - start;
    t->error = (int32_t)utvm_error_set;
    utvm_tasks_done = i + 1;
    if (t->error) { /* a kernel reported an error: the rest of the batch does not run */
      any_error = 1;
      break;
    }
  }
  if (utvm_profile) utvm_batch_count = UTVMCounter() - batch_start;
  utvm_console_flush(); /* what the kernels printed, before the host looks */
  if (timed && !any_error) { /* the first measurement rides in the return registers */
    ret_lo = (uintptr_t)(uint32_t)utvm_counts[0];
    ret_hi = (uintptr_t)(uint32_t)(utvm_counts[0] >> 32);
  } else if (asked > 0) {
    volatile uint32_t *ret = (volatile uint32_t *)utvm_tasks[0].ret;
    ret_lo = ret[0];
    ret_hi = ret[1];
  }
  /* Echo the run record as it is now: a kernel that wrote over it (or over the task count) makes
   * the host refuse this run's result instead of trusting it. */
  seen = utvm_run[0] > 126u ? 127u : utvm_run[0];
  run_id = utvm_run[1];
  summary = (uintptr_t)(utvm_tasks_done | (any_error << 16) | (seen << 17) | ((run_id & 0xFFu) << 24));
  utvm_summary = summary;
  UTVMDone(summary, ret_lo, ret_hi);
}
