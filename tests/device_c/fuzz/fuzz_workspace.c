/* libFuzzer harness of the device runtime's workspace allocator (TVMBackendAllocWorkspace,
 * TVMBackendFreeWorkspace, the check after each task), built with ASan and UBSan.
 *
 * (The check word makes an overrun that still passes it a 1 in 2^32 chance for a kernel writing
 * past its buffer; libFuzzer, which sees the comparison, forges such headers on purpose: the
 * harness undoes those.)
 *
 * The input is a workspace shape and a program of operations: allocate, free (a live block, a
 * block twice, a pointer that is not a block, NULL), a kernel overrunning a live block by 1 to
 * 16 bytes with bytes from the input, the task loop's check, a new run. The invariants:
 *   - every block handed out lies inside the region, 16-byte aligned, and overlaps no live one
 *     (no block is handed out twice);
 *   - the allocator changes no byte of a live block's data and nothing outside the region (the
 *     region sits between guard bytes; ASan sees the rest);
 *   - an overrun that changed a block header is reported by the very next allocator call or
 *     check: it fails with the corruption error; after that no call succeeds until a new run;
 *   - with no overrun, every allocation hands out exactly the block first fit (with the same
 *     split and coalescing, modelled here) gives, or fails when it gives none; frees of live
 *     blocks succeed; a second free, or a pointer that is not a block, is refused.
 */
#include "../runtime_under_test.h"

uint64_t UTVMCounter(void) { return 0u; }
void utvm_console_begin(void) {}
void utvm_console_flush(void) {}

#define GUARD 64u
#define MAX_WS 4096u
#define MAX_LIVE 64

static unsigned char area[GUARD + MAX_WS + 16u + GUARD] __attribute__((aligned(16)));

typedef struct {
  unsigned char *p;
  size_t n;       /* bytes asked for */
  unsigned char tag;
} Live;

static Live live[MAX_LIVE];
static int nlive;
static int corrupt;        /* an overrun changed a header: the next call must report it */
static int reported;       /* it was reported: nothing succeeds until a new run */
static unsigned char *region;
static size_t region_size;
static void model_reset(void);

static void fail(const char *what) {
  fprintf(stderr, "invariant broken: %s (error text: \"%s\")\n", what, said(utvm_last_error));
  abort();
}

static void new_run(size_t offset, size_t size) {
  utvm_workspace_base = (uintptr_t)(area + GUARD + offset);
  utvm_workspace_size = size;
  utvm_run[0] = 0u;
  utvm_timing[0] = 0u;
  UTVMMain();
  nlive = 0;
  corrupt = 0;
  reported = 0;
  region = area + GUARD + offset;
  region_size = size;
  model_reset();
}

static void check_untouched(void) {
  size_t i;
  int k;
  for (i = 0; i < GUARD; i++) {
    if (area[i] != 0xA5u || area[sizeof area - 1u - i] != 0xA5u) fail("a guard byte outside the region changed");
  }
  for (k = 0; k < nlive; k++) {
    for (i = 0; i < live[k].n; i++) {
      if (live[k].p[i] != live[k].tag) fail("a live block's data changed");
    }
  }
}

/* The corruption report, if one is due: the call failed with the header's error. */
static void expect_outcome(int failed) {
  if (reported) {
    if (!failed) fail("a call succeeded after a corruption was reported");
  } else if (corrupt) {
    if (!failed || strstr(said(utvm_last_error), "the workspace is corrupted") == NULL) {
      fail("a header written over was not reported by the next call");
    }
    reported = 1;
  } else if (failed && strstr(said(utvm_last_error), "corrupted") != NULL) {
    fail("a corruption was reported with no header written over");
  }
  utvm_error_set = 0u;
  utvm_last_error[0] = '\0';
}

/* The reference: the same first fit, split and coalescing over a list of blocks, in units. */
typedef struct {
  size_t start, units;
  int used;
} ModelBlock;

static ModelBlock model[MAX_WS / 16u + 2u];
static size_t nmodel, model_units;
static uintptr_t model_begin;

static void model_reset(void) {
  uintptr_t begin = ((uintptr_t)region + 15u) & ~(uintptr_t)15u;
  uintptr_t end = ((uintptr_t)region + region_size) & ~(uintptr_t)15u;
  model_begin = begin;
  model_units = end > begin ? (end - begin) / 16u : 0u;
  nmodel = 0;
  if (model_units > 0u) {
    model[0].start = 0;
    model[0].units = model_units;
    model[0].used = 0;
    nmodel = 1;
  }
}

/* The block the allocator must hand out for n bytes, or NULL. */
static unsigned char *model_alloc(size_t n) {
  size_t need = (n + 15u) / 16u + 1u, i;
  if (n > model_units * 16u) return NULL;
  for (i = 0; i < nmodel; i++) {
    if (!model[i].used && model[i].units >= need) {
      if (model[i].units - need >= 2u) {
        memmove(&model[i + 2], &model[i + 1], (nmodel - i - 1u) * sizeof model[0]);
        model[i + 1].start = model[i].start + need;
        model[i + 1].units = model[i].units - need;
        model[i + 1].used = 0;
        model[i].units = need;
        nmodel++;
      }
      model[i].used = 1;
      return (unsigned char *)(model_begin + (model[i].start + 1u) * 16u);
    }
  }
  return NULL;
}

static void model_free(const unsigned char *p) {
  size_t i;
  for (i = 0; i < nmodel; i++) {
    if ((unsigned char *)(model_begin + (model[i].start + 1u) * 16u) == p) break;
  }
  if (i == nmodel || !model[i].used) fail("the model lost a live block");
  model[i].used = 0;
  if (i + 1u < nmodel && !model[i + 1u].used) {
    model[i].units += model[i + 1u].units;
    memmove(&model[i + 1u], &model[i + 2u], (nmodel - i - 2u) * sizeof model[0]);
    nmodel--;
  }
  if (i > 0u && !model[i - 1u].used) {
    model[i - 1u].units += model[i].units;
    memmove(&model[i], &model[i + 1u], (nmodel - i - 1u) * sizeof model[0]);
    nmodel--;
  }
}

static void do_alloc(size_t n, unsigned char tag) {
  unsigned char *p, *want = NULL;
  int k;
  if (!corrupt) want = model_alloc(n);
  p = TVMBackendAllocWorkspace(1, 0, n, 0, 8);
  if (!corrupt && !reported && n > model_units * 16u &&
      (p != NULL || strstr(said(utvm_last_error), "request larger than the workspace region") == NULL)) {
    fail("a request larger than the region was not refused as such");
  }
  expect_outcome(p == NULL);
  if (corrupt) return;
  if (p != want) fail("the allocation differs from first fit");
  if (p == NULL) return;
  if (((uintptr_t)p & 15u) != 0u) fail("a block is not 16-byte aligned");
  if (p < region || p + n > region + region_size) fail("a block lies outside the region");
  for (k = 0; k < nlive; k++) {
    if (p < live[k].p + live[k].n + 16u && live[k].p < p + n + 16u) fail("a block overlaps a live one");
  }
  if (nlive == MAX_LIVE) {
    if (TVMBackendFreeWorkspace(1, 0, p) != 0) fail("freeing a live block failed");
    model_free(p);
    return;
  }
  memset(p, tag, n);
  live[nlive].p = p;
  live[nlive].n = n;
  live[nlive].tag = tag;
  nlive++;
}

static void do_free(int k, int twice) {
  unsigned char *p = live[k].p;
  int r = TVMBackendFreeWorkspace(1, 0, p);
  expect_outcome(r != 0);
  if (corrupt) return;
  if (r != 0) fail("freeing a live block failed");
  model_free(p);
  live[k] = live[nlive - 1];
  nlive--;
  if (twice) {
    r = TVMBackendFreeWorkspace(1, 0, p);
    if (r != -1 || strstr(said(utvm_last_error), "not allocated") == NULL) fail("a second free was not refused");
    utvm_error_set = 0u;
    utvm_last_error[0] = '\0';
  }
}

/* A kernel writes `k` bytes past the end of live block `i`'s block (within the region): over
 * the next block's header. */
static void do_overrun(int i, size_t k, const unsigned char *bytes) {
  unsigned char *end = NULL;   /* where the block ends (it may hold a unit more than asked for) */
  unsigned char *stop = (unsigned char *)(model_begin + model_units * 16u);   /* the last unit's end */
  size_t b;
  for (b = 0; b < nmodel; b++) {
    if ((unsigned char *)(model_begin + (model[b].start + 1u) * 16u) == live[i].p) {
      end = (unsigned char *)(model_begin + (model[b].start + model[b].units) * 16u);
    }
  }
  if (end == NULL) fail("the model lost a live block");
  unsigned char before[8];
  size_t j, m = k;
  if (end >= stop) return;                       /* past the blocks: no header there */
  if ((size_t)(stop - end) < m) m = (size_t)(stop - end);
  memcpy(before, end, 8);
  for (j = 0; j < m; j++) end[j] = bytes[j];
  if (memcmp(before, end, 8) != 0) {   /* the header's word or check word changed */
    const UTVMBlock *h = (const UTVMBlock *)(const void *)end;
    uint32_t index = (uint32_t)(((uintptr_t)end - model_begin) / 16u);
    if (h->check == (UTVM_WS_MAGIC ^ h->word ^ index)) {
      /* A forged header: bytes that pass the check, which a kernel running past its buffer
       * writes by chance once in 2^32 (libFuzzer finds them by watching the comparison). Not an
       * overrun this harness models: undone. */
      memcpy(end, before, 8);
    } else {
      corrupt = 1;
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t at = 3;
  if (size < 3) return 0;
  memset(area, 0xA5, sizeof area);
  new_run(data[0] & 15u, ((size_t)data[1] | ((size_t)data[2] << 8)) % (MAX_WS + 1u));
  while (at < size) {
    uint8_t op = data[at++];
    uint8_t a = at < size ? data[at] : 0u;
    uint8_t b = at + 1u < size ? data[at + 1u] : 0u;
    switch (op % 8u) {
      case 0:
      case 1: /* allocate (mostly small) */
        do_alloc(op % 8u == 0 ? a : ((size_t)a | ((size_t)b << 8)) % (MAX_WS + 64u), (unsigned char)(op | 1u));
        at += 2;
        break;
      case 2: /* free a live block */
        if (nlive > 0) do_free(a % nlive, 0);
        at += 1;
        break;
      case 3: /* free one twice */
        if (nlive > 0 && !corrupt) do_free(a % nlive, 1);
        at += 1;
        break;
      case 4: /* overrun a live block by 1 to 16 bytes */
        if (nlive > 0 && !corrupt && size - at >= 18u) {
          do_overrun(a % nlive, (b % 16u) + 1u, data + at + 2u);
          at += 18;
        } else {
          at = size;
        }
        break;
      case 5: { /* free NULL, or a pointer inside the region that is not a block */
        int r;
        if (a & 1u) {
          r = TVMBackendFreeWorkspace(1, 0, NULL);
          if (r != 0 || utvm_error_set != 0u) fail("freeing NULL was not a no-op");
        } else if (region_size > 0u) {
          unsigned char *p = region + ((size_t)b * 7u) % region_size;
          int k, is_block = 0;
          for (k = 0; k < nlive; k++) is_block |= live[k].p == p;
          if (!is_block) {
            r = TVMBackendFreeWorkspace(1, 0, p);
            expect_outcome(r != 0);
            if (!corrupt && r != -1) fail("freeing a pointer that is not a block succeeded");
          }
        }
        at += 2;
        break;
      }
      case 6: /* the task loop's check after a task */
        if (utvm_state.ws_first != NULL) {
          expect_outcome(ws_walk(NULL, UTVM_WS_NONE) == UTVM_WS_BAD);
        }
        break;
      default: /* a new run */
        new_run(a & 15u, ((size_t)b * 17u) % (MAX_WS + 1u));
        at += 2;
        break;
    }
    check_untouched();
  }
  return 0;
}
