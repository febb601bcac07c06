/* Unit tests of the device runtime (device_stubs/runtime/utvm_runtime.c), built for this machine
 * with AddressSanitizer and UndefinedBehaviorSanitizer (tests/device_c/checks.py unit runtime).
 *
 * The runtime is #included, so its static functions and the task loop run here with fake
 * shims, a fake counter and a console that only counts calls. Its memcpy/memset/memmove/memcmp
 * are renamed so the C library's (which ASan intercepts) stay intact. The workspace is an array
 * of this program: ASan reports any byte the allocator touches outside it.
 */
#include "../runtime_under_test.h"

/* ---- what the ports provide ------------------------------------------------------------- */

static uint64_t fake_clock;        /* UTVMCounter: +7 per read, so every difference is visible */
static int console_begins, console_flushes;
static int hook_calls;
static uintptr_t hook_args[3];

uint64_t UTVMCounter(void) {
  fake_clock += 7u;
  return fake_clock;
}

void utvm_console_begin(void) { console_begins++; }
void utvm_console_flush(void) { console_flushes++; }

void UTVMDoneHook(uintptr_t summary, uintptr_t ret_lo, uintptr_t ret_hi) {
  hook_calls++;
  hook_args[0] = summary;
  hook_args[1] = ret_lo;
  hook_args[2] = ret_hi;
}

/* ---- checks ------------------------------------------------------------------------------ */

static int failures;

#define CHECK(cond)                                                                              \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      printf("%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                            \
      failures++;                                                                                \
    }                                                                                            \
  } while (0)

#define CHECK_TEXT(have, want)                                                                   \
  do {                                                                                           \
    if (strcmp((have), (want)) != 0) {                                                           \
      printf("%s:%d: text %s is \"%s\", not \"%s\"\n", __FILE__, __LINE__, #have, (have), (want)); \
      failures++;                                                                                \
    }                                                                                            \
  } while (0)

static int has_text(const char *have, const char *part) { return strstr(have, part) != NULL; }

/* ---- the workspace: an array of this program ---------------------------------------------- */

#define WS_BYTES 1024u
static unsigned char ws_area[WS_BYTES] __attribute__((aligned(16)));

/* A new run (UTVMMain with no tasks) over `size` bytes of workspace at ws_area + `offset`. */
static void new_run(size_t offset, size_t size) {
  utvm_workspace_base = (uintptr_t)(ws_area + offset);
  utvm_workspace_size = size;
  utvm_timing[0] = 0u;
  utvm_run[0] = 0u;
  UTVMMain();
  utvm_error_set = 0u;
  utvm_last_error[0] = '\0';
}

static void *ws_alloc(uint64_t n) { return TVMBackendAllocWorkspace(1, 0, n, 0, 8); }
static int ws_free(void *p) { return TVMBackendFreeWorkspace(1, 0, p); }

static int in_workspace(const void *p, size_t n) {
  uintptr_t a = (uintptr_t)p, lo = utvm_workspace_base, hi = utvm_workspace_base + utvm_workspace_size;
  return a >= lo && a + n <= hi;
}

static void clear_error(void) {
  utvm_error_set = 0u;
  utvm_last_error[0] = '\0';
}

static void test_alloc_free_patterns(void) {
  unsigned char *a, *b, *c, *d, *e;
  new_run(0, WS_BYTES);
  a = ws_alloc(100);
  b = ws_alloc(1);
  c = ws_alloc(64);
  CHECK(a != NULL && b != NULL && c != NULL);
  CHECK(((uintptr_t)a & 15u) == 0u && ((uintptr_t)b & 15u) == 0u && ((uintptr_t)c & 15u) == 0u);
  CHECK(in_workspace(a, 100) && in_workspace(b, 1) && in_workspace(c, 64));
  CHECK(a + 112 <= b - 16 + 16 && b + 16 <= c);        /* header + data, in order, no overlap */
  memset(a, 0xA1, 100);
  memset(b, 0xB2, 1);
  memset(c, 0xC3, 64);
  CHECK(ws_free(b) == 0);
  d = ws_alloc(16);                                     /* first fit: b's block again */
  CHECK(d == b);
  CHECK(a[99] == 0xA1 && c[0] == 0xC3 && c[63] == 0xC3); /* neighbours untouched */
  CHECK(ws_free(d) == 0 && ws_free(a) == 0 && ws_free(c) == 0);
  CHECK(utvm_error_set == 0u);
  /* everything coalesced again: the largest block there can be fits */
  e = ws_alloc(WS_BYTES - 16u);
  CHECK(e == a);
  CHECK(ws_free(e) == 0);
  CHECK(utvm_workspace_peak == WS_BYTES);
  /* zero bytes: a valid, distinct pointer */
  a = ws_alloc(0);
  b = ws_alloc(0);
  CHECK(a != NULL && b != NULL && a != b);
  CHECK(ws_free(a) == 0 && ws_free(b) == 0);
  CHECK(utvm_error_set == 0u);
}

static void test_coalescing_in_every_order(void) {
  static const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
  int k;
  for (k = 0; k < 6; k++) {
    void *p[4];
    int i;
    new_run(0, WS_BYTES);
    for (i = 0; i < 3; i++) p[i] = ws_alloc(200);
    p[3] = ws_alloc(300);   /* the rest stays allocated: no coalescing with the free tail */
    for (i = 0; i < 4; i++) CHECK(p[i] != NULL);
    for (i = 0; i < 3; i++) CHECK(ws_free(p[orders[k][i]]) == 0);
    /* the three blocks (3 x (16 + 208) bytes) are one again: 656 bytes of data fit in them */
    p[0] = ws_alloc(3u * 224u - 16u);
    CHECK(p[0] != NULL && in_workspace(p[0], 3u * 224u - 16u) && (unsigned char *)p[0] < (unsigned char *)p[3]);
    CHECK(utvm_error_set == 0u);
  }
}

static void test_exhaustion(void) {
  void *a, *b;
  new_run(0, WS_BYTES);
  CHECK(ws_alloc(WS_BYTES + 1u) == NULL);
  CHECK_TEXT(said(utvm_last_error), "TVMBackendAllocWorkspace: request larger than the workspace region");
  CHECK(utvm_error_set == 1u && utvm_last_error_kind[0] == '\0');
  clear_error();
  CHECK(ws_alloc((uint64_t)1 << 40) == NULL);             /* more than 32 bits: no wrap-around */
  CHECK(has_text(said(utvm_last_error), "request larger than the workspace region"));
  clear_error();
  CHECK(ws_alloc(0xFFFFFFF8u) == NULL);                     /* nor in rounding up to 16 bytes */
  CHECK(has_text(said(utvm_last_error), "request larger than the workspace region"));
  clear_error();
  CHECK(ws_alloc(((uint64_t)1 << 32) + 16u) == NULL && has_text(said(utvm_last_error), "request larger"));
  clear_error();
  a = ws_alloc(600);
  b = ws_alloc(600);
  CHECK(a != NULL && b == NULL);
  CHECK_TEXT(said(utvm_last_error), "TVMBackendAllocWorkspace: out of workspace memory");
  CHECK_TEXT(utvm_last_error, UTVM_RUNTIME_ERROR "2"); /* as the device stores it: a code */
  clear_error();
  CHECK(ws_alloc(WS_BYTES - 16u - 608u - 16u) != NULL);   /* exactly what is left */
  CHECK(ws_alloc(0) == NULL);                              /* not even a header */
  CHECK(has_text(said(utvm_last_error), "out of workspace memory"));
  /* a new run frees everything */
  new_run(0, WS_BYTES);
  CHECK(ws_alloc(WS_BYTES - 16u) != NULL && utvm_error_set == 0u);
  /* no workspace at all */
  new_run(0, 0);
  CHECK(ws_alloc(1) == NULL && has_text(said(utvm_last_error), "request larger"));
  clear_error();
  CHECK(ws_alloc(0) == NULL && has_text(said(utvm_last_error), "out of workspace memory"));
}

static void test_null_and_foreign_frees(void) {
  unsigned char *a;
  int outside;
  new_run(0, WS_BYTES);
  CHECK(ws_free(NULL) == 0 && utvm_error_set == 0u && utvm_last_error[0] == '\0');
  a = ws_alloc(64);
  CHECK(ws_free(a + 16) == -1);                            /* inside a block, not its start */
  CHECK_TEXT(said(utvm_last_error), "TVMBackendFreeWorkspace: pointer was not allocated from the workspace");
  clear_error();
  CHECK(ws_free(&outside) == -1 && has_text(said(utvm_last_error), "not allocated"));
  clear_error();
  CHECK(ws_free(a) == 0);
  CHECK(ws_free(a) == -1 && has_text(said(utvm_last_error), "not allocated"));   /* a second free */
  clear_error();
  CHECK(ws_free(NULL) == 0 && utvm_error_set == 0u);
  /* the workspace is still sound */
  CHECK(ws_alloc(WS_BYTES - 16u) == a && utvm_error_set == 0u);
  /* a free before any allocation in this run */
  new_run(0, WS_BYTES);
  CHECK(ws_free(a) == -1 && has_text(said(utvm_last_error), "not allocated"));
}

/* The error text names a header's address as 0x and 2 * sizeof(uintptr_t) hex digits. */
static int names_header(const char *text, const void *header) {
  char want[64];
  snprintf(want, sizeof want, "header at 0x%0*jx", (int)(2u * sizeof(uintptr_t)), (uintmax_t)(uintptr_t)header);
  return has_text(text, "the workspace is corrupted: a kernel wrote past its buffer over the block ") &&
         has_text(text, want);
}

/* A kernel runs 16 bytes past its buffer: over the next block's header (a live one, or the
 * free rest of the region), with several kinds of bytes. Every later use of the workspace must
 * report it, and never hand out a live block twice or write outside the region. */
static void test_overrun_is_reported(void) {
  static const unsigned char patterns[5][16] = {
      {0},                                                   /* zeros */
      {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
      {0x30, 0, 0, 0, 0, 0, 0, 0},                           /* a plausible free 48-byte block */
      {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x80, 0x3F},       /* floats 1.0 */
      {0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41},
  };
  int k, live;
  for (live = 0; live < 2; live++) {
    for (k = 0; k < 5; k++) {
      unsigned char *a, *b, *c;
      new_run(0, WS_BYTES);
      a = ws_alloc(64);
      b = live ? ws_alloc(64) : NULL;                      /* the header after a: b's, or the free rest's */
      memcpy(a + 64, patterns[k], 16);                     /* the overrun */
      c = ws_alloc(32);
      CHECK(c == NULL);
      CHECK(names_header(said(utvm_last_error), a + 64));
      CHECK(utvm_error_set == UTVM_ERROR_BY_RUNTIME);   /* the task fails, whatever it returns */
      clear_error();
      /* freeing reports it too, and never merges over the bad header */
      CHECK(ws_free(a) == -1 && names_header(said(utvm_last_error), a + 64));
      clear_error();
      if (b != NULL) {
        CHECK(ws_free(b) == -1 && names_header(said(utvm_last_error), a + 64));
        clear_error();
      }
      /* the next run starts afresh */
      new_run(0, WS_BYTES);
      CHECK(ws_alloc(64) == a && utvm_error_set == 0u);
    }
  }
}

/* Headers that are valid somewhere else, or nearly valid, are still caught. */
static void test_forged_headers_are_reported(void) {
  UTVMBlock saved;
  unsigned char *a, *b, *c;
  UTVMBlock *hb;
  /* a copy of a valid header moved to another place */
  new_run(0, WS_BYTES);
  a = ws_alloc(64);
  b = ws_alloc(64);
  c = ws_alloc(64);
  memcpy(&saved, c - 16, sizeof saved);                    /* c's header, valid where it is */
  memcpy(b - 16, &saved, sizeof saved);                    /* written over b's */
  CHECK(ws_free(a) == -1 && names_header(said(utvm_last_error), b - 16));
  /* b's header with its used flag cleared (as a kernel that "freed" it by hand) */
  new_run(0, WS_BYTES);
  a = ws_alloc(64);
  b = ws_alloc(64);
  hb = (UTVMBlock *)(void *)(b - 16);
  hb->word &= ~1u;
  CHECK(ws_alloc(64) == NULL && names_header(said(utvm_last_error), b - 16));
  /* a header whose check matches but whose size runs past the end of the region */
  new_run(0, WS_BYTES);
  a = ws_alloc(64);
  b = ws_alloc(64);
  hb = (UTVMBlock *)(void *)(b - 16);
  hb->word = (WS_BYTES / 16u) << 1 | 1u;                   /* (b is not at the start) */
  hb->check = UTVM_WS_MAGIC ^ hb->word ^ 5u;               /* b's header is unit 5 */
  CHECK(ws_alloc(16) == NULL && names_header(said(utvm_last_error), b - 16));
  /* ... and one of size 0 (a walk that would never end) */
  new_run(0, WS_BYTES);
  a = ws_alloc(64);
  b = ws_alloc(64);
  hb = (UTVMBlock *)(void *)(b - 16);
  hb->word = 0u;
  hb->check = UTVM_WS_MAGIC ^ 5u;
  CHECK(ws_free(a) == -1 && names_header(said(utvm_last_error), b - 16));
  /* the spare words of a header are not part of it: writing them is harmless */
  new_run(0, WS_BYTES);
  a = ws_alloc(64);
  b = ws_alloc(64);
  memset(b - 8, 0x5A, 8);
  CHECK(ws_free(a) == 0 && ws_free(b) == 0 && utvm_error_set == 0u);
}

/* Before the fix, a 16-byte workspace had no header written and the allocator trusted whatever
 * was there: here the free 64-byte block an earlier run left, which it split, writing a header
 * 16 bytes past the region's end. */
static void test_sixteen_byte_workspace(void) {
  void *p;
  size_t i;
  int outside_untouched = 1;
  new_run(0, 64);
  p = ws_alloc(16);
  CHECK(p != NULL && ws_free(p) == 0);    /* leaves a free 64-byte block's header in ws_area */
  memset(ws_area + 16, 0xEE, 64);
  new_run(0, 16);
  p = ws_alloc(16);
  CHECK(p == NULL && has_text(said(utvm_last_error), "request larger") == 0 &&
        has_text(said(utvm_last_error), "out of workspace memory"));
  for (i = 16; i < 80; i++) outside_untouched &= ws_area[i] == 0xEE;
  CHECK(outside_untouched);
  clear_error();
  p = ws_alloc(0);                        /* a header only: fits exactly, at the region's end */
  CHECK(p == ws_area + 16 && utvm_error_set == 0u);
  CHECK(ws_free(p) == 0 && utvm_error_set == 0u);
  /* fewer than 16 bytes once aligned: no block at all */
  new_run(8, 20);
  CHECK(ws_alloc(0) == NULL && has_text(said(utvm_last_error), "out of workspace memory"));
  /* an unaligned region: blocks start at the next 16-byte boundary, end before the last one */
  new_run(3, 200);
  p = ws_alloc(150);
  CHECK(p == ws_area + 32);
  CHECK(ws_alloc(1) == NULL);
}

/* ---- errors -------------------------------------------------------------------------------- */

static void test_error_text(void) {
  char longer[2 * UTVM_ERROR_LEN];
  const char *parts[3];
  size_t n;
  memset(longer, 'x', sizeof longer - 1);
  longer[sizeof longer - 1] = '\0';
  TVMAPISetLastError("short");
  CHECK_TEXT(said(utvm_last_error), "short");
  CHECK(utvm_error_set == 1u && utvm_last_error_kind[0] == '\0');
  TVMAPISetLastError(longer);                              /* cut, and the cut is marked */
  n = strlen(utvm_last_error);
  CHECK(n == UTVM_ERROR_LEN - 1u);
  CHECK(strcmp(utvm_last_error + n - 3, "...") == 0 && utvm_last_error[n - 4] == 'x');
  TVMAPISetLastError(NULL);
  CHECK_TEXT(said(utvm_last_error), "");
  /* exactly as long as fits: not cut */
  longer[UTVM_ERROR_LEN - 1] = '\0';
  TVMAPISetLastError(longer);
  CHECK(strlen(utvm_last_error) == UTVM_ERROR_LEN - 1u && utvm_last_error[UTVM_ERROR_LEN - 2] == 'x');
  /* TVM FFI: a kind and a message in parts */
  parts[0] = "Expect arg[0] to be ";
  parts[1] = "int";
  parts[2] = NULL;
  TVMFFIErrorSetRaisedFromCStrParts("TypeError", parts, 3);
  CHECK_TEXT(said(utvm_last_error), "Expect arg[0] to be int");
  CHECK_TEXT(utvm_last_error_kind, "TypeError");
  TVMFFIErrorSetRaisedFromCStrParts("ValueError", parts, 0);
  CHECK_TEXT(said(utvm_last_error), "");
  CHECK_TEXT(utvm_last_error_kind, "ValueError");
  parts[0] = longer;
  parts[1] = "tail";
  TVMFFIErrorSetRaisedFromCStrParts("X", parts, 2);        /* cut in the first part */
  CHECK(strlen(utvm_last_error) == UTVM_ERROR_LEN - 1u && strstr(said(utvm_last_error), "tail") == NULL);
  TVMFFIErrorSetRaisedFromCStr("AVeryLongErrorKindThatDoesNotFitIn32", "m");
  CHECK(strlen(utvm_last_error_kind) == UTVM_ERROR_KIND_LEN - 1u);
  CHECK_TEXT(said(utvm_last_error), "m");
  TVMFFIErrorSetRaisedFromCStr(NULL, NULL);
  CHECK_TEXT(said(utvm_last_error), "");
  CHECK_TEXT(utvm_last_error_kind, "");
  clear_error();
}

/* ---- the task loop ------------------------------------------------------------------------- */

static int calls[4];

static int32_t shim_add(const uint64_t *args, uint64_t *ret) {
  calls[0]++;
  *ret = args[0] + args[1];
  return 0;
}

static int32_t shim_fail(const uint64_t *args, uint64_t *ret) {
  (void)args;
  calls[1]++;
  TVMFFIErrorSetRaisedFromCStr("ValueError", "shim_fail: bad");
  *ret = (uint64_t)(int64_t)-3;
  return 0;
}

/* A kernel that overruns its workspace buffer by 16 bytes and returns as if all was well. */
static int32_t shim_overrun(const uint64_t *args, uint64_t *ret) {
  unsigned char *p = ws_alloc(32);
  (void)args;
  calls[2]++;
  memset(p, 0x77, 48);
  *ret = 0;
  return 0;
}

/* A kernel that uses the workspace correctly. */
static int32_t shim_ws(const uint64_t *args, uint64_t *ret) {
  void *p = ws_alloc(32);
  (void)args;
  calls[3]++;
  *ret = (uint64_t)(p != NULL && ws_free(p) == 0);
  return 0;
}

static uint64_t slots[4][4];

static void set_task(uint32_t i, UTVMShim shim, uint64_t a, uint64_t b) {
  slots[i][0] = a;
  slots[i][1] = b;
  utvm_tasks[i].func = shim;
  utvm_tasks[i].args = slots[i];
  utvm_tasks[i].ret = &slots[i][2];
  utvm_tasks[i].status = 99;
  utvm_tasks[i].error = 99;
}

static uint32_t run(uint32_t n) {
  utvm_run[0] = n;
  memset(calls, 0, sizeof calls);
  UTVMMain();
  return (uint32_t)utvm_summary;
}

static void test_task_loop(void) {
  uint32_t s, id;
  int begins = console_begins, flushes = console_flushes, hooks = hook_calls;
  utvm_workspace_base = (uintptr_t)ws_area;
  utvm_workspace_size = WS_BYTES;
  utvm_timing[0] = 0u;
  set_task(0, shim_add, 40, 2);
  set_task(1, shim_add, 1, 2);
  set_task(2, shim_add, 5, 5);
  id = utvm_run[1];
  s = run(3);
  CHECK(calls[0] == 3 && slots[0][2] == 42 && slots[1][2] == 3 && slots[2][2] == 10);
  CHECK(utvm_tasks[0].status == 0 && utvm_tasks[2].error == 0 && utvm_tasks_done == 3);
  CHECK(s == (3u | 0u << 16 | 3u << 17 | ((id + 1u) & 0xFFu) << 24));
  CHECK(utvm_run[1] == id + 1u);
  CHECK(hook_calls == hooks + 1 && hook_args[0] == s && hook_args[1] == 42 && hook_args[2] == 0);
  CHECK(console_begins == begins + 1 && console_flushes >= flushes + 1);
  /* each task's counter difference, and the whole loop's (each difference is one read apart) */
  CHECK(utvm_task_counts[0] == 7u && utvm_task_counts[1] == 7u && utvm_task_counts[2] == 7u);
  CHECK(utvm_batch_count > 3u * 7u);

  /* an error stops the batch; the task is marked, the summary says so */
  set_task(1, shim_fail, 0, 0);
  set_task(2, shim_add, 5, 5);
  s = run(3);
  CHECK(calls[0] == 1 && calls[1] == 1);
  CHECK(utvm_tasks[1].error == 1 && utvm_tasks[2].error == 99 && utvm_tasks_done == 2);
  CHECK((s & 0xFFFFu) == 2u && ((s >> 16) & 1u) == 1u && ((s >> 17) & 0x7Fu) == 3u);
  CHECK_TEXT(said(utvm_last_error), "shim_fail: bad");
  CHECK_TEXT(utvm_last_error_kind, "ValueError");
  /* the next run starts clean (the text stays, but is read only with the flag: every error
   * function writes it whole) */
  set_task(1, shim_add, 1, 1);
  s = run(2);
  CHECK(utvm_error_set == 0u && utvm_tasks[1].error == 0);
  CHECK((s & 0xFFFFu) == 2u && ((s >> 16) & 1u) == 0u);

  /* not a count the host writes: nothing runs, the summary shows what was there */
  s = run(UTVM_MAX_TASKS + 1u);
  CHECK(calls[0] == 0 && (s & 0xFFFFu) == 0u && ((s >> 17) & 0x7Fu) == UTVM_MAX_TASKS + 1u);
  s = run(1000u);
  CHECK(calls[0] == 0 && (s & 0xFFFFu) == 0u && ((s >> 17) & 0x7Fu) == 127u);
  CHECK(hook_args[1] == 0u && hook_args[2] == 0u);
  s = run(0);
  CHECK(calls[0] == 0 && s == ((utvm_run[1] & 0xFFu) << 24));
}

static void test_timing(void) {
  uint32_t s;
  set_task(0, shim_add, 20, 22);
  utvm_timing[0] = 3u;  /* number */
  utvm_timing[1] = 4u;  /* repeat */
  s = run(1);
  CHECK(calls[0] == 12);
  CHECK(utvm_counts[0] == 7u && utvm_counts[3] == 7u);
  CHECK((s & 0xFFFFu) == 1u && ((s >> 16) & 1u) == 0u && ((s >> 17) & 0x7Fu) == 1u);
  CHECK(hook_args[1] == 7u && hook_args[2] == 0u);          /* the first measurement, in registers */
  CHECK(slots[0][2] == 42u && utvm_tasks[0].error == 0);
  /* more repeats than the table holds: the table's worth */
  utvm_timing[1] = UTVM_MAX_REPEAT + 5u;
  (void)run(1);
  CHECK(calls[0] == 3 * UTVM_MAX_REPEAT);
  /* an error stops the measurement */
  set_task(0, shim_fail, 0, 0);
  utvm_timing[1] = 4u;
  s = run(1);
  CHECK(calls[1] == 1 && ((s >> 16) & 1u) == 1u && (s & 0xFFFFu) == 1u);
  CHECK(hook_args[1] == (uintptr_t)(uint32_t)-3);           /* then the return slot, as for a call */
  utvm_timing[0] = 0u;
}

/* The workspace check after each task names the kernel that wrote over a header: the task that
 * did it fails, not the next one that uses the workspace. */
static void test_overrun_is_blamed_on_its_task(void) {
  uint32_t s;
  utvm_workspace_base = (uintptr_t)ws_area;
  utvm_workspace_size = WS_BYTES;
  set_task(0, shim_add, 1, 1);
  set_task(1, shim_overrun, 0, 0);
  set_task(2, shim_ws, 0, 0);
  s = run(3);
  CHECK(calls[2] == 1 && calls[3] == 0);
  CHECK(utvm_tasks[0].error == 0 && utvm_tasks[1].error == 2 && utvm_tasks_done == 2);
  CHECK((s & 0xFFFFu) == 2u && ((s >> 16) & 1u) == 1u);
  CHECK(names_header(said(utvm_last_error), ws_area + 48));
  /* the next run's workspace is sound again */
  set_task(0, shim_ws, 0, 0);
  s = run(1);
  CHECK(calls[3] == 1 && slots[0][2] == 1u && ((s >> 16) & 1u) == 0u);
  /* a task that does not touch the workspace is not checked against it */
  set_task(0, shim_add, 2, 3);
  s = run(1);
  CHECK(((s >> 16) & 1u) == 0u && utvm_state.ws_first == NULL);
}

/* ---- shims and the C library subset ---------------------------------------------------------- */

static void test_crc_and_fill(void) {
  static const char check[] = "123456789";
  unsigned char buf[40];
  uint64_t args[3], ret = 0x1234567890ull;
  args[0] = (uint64_t)(uintptr_t)check;
  args[1] = 9u;
  CHECK(UTVMCrcShim(args, &ret) == 0 && ret == 0xCBF43926u);   /* CRC-32's check value */
  args[1] = 0u;
  CHECK(UTVMCrcShim(args, &ret) == 0 && ret == 0u);
  memset(buf, 0, sizeof buf);
  args[0] = (uint64_t)(uintptr_t)(buf + 4);
  args[1] = 0xFFFFFF00u | 0xABu;   /* only the low byte counts, as for memset */
  args[2] = 0xDEAD00000000ull | 32u;   /* the slot's upper half is not the count (the host writes 4 bytes) */
  CHECK(UTVMFillShim(args, &ret) == 0);
  CHECK(buf[3] == 0 && buf[4] == 0xAB && buf[35] == 0xAB && buf[36] == 0);
  args[0] = (uint64_t)(uintptr_t)buf;
  args[1] = 40u;
  CHECK(UTVMCrcShim(args, &ret) == 0);
  {
    /* the same CRC computed the slow way */
    uint32_t crc = 0xFFFFFFFFu;
    int i, b;
    for (i = 0; i < 40; i++) {
      crc ^= buf[i];
      for (b = 0; b < 8; b++) crc = (crc >> 1) ^ ((crc & 1u) ? 0xEDB88320u : 0u);
    }
    CHECK(ret == (uint64_t)~crc);
  }
  CHECK(UTVMEmptyShim(args, &ret) == 0);
}

static void test_mem_functions(void) {
  unsigned char a[64], b[64], want[64];
  int i, off, n;
  srand(7);
  for (off = -8; off <= 8; off++) {
    for (n = 0; n <= 40; n += 5) {
      for (i = 0; i < 64; i++) a[i] = (unsigned char)rand();
      memcpy(b, a, sizeof a);
      memmove(want + 0, a, 64);
      memmove(want + 12 + off, want + 12, (size_t)n);          /* libc's, as the reference */
      CHECK(utvm_rt_memmove(b + 12 + off, b + 12, (size_t)n) == b + 12 + off);
      CHECK(memcmp(b, want, 64) == 0);
    }
  }
  for (i = 0; i < 64; i++) a[i] = (unsigned char)i;
  CHECK(utvm_rt_memcpy(b, a, 64) == b && memcmp(a, b, 64) == 0);
  CHECK(utvm_rt_memset(b, 0x1FF, 10) == b && b[0] == 0xFF && b[9] == 0xFF && b[10] == 10);
  CHECK(utvm_rt_memcmp(a, b, 0) == 0);
  CHECK(utvm_rt_memcmp(a + 10, b + 10, 54) == 0);
  CHECK(utvm_rt_memcmp(a, b, 10) < 0 && utvm_rt_memcmp(b, a, 10) > 0);
  a[5] = 0x80;
  b[5] = 0x7F;
  CHECK(utvm_rt_memcmp(a + 5, b + 5, 1) > 0);                   /* compared as unsigned char */
}

static int lambda_calls;

static int lambda(int task_id, TVMParallelGroupEnv *penv, void *cdata) {
  lambda_calls++;
  return task_id == 0 && penv->num_task == 1 && cdata == (void *)&lambda_calls ? 5 : -1;
}

static void test_parallel(void) {
  CHECK(TVMBackendParallelLaunch(lambda, &lambda_calls, 8) == 5 && lambda_calls == 1);
  CHECK(TVMBackendParallelBarrier(0, NULL) == 0);
}

int main(void) {
  test_alloc_free_patterns();
  test_coalescing_in_every_order();
  test_exhaustion();
  test_null_and_foreign_frees();
  test_overrun_is_reported();
  test_forged_headers_are_reported();
  test_sixteen_byte_workspace();
  test_error_text();
  test_task_loop();
  test_timing();
  test_overrun_is_blamed_on_its_task();
  test_crc_and_fill();
  test_mem_functions();
  test_parallel();
  if (failures != 0) {
    printf("%d checks failed\n", failures);
    return 1;
  }
  printf("all checks passed\n");
  return 0;
}
