/* utvm-host serial stub: a device reached only through a UART (no debug probe) is driven by
 * this small loop, flashed once. The host speaks a framed protocol to it (utvm_host/transport/
 * serial.py): every frame is COBS-encoded and ends in a zero byte; its payload is
 *   seq (1) | command (1) | body | CRC-32 of seq, command and body (4, little-endian)
 * and each request gets one reply with the same seq and command | 0x80, whose body starts with
 * a status byte. A request whose seq repeats the last one is answered from the saved reply, not
 * done again (the host retries when a reply is lost), so writes and calls happen once.
 * Commands: HELLO (the host's nonce: 0 in the reply after a reset tells the host the device
 * restarted), PING (version, sizes, memory the stub uses), READ, WRITE, CALL (pc and sp: the
 * device runtime's UTVMEntry, which ends in UTVMDone -> UTVMDoneHook -> back here), STATS.
 * Text the kernels print arrives in CONSOLE frames (seq 0, command 0x90) at any time. */
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#define VERSION 1
#define MAX_DATA 1024
#define MAX_FRAME (MAX_DATA + 64)

enum { CMD_HELLO = 1, CMD_PING = 2, CMD_READ = 3, CMD_WRITE = 4, CMD_CALL = 5, CMD_STATS = 6, CMD_SINK = 7,
       CMD_RESET = 8, CMD_CONSOLE = 0x10 };
enum { OK = 0, BAD_CRC = 1, UNKNOWN = 2, BAD_ARGS = 3 };

extern char __stub_end[];      /* the firmware linker script: the end of the stub's RAM */
extern char __stub_code_end[]; /* and of its code and constants */
void UTVMDoneHook(uintptr_t summary, uintptr_t ret_lo, uintptr_t ret_hi);
void UTVMConsoleHook(const char *s, size_t n);

#if defined(__riscv) && defined(UTVM_SERIAL_GUARD)
/* The core starts at the start of memory; the stub lives at its end. Once running, the stub
 * locks that first page (PMP: no access, even for machine mode) as a guard below the
 * session's stack. */
__attribute__((section(".text.utvm_boot"), naked, used)) void utvm_boot(void) {
  __asm__ volatile("la t0, _start\n\tjr t0");
}

static void lock_guard(void) {
  uintptr_t addr = ((uintptr_t)(UTVM_SERIAL_GUARD) >> 2) | ((4096u / 8u) - 1u); /* NAPOT, 4 KiB */
  __asm__ volatile(".option push\n\t.option arch, +zicsr\n\tcsrw pmpaddr0, %0\n\tcsrw pmpcfg0, %1\n\t.option pop"
                   : : "r"(addr), "r"((uintptr_t)0x98u)); /* L | NAPOT, no R/W/X */
}
#else
static void lock_guard(void) {}
#endif

/* ---- the UART (the same kinds as the console) ------------------------------------------- */
#if defined(UTVM_SERIAL_NS16550)
#define UART ((volatile uint8_t *)(uintptr_t)(UTVM_SERIAL_NS16550))
static void uart_init(void) {
  UART[3] = 0x80; /* LCR: divisor latch */
  UART[0] = 1;    /* the fastest rate the UART's clock allows */
  UART[1] = 0;
  UART[3] = 0x03; /* 8N1 */
  UART[2] = 0x07; /* FCR: FIFOs on (an emulator then hands over 16 bytes at a time), cleared */
}
static int uart_ready(void) { return UART[5] & 0x01; } /* LSR: data ready */
static uint8_t uart_get(void) { return UART[0]; }
static void uart_put(uint8_t c) {
  while (!(UART[5] & 0x20)) {
  }
  UART[0] = c;
}
#elif defined(UTVM_SERIAL_CMSDK)
#define UART ((volatile uint32_t *)(uintptr_t)(UTVM_SERIAL_CMSDK))
static void uart_init(void) {
  UART[4] = 16u;  /* BAUDDIV */
  UART[2] = 3u;   /* CTRL: TX and RX enabled */
}
static int uart_ready(void) { return UART[1] & 2u; } /* STATE: RX full */
static uint8_t uart_get(void) { return (uint8_t)UART[0]; }
static void uart_put(uint8_t c) {
  while (UART[1] & 1u) {
  }
  UART[0] = c;
}
#else
#error "define UTVM_SERIAL_NS16550 or UTVM_SERIAL_CMSDK to the UART's address"
#endif

/* ---- CRC-32 (IEEE, reflected), a nibble table ------------------------------------------- */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};

static uint32_t crc32(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  while (n--) {
    c ^= *p++;
    c = (c >> 4) ^ crc_nibble[c & 15u];
    c = (c >> 4) ^ crc_nibble[c & 15u];
  }
  return ~c;
}

/* ---- frames ----------------------------------------------------------------------------- */
static uint8_t rx[MAX_FRAME + 16], payload[MAX_FRAME], reply[MAX_FRAME];
static size_t reply_len;
static int last_seq = -1;
static uint32_t nonce;
static uint32_t stats[4]; /* frames done, CRC errors, repeats answered from the saved reply, overruns */

static void send_frame(const uint8_t *p, size_t n) { /* COBS, then the 0 delimiter */
  size_t i = 0;
  while (i <= n) {
    size_t run = 0;
    while (i + run < n && p[i + run] != 0 && run < 254) run++;
    uart_put((uint8_t)(run + 1));
    for (size_t k = 0; k < run; k++) uart_put(p[i + k]);
    i += run;
    if (run == 254) continue; /* a full block: no zero was consumed */
    i++;                      /* skip the zero (or step past the end) */
  }
  uart_put(0);
}

static void put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }
static uint32_t get32(const uint8_t *p) { return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

static void finish_reply(uint8_t seq, uint8_t cmd, uint8_t status, size_t body) { /* body at reply + 3 */
  reply[0] = seq;
  reply[1] = (uint8_t)(cmd | 0x80);
  reply[2] = status;
  put32(reply + 3 + body, crc32(reply, 3 + body));
  reply_len = 3 + body + 4;
  send_frame(reply, reply_len);
}

/* Console frames (UTVMConsoleHook, called by the runtime's printf): sent at once, seq 0. */
void UTVMConsoleHook(const char *s, size_t n) {
  static uint8_t frame[2 + 128 + 4];
  while (n) {
    size_t k = n > 128 ? 128 : n;
    frame[0] = 0;
    frame[1] = CMD_CONSOLE | 0x80;
    for (size_t i = 0; i < k; i++) frame[2 + i] = (uint8_t)s[i];
    put32(frame + 2 + k, crc32(frame, 2 + k));
    send_frame(frame, 2 + k + 4);
    s += k;
    n -= k;
  }
}

/* ---- calls: UTVMEntry on the host's stack; UTVMDone's hook jumps back here ---------------- */
static jmp_buf call_return;
static uintptr_t call_result[3];

void UTVMDoneHook(uintptr_t summary, uintptr_t ret_lo, uintptr_t ret_hi) {
  call_result[0] = summary;
  call_result[1] = ret_lo;
  call_result[2] = ret_hi;
  longjmp(call_return, 1);
}

static void __attribute__((noinline, noreturn)) jump(uintptr_t pc, uintptr_t sp) {
#if defined(__riscv)
  __asm__ volatile("mv sp, %1\n\tjr %0" : : "r"(pc), "r"(sp));
#else
  __asm__ volatile("mov sp, %1\n\tbx %0" : : "r"(pc), "r"(sp));
#endif
  __builtin_unreachable();
}

static void handle(const uint8_t *p, size_t n) {
  uint8_t seq = p[0], cmd = p[1];
  const uint8_t *body = p + 2;
  size_t len = n - 6;
  uint8_t *out = reply + 3;
  if (seq == last_seq && reply_len) { /* a retry of the request just done: the same reply */
    stats[2]++;
    send_frame(reply, reply_len);
    return;
  }
  last_seq = seq;
  stats[0]++;
  switch (cmd) {
    case CMD_HELLO:
      put32(out, nonce);
      if (len >= 4) nonce = get32(body);
      finish_reply(seq, cmd, OK, 4);
      return;
    case CMD_PING:
      put32(out, VERSION);
      out[4] = (uint8_t)sizeof(void *);
      out[5] = 0;
      out[6] = (uint8_t)(MAX_DATA & 0xFF);
      out[7] = (uint8_t)(MAX_DATA >> 8);
      put64(out + 8, (uintptr_t)__stub_end);
      put32(out + 16, nonce);
      put64(out + 20, (uintptr_t)UTVMDoneHook);
      put64(out + 28, (uintptr_t)UTVMConsoleHook);
      put64(out + 36, (uintptr_t)__stub_code_end);
      finish_reply(seq, cmd, OK, 44);
      return;
    case CMD_READ: {
      uint64_t addr = get64(body);
      uint32_t count = get32(body + 8);
      if (len < 12 || count > MAX_DATA) break;
      for (uint32_t i = 0; i < count; i++) out[i] = ((volatile uint8_t *)(uintptr_t)addr)[i];
      finish_reply(seq, cmd, OK, count);
      return;
    }
    case CMD_WRITE: {
      uint64_t addr = get64(body);
      if (len < 8 || len - 8 > MAX_DATA) break;
      for (size_t i = 0; i < len - 8; i++) ((volatile uint8_t *)(uintptr_t)addr)[i] = body[8 + i];
      __asm__ volatile("" ::: "memory");
#if defined(__riscv)
      __asm__ volatile(".option push\n\t.option arch, +zifencei\n\tfence.i\n\t.option pop" ::: "memory");
#endif
      finish_reply(seq, cmd, OK, 0);
      return;
    }
    case CMD_CALL: {
      if (len < 16) break;
      uintptr_t pc = (uintptr_t)get64(body), sp = (uintptr_t)get64(body + 8);
      if (setjmp(call_return) == 0) jump(pc, sp);
      uart_init(); /* the call may have used the UART (printf): keep it set up */
      for (int i = 0; i < 3; i++) put64(out + 8 * i, call_result[i]);
      put32(out + 24, nonce); /* a device that restarted meanwhile answers 0 */
      finish_reply(seq, cmd, OK, 28);
      return;
    }
    case CMD_SINK: { /* the next N raw bytes are consumed unframed: the link's raw rate, for benchmarks */
      uint32_t count = len >= 4 ? get32(body) : 0;
      finish_reply(seq, cmd, OK, 0);
      for (uint32_t i = 0; i < count; i++) {
        while (!uart_ready()) {
        }
        (void)uart_get();
      }
      reply_len = 0;
      finish_reply(seq, cmd, OK, 0); /* a second reply: all of them arrived */
      return;
    }
    case CMD_RESET: /* start over (the host says hello again afterwards) */
      finish_reply(seq, cmd, OK, 0);
      for (volatile int i = 0; i < 20000; i++) {
      } /* let the reply leave the UART */
#if defined(__riscv)
      __asm__ volatile("j _start");
#else
      *(volatile uint32_t *)0xE000ED0Cu = 0x05FA0004u; /* AIRCR: SYSRESETREQ */
      for (;;) {
      }
#endif
      return;
    case CMD_STATS:
      for (int i = 0; i < 4; i++) put32(out + 4 * i, stats[i]);
      finish_reply(seq, cmd, OK, 16);
      return;
    default:
      finish_reply(seq, cmd, UNKNOWN, 0);
      return;
  }
  finish_reply(seq, cmd, BAD_ARGS, 0);
}

int main(void) {
  size_t got = 0;
  int overrun = 0;
  lock_guard();
  uart_init();
  for (;;) {
    while (!uart_ready()) { /* between polls, a short spin: under an emulator each UART access stops the
                               world for the device model, and polling flat out starves its I/O */
      for (volatile int i = 0; i < 64; i++) {
      }
    }
    uint8_t c = uart_get();
    if (c != 0) {
      if (got < sizeof rx) rx[got++] = c;
      else overrun = 1;
      continue;
    }
    /* a frame ended: COBS-decode rx[0..got) into payload */
    size_t n = 0, i = 0;
    int bad = overrun || got == 0;
    while (!bad && i < got) {
      uint8_t code = rx[i++];
      if (code == 0 || i + code - 1 > got) { bad = 1; break; }
      for (uint8_t k = 1; k < code; k++) payload[n++] = rx[i++];
      if (code < 255 && i < got) payload[n++] = 0;
    }
    if (overrun) stats[3]++;
    got = 0;
    overrun = 0;
    if (bad || n < 6) continue; /* noise: the host times out and retries */
    if (crc32(payload, n - 4) != get32(payload + n - 4)) { /* a NAK; the saved reply stays */
      uint8_t nak[7];
      stats[1]++;
      nak[0] = payload[0];
      nak[1] = (uint8_t)((payload[1] & 0x7F) | 0x80);
      nak[2] = BAD_CRC;
      put32(nak + 3, crc32(nak, 3));
      send_frame(nak, sizeof nak);
      continue;
    }
    handle(payload, n);
  }
}
