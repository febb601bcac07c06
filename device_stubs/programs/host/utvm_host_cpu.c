/* utvm-host "host device" CPU: a child process that plays the device's processor.
 *
 * It maps the device memory (a shared-memory file that Python maps too) at the device's
 * fixed base address with execute permission, then runs entry points on request, on the
 * device's own stack. A fault in device code becomes a report to Python and the end of this
 * process; Python stays unharmed and starts a new one.
 *
 * Usage: utvm_host_cpu FD BASE SIZE      (FD: the inherited memory file; BASE, SIZE in hex)
 * Protocol on stdin/stdout, fixed-size little-endian records (struct layouts below):
 *   request  {u32 op; u32 pad; u64 entry; u64 stack_base; u64 stack_size}
 *   reply    {u32 op; i32 signo; i32 code; u32 pad; u64 addr; u64 pc; u64 sp}
 * ops: RUN -> DONE | FAULT; QUIT -> (exit 0). At start: READY (or ERROR with errno in code).
 * SIGUSR1 (Python's probe before killing a hung call) -> STOPPED with the pc, then exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <ucontext.h>
#include <unistd.h>

enum { OP_RUN = 1, OP_QUIT = 2, OP_READY = 10, OP_DONE = 11, OP_FAULT = 12, OP_STOPPED = 13, OP_ERROR = 14 };

struct request {
  uint32_t op, pad;
  uint64_t entry, stack_base, stack_size;
};

struct reply {
  uint32_t op;
  int32_t signo, code;
  uint32_t pad;
  uint64_t addr, pc, sp;
};

static ucontext_t host_ctx, device_ctx;
static uint64_t current_entry;

static void send_reply(const struct reply *r) {
  const char *p = (const char *)r;
  size_t left = sizeof *r;
  while (left) {
    ssize_t n = write(1, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(3);
    p += n;
    left -= (size_t)n;
  }
}

static void context_pc_sp(void *uc_void, uint64_t *pc, uint64_t *sp) {
  ucontext_t *uc = (ucontext_t *)uc_void;
#if defined(__x86_64__)
  *pc = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
  *sp = (uint64_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
  *pc = (uint64_t)uc->uc_mcontext.pc;
  *sp = (uint64_t)uc->uc_mcontext.sp;
#else
  (void)uc;
  *pc = 0;
  *sp = 0;
#endif
}

static void on_fault(int signo, siginfo_t *info, void *uc) {
  struct reply r;
  memset(&r, 0, sizeof r);
  r.op = OP_FAULT;
  r.signo = signo;
  r.code = info->si_code;
  r.addr = (uint64_t)(uintptr_t)info->si_addr;
  context_pc_sp(uc, &r.pc, &r.sp);
  send_reply(&r);
  _exit(128 + signo);
}

static void on_probe(int signo, siginfo_t *info, void *uc) {
  struct reply r;
  (void)info;
  memset(&r, 0, sizeof r);
  r.op = OP_STOPPED;
  r.signo = signo;
  context_pc_sp(uc, &r.pc, &r.sp);
  send_reply(&r);
  _exit(128 + signo);
}

static void run_entry(void) {
  ((void (*)(void))(uintptr_t)current_entry)();
}

static int read_request(struct request *q) {
  char *p = (char *)q;
  size_t left = sizeof *q;
  while (left) {
    ssize_t n = read(0, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1; /* Python went away: stop */
    p += n;
    left -= (size_t)n;
  }
  return 0;
}

int main(int argc, char **argv) {
  static char altstack[64 * 1024];
  struct reply r;
  struct request q;
  stack_t ss;
  struct sigaction sa;
  int fd, sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT, SIGSYS};
  unsigned i;
  void *base, *got;
  size_t size;

  prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the Python process */
  memset(&r, 0, sizeof r);
  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: %s FD BASE SIZE [CONSOLE_FILE]\n", argv[0]);
    return 2;
  }
  if (argc == 5) { /* the device console (printf in kernels) writes to fd UTVM_CONSOLE_FD = 63 */
    int c = open(argv[4], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (c >= 0 && c != 63) {
      dup2(c, 63);
      close(c);
    }
  }
  fd = atoi(argv[1]);
  base = (void *)(uintptr_t)strtoull(argv[2], NULL, 16);
  size = (size_t)strtoull(argv[3], NULL, 16);
  got = mmap(base, size, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
  if (got != base) {
    r.op = OP_ERROR;
    r.code = got == MAP_FAILED ? errno : EEXIST;
    r.addr = (uint64_t)(uintptr_t)base;
    fprintf(stderr, "utvm_host_cpu: cannot map the device memory at %p: %s\n", base, strerror(r.code));
    send_reply(&r);
    return 1;
  }
  close(fd);

  ss.ss_sp = altstack;
  ss.ss_size = sizeof altstack;
  ss.ss_flags = 0;
  sigaltstack(&ss, NULL);
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigfillset(&sa.sa_mask);
  for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
  sa.sa_sigaction = on_probe;
  sigaction(SIGUSR1, &sa, NULL);

  r.op = OP_READY;
  send_reply(&r);
  for (;;) {
    if (read_request(&q) != 0) return 0;
    if (q.op == OP_QUIT) return 0;
    if (q.op != OP_RUN) {
      memset(&r, 0, sizeof r);
      r.op = OP_ERROR;
      r.code = EINVAL;
      send_reply(&r);
      continue;
    }
    current_entry = q.entry;
    getcontext(&device_ctx);
    device_ctx.uc_stack.ss_sp = (void *)(uintptr_t)q.stack_base;
    device_ctx.uc_stack.ss_size = (size_t)q.stack_size;
    device_ctx.uc_link = &host_ctx;
    makecontext(&device_ctx, run_entry, 0);
    swapcontext(&host_ctx, &device_ctx);
    memset(&r, 0, sizeof r);
    r.op = OP_DONE;
    send_reply(&r);
  }
}
