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
 * Text the kernels print arrives in CONSOLE frames (seq 0, command 0x90) at any time.
 *
 * Everything that arrives is untrusted (line noise, a host of another version): a frame is
 * decoded by cobs_decode, which never writes past the buffer it is given, before its CRC is
 * checked; frames too long for the stub are counted as overruns, malformed ones as noise.
 *
 * Host builds: with UTVM_SERIAL_TEST defined (tests/device_c/unit/test_serial.c and
 * tests/device_c/fuzz/fuzz_cobs.c #include this file) the UART is a buffer (test_tx), READ and
 * WRITE reach only a window of host memory (test_mem), a CALL returns through UTVMDoneHook at
 * once and there is no main loop: the test hands received bytes to rx_byte. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
/* cppcheck-suppress misra-c2012-21.4 ; deviation S1 */
#include <setjmp.h>

#include "utvm_uart.h"

#define STUB_VERSION 1u
#define MAX_DATA 1024u             /* data bytes one READ or WRITE carries at most */
#define MAX_FRAME (MAX_DATA + 64u) /* a decoded frame: seq, command, arguments, data, CRC */
/* An encoded frame: COBS output is at least one byte shorter than its input, so any frame that
 * fits here decodes into MAX_FRAME bytes; a longer one is an overrun. */
#define RX_CAP (MAX_FRAME + 1u)
#define HEADER 2u  /* seq, command */
#define CRC_LEN 4u /* the CRC-32 after the body */

#define CMD_HELLO 1u
#define CMD_PING 2u
#define CMD_READ 3u
#define CMD_WRITE 4u
#define CMD_CALL 5u
#define CMD_STATS 6u
#define CMD_SINK 7u
#define CMD_RESET 8u
#define CMD_CONSOLE 0x10u
#define REPLY_FLAG 0x80u

#define ST_OK 0u
#define ST_BAD_CRC 1u
#define ST_UNKNOWN 2u
#define ST_BAD_ARGS 3u

/* The stub's counters, as STATS reports them in this order. */
#define STAT_FRAMES 0u   /* requests done */
#define STAT_CRC 1u      /* requests refused for a wrong CRC (a NAK was sent) */
#define STAT_REPEATS 2u  /* requests answered again from the saved reply */
#define STAT_OVERRUNS 3u /* frames too long for the stub, dropped */
#define STAT_NOISE 4u    /* frames that were not COBS or too short to be a request, dropped */
#define STAT_COUNT 5u

/* MISRA C:2012 21.2, deviation S8: section bounds named by the linker script */
extern uint8_t __stub_end;      /* the firmware linker script: the end of the stub's RAM */
extern uint8_t __stub_code_end; /* and of its code and constants */
void UTVMDoneHook(uintptr_t summary, uintptr_t ret_lo, uintptr_t ret_hi);
void UTVMConsoleHook(const char *s, size_t n);
#if !defined(UTVM_SERIAL_TEST)
int main(void);
#endif

/* ---- the guard page (RISC-V, one memory region) ----------------------------------------- */
#if defined(__riscv) && defined(UTVM_SERIAL_GUARD) && !defined(UTVM_SERIAL_TEST)
/* With one memory region (utvm_host/export.py defines UTVM_SERIAL_GUARD, the region's start),
 * the core starts at the start of memory, in utvm_boot's page; the stub lives at its end. Once
 * running, the stub locks that boot page (PMP: no access, even for machine mode) as a guard
 * below the session's stack. */
void utvm_boot(void);
/* MISRA C:2012 1.2, deviation S7: inline assembly and GCC attributes, one small function each */
__attribute__((section(".text.utvm_boot"), naked, used)) void utvm_boot(void) {
  __asm__ volatile("la t0, _start\n\tjr t0");
}

static void lock_guard(void) {
  /* pmpaddr0: the naturally aligned 4 KiB (NAPOT) holding utvm_boot; pmpcfg0: L | NAPOT, no R/W/X */
  __asm__ volatile(".option push\n\t.option arch, +zicsr\n\t"
                   "la t0, utvm_boot\n\tsrli t0, t0, 2\n\tori t0, t0, 511\n\tcsrw pmpaddr0, t0\n\t"
                   "li t0, 0x98\n\tcsrw pmpcfg0, t0\n\t.option pop"
                   :
                   :
                   : "t0");
}
#elif !defined(UTVM_SERIAL_TEST)
static void lock_guard(void) {}
#else
/* host builds: no main loop, nothing to lock */
#endif

/* ---- the UART (the same kinds as the console) ------------------------------------------- */
#if defined(UTVM_SERIAL_TEST)
/* Host builds: what the stub sends collects in test_tx (the test reads and empties it). */
static uint8_t test_tx[65536];
static size_t test_tx_len;
static void uart_init(void) {}
static void uart_put(uint8_t c) {
  if (test_tx_len < sizeof(test_tx)) {
    test_tx[test_tx_len] = c;
    test_tx_len++;
  }
}
#elif defined(UTVM_SERIAL_NS16550)
static void uart_init(void) { utvm_ns16550_init((uintptr_t)(UTVM_SERIAL_NS16550)); }
static bool uart_ready(void) { return utvm_ns16550_ready((uintptr_t)(UTVM_SERIAL_NS16550)); }
static uint8_t uart_get(void) { return utvm_ns16550_get((uintptr_t)(UTVM_SERIAL_NS16550)); }
static void uart_put(uint8_t c) { utvm_ns16550_put((uintptr_t)(UTVM_SERIAL_NS16550), c); }
#elif defined(UTVM_SERIAL_CMSDK)
static void uart_init(void) { utvm_cmsdk_init((uintptr_t)(UTVM_SERIAL_CMSDK)); }
static bool uart_ready(void) { return utvm_cmsdk_ready((uintptr_t)(UTVM_SERIAL_CMSDK)); }
static uint8_t uart_get(void) { return utvm_cmsdk_get((uintptr_t)(UTVM_SERIAL_CMSDK)); }
static void uart_put(uint8_t c) { utvm_cmsdk_put((uintptr_t)(UTVM_SERIAL_CMSDK), c); }
#else
#error "define UTVM_SERIAL_NS16550 or UTVM_SERIAL_CMSDK to the UART's address (or UTVM_SERIAL_TEST)"
#endif

#if !defined(UTVM_SERIAL_TEST)
/* A short wait that the compiler keeps. */
static void spin(uint32_t count) {
  volatile uint32_t left = count;
  while (left > 0u) {
    left = left - 1u;
  }
}
#endif

/* ---- the memory READ and WRITE reach ------------------------------------------------------ */
#if defined(UTVM_SERIAL_TEST)
/* Host builds: a window of host memory at test_mem_base; every other address is refused. */
static const uint64_t test_mem_base = 0x10000u;
static uint8_t test_mem[4096];
static bool mem_ok(uint64_t addr, uint64_t n) {
  return (addr >= test_mem_base) && ((addr - test_mem_base) <= sizeof(test_mem)) &&
         (n <= (sizeof(test_mem) - (addr - test_mem_base)));
}
static volatile uint8_t *mem_at(uint64_t addr) { return &test_mem[addr - test_mem_base]; }
#else
/* The device: any address the core can reach (memory, registers: the host decides). */
static bool mem_ok(uint64_t addr, uint64_t n) {
  const uint64_t top = (uint64_t)UINTPTR_MAX;
  return (addr <= top) && ((n == 0u) || ((n - 1u) <= (top - addr)));
}
static volatile uint8_t *mem_at(uint64_t addr) {
  /* cppcheck-suppress misra-c2012-11.4 ; deviation S3 */
  return (volatile uint8_t *)(uintptr_t)addr;
}
#endif

/* ---- bytes, CRC-32 (IEEE, reflected, a nibble table) ------------------------------------ */
static void put32(uint8_t p[], size_t at, uint32_t v) {
  p[at] = (uint8_t)(v & 0xFFu);
  p[at + 1u] = (uint8_t)((v >> 8u) & 0xFFu);
  p[at + 2u] = (uint8_t)((v >> 16u) & 0xFFu);
  p[at + 3u] = (uint8_t)((v >> 24u) & 0xFFu);
}
static void put64(uint8_t p[], size_t at, uint64_t v) {
  put32(p, at, (uint32_t)(v & 0xFFFFFFFFu));
  put32(p, at + 4u, (uint32_t)(v >> 32u));
}
static uint32_t get32(const uint8_t p[], size_t at) {
  return (uint32_t)p[at] | ((uint32_t)p[at + 1u] << 8u) | ((uint32_t)p[at + 2u] << 16u) |
         ((uint32_t)p[at + 3u] << 24u);
}
static uint64_t get64(const uint8_t p[], size_t at) {
  return (uint64_t)get32(p, at) | ((uint64_t)get32(p, at + 4u) << 32u);
}

static uint32_t crc32(const uint8_t p[], size_t n) {
  static const uint32_t crc_nibble[16] = {
      0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
      0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};
  uint32_t c = 0xFFFFFFFFu;
  size_t i;
  for (i = 0u; i < n; i++) {
    c ^= (uint32_t)p[i];
    c = (c >> 4u) ^ crc_nibble[c & 15u];
    c = (c >> 4u) ^ crc_nibble[c & 15u];
  }
  return ~c;
}

/* ---- COBS ---------------------------------------------------------------------------------- */
/* Decode one frame in[0..n) (without its zero delimiter) into out[0..cap): the payload's length,
 * or 0 when the frame is malformed (empty, a zero code, a block running past its end) or its
 * payload does not fit in cap bytes. It reads nothing outside in[0..n) and writes nothing
 * outside out[0..cap), whatever the input. */
static size_t cobs_decode(const uint8_t in[], size_t n, uint8_t out[], size_t cap) {
  size_t i = 0u; /* the next byte of in */
  size_t o = 0u; /* the next byte of out */
  bool ok = n > 0u;
  while (ok && (i < n)) {
    const size_t code = (size_t)in[i];
    i++;
    if ((code == 0u) || ((code - 1u) > (n - i)) || ((code - 1u) > (cap - o))) {
      ok = false; /* a zero inside, a block past the end, or more than fits */
    } else {
      size_t k;
      for (k = 1u; k < code; k++) {
        out[o] = in[i];
        o++;
        i++;
      }
      if ((code < 255u) && (i < n)) { /* a block shorter than 254 bytes ended at a zero */
        if (o < cap) {
          out[o] = 0u;
          o++;
        } else {
          ok = false;
        }
      }
    }
  }
  return ok ? o : 0u;
}

/* Send p[0..n) COBS-encoded, then the 0 delimiter. */
static void send_frame(const uint8_t p[], size_t n) {
  size_t i = 0u;
  bool more = true;
  while (more) {
    size_t run = 0u;
    size_t k;
    while (((i + run) < n) && (p[i + run] != 0u) && (run < 254u)) {
      run++;
    }
    uart_put((uint8_t)(run + 1u));
    for (k = 0u; k < run; k++) {
      uart_put(p[i + k]);
    }
    i += run;
    if (run < 254u) {
      i++; /* skip the zero (or step past the end); a full block of 254 consumed no zero */
    }
    more = i <= n;
  }
  uart_put(0u);
}

/* ---- replies ------------------------------------------------------------------------------ */
#define BODY (HEADER + 1u) /* a reply's body starts after seq, command and status */
static uint8_t reply[MAX_FRAME];
static size_t reply_len;   /* the saved reply's length: 0 while there is none */
static uint32_t nonce;
static uint32_t stats[STAT_COUNT];

static void finish_reply(uint8_t seq, uint8_t cmd, uint8_t status, size_t body) { /* body at reply[BODY] */
  reply[0] = seq;
  reply[1] = (uint8_t)(cmd | REPLY_FLAG);
  reply[2] = status;
  put32(reply, BODY + body, crc32(reply, BODY + body));
  reply_len = BODY + body + CRC_LEN;
  send_frame(reply, reply_len);
}

/* Console frames (UTVMConsoleHook, called by the runtime's printf): sent at once, seq 0. */
void UTVMConsoleHook(const char *s, size_t n) {
  static uint8_t frame[HEADER + 128u + CRC_LEN];
  size_t done = 0u;
  while (done < n) {
    const size_t k = ((n - done) > 128u) ? 128u : (n - done);
    size_t i;
    frame[0] = 0u;
    frame[1] = (uint8_t)(CMD_CONSOLE | REPLY_FLAG);
    for (i = 0u; i < k; i++) {
      frame[HEADER + i] = (uint8_t)s[done + i];
    }
    put32(frame, HEADER + k, crc32(frame, HEADER + k));
    send_frame(frame, HEADER + k + CRC_LEN);
    done += k;
  }
}

/* ---- calls: UTVMEntry on the host's stack; UTVMDone's hook jumps back here ---------------- */
static jmp_buf call_return;
static volatile uintptr_t call_result[3];
static volatile bool call_active; /* a call is running: call_return is valid */

void UTVMDoneHook(uintptr_t summary, uintptr_t ret_lo, uintptr_t ret_hi) {
  if (call_active) { /* else not inside a call of the stub's: return to the caller */
    call_result[0] = summary;
    call_result[1] = ret_lo;
    call_result[2] = ret_hi;
    call_active = false;
    longjmp(call_return, 1); /* MISRA C:2012 21.4, deviation S1 (cppcheck reports the #include only) */
  }
}

#if defined(UTVM_SERIAL_TEST)
/* Host builds: the "kernel" ends at once, through the hook as on the device. */
static void jump(uintptr_t pc, uintptr_t sp) { UTVMDoneHook(pc ^ sp, pc, sp); }
#else
static void __attribute__((noinline, noreturn)) jump(uintptr_t pc, uintptr_t sp) {
  const uintptr_t target = pc; /* named here: a checker does not see the uses inside asm operands */
  const uintptr_t stack = sp;
#if defined(__riscv)
  __asm__ volatile("mv sp, %1\n\tjr %0" : : "r"(target), "r"(stack));
#else
  __asm__ volatile("mov sp, %1\n\tbx %0" : : "r"(target), "r"(stack));
#endif
  __builtin_unreachable();
}
#endif

/* Run the code at pc on the stack sp until it ends in UTVMDoneHook. */
static void call_on_stack(uintptr_t pc, uintptr_t sp) {
  call_active = true;
  if (setjmp(call_return) == 0) { /* MISRA C:2012 21.4, deviation S1 (cppcheck reports the #include only) */
    jump(pc, sp);
  }
  call_active = false;
}

/* ---- requests ----------------------------------------------------------------------------- */
/* Each command: the request p[0..HEADER + len) (body at p[HEADER]) -> the reply's status, and
 * its body in reply[BODY..BODY + *body). */
static uint8_t do_hello(const uint8_t p[], size_t len, size_t *body) {
  put32(reply, BODY, nonce);
  if (len >= 4u) {
    nonce = get32(p, HEADER);
  }
  *body = 4u;
  return ST_OK;
}

static uint8_t do_ping(size_t *body) {
  put32(reply, BODY, STUB_VERSION);
  reply[BODY + 4u] = (uint8_t)sizeof(void *);
  reply[BODY + 5u] = 0u;
  reply[BODY + 6u] = (uint8_t)(MAX_DATA & 0xFFu);
  reply[BODY + 7u] = (uint8_t)(MAX_DATA >> 8u);
  /* cppcheck-suppress misra-c2012-11.4 ; deviation S4 */
  put64(reply, BODY + 8u, (uint64_t)(uintptr_t)&__stub_end);
  put32(reply, BODY + 16u, nonce);
  /* MISRA C:2012 11.1, deviation S5 (cppcheck does not report it): the hooks' addresses */
  put64(reply, BODY + 20u, (uint64_t)(uintptr_t)&UTVMDoneHook);
  put64(reply, BODY + 28u, (uint64_t)(uintptr_t)&UTVMConsoleHook);
  /* cppcheck-suppress misra-c2012-11.4 ; deviation S4 */
  put64(reply, BODY + 36u, (uint64_t)(uintptr_t)&__stub_code_end);
  *body = 44u;
  return ST_OK;
}

static uint8_t do_read(const uint8_t p[], size_t len, size_t *body) {
  uint8_t status = ST_BAD_ARGS;
  if (len >= 12u) {
    const uint64_t addr = get64(p, HEADER);
    const uint32_t count = get32(p, HEADER + 8u);
    if ((count <= MAX_DATA) && mem_ok(addr, count)) {
      volatile const uint8_t *const mem = mem_at(addr);
      size_t i;
      for (i = 0u; i < count; i++) {
        reply[BODY + i] = mem[i];
      }
      *body = count;
      status = ST_OK;
    }
  }
  return status;
}

/* After a WRITE: the bytes may be code the next CALL runs (RISC-V: fetches see the stores only
 * after fence.i; Cortex-M without caches sees them at once). */
static void written_code_may_run(void) {
#if defined(__riscv) && !defined(UTVM_SERIAL_TEST)
  __asm__ volatile(".option push\n\t.option arch, +zifencei\n\tfence.i\n\t.option pop" ::: "memory");
#else
  __asm__ volatile("" ::: "memory");
#endif
}

static uint8_t do_write(const uint8_t p[], size_t len) {
  uint8_t status = ST_BAD_ARGS;
  if ((len >= 8u) && ((len - 8u) <= MAX_DATA)) {
    const uint64_t addr = get64(p, HEADER);
    const size_t count = len - 8u;
    if (mem_ok(addr, count)) {
      volatile uint8_t *const mem = mem_at(addr);
      size_t i;
      for (i = 0u; i < count; i++) {
        mem[i] = p[HEADER + 8u + i];
      }
      written_code_may_run();
      status = ST_OK;
    }
  }
  return status;
}

static uint8_t do_call(const uint8_t p[], size_t len, size_t *body) {
  uint8_t status = ST_BAD_ARGS;
  if (len >= 16u) {
    const uint64_t pc = get64(p, HEADER);
    const uint64_t sp = get64(p, HEADER + 8u);
    if ((pc <= (uint64_t)UINTPTR_MAX) && (sp <= (uint64_t)UINTPTR_MAX)) {
      size_t i;
      call_on_stack((uintptr_t)pc, (uintptr_t)sp);
      uart_init(); /* the call may have used the UART (printf): keep it set up */
      for (i = 0u; i < 3u; i++) {
        put64(reply, BODY + (8u * i), (uint64_t)call_result[i]);
      }
      put32(reply, BODY + 24u, nonce); /* a device that restarted meanwhile answers 0 */
      *body = 28u;
      status = ST_OK;
    }
  }
  return status;
}

static uint8_t do_stats(size_t *body) {
  size_t i;
  for (i = 0u; i < STAT_COUNT; i++) {
    put32(reply, BODY + (4u * i), stats[i]);
  }
  *body = 4u * STAT_COUNT;
  return ST_OK;
}

/* CMD_RESET: start over (the host says hello again afterwards). */
#if defined(UTVM_SERIAL_TEST)
static uint32_t test_resets;
static void device_reset(void) { test_resets++; }
#else
static void __attribute__((noreturn)) device_reset(void) {
  spin(20000u); /* let the reply leave the UART */
#if defined(__riscv)
  __asm__ volatile("j _start");
#else
  /* cppcheck-suppress misra-c2012-11.4 ; deviation S2 */
  *(volatile uint32_t *)0xE000ED0Cu = 0x05FA0004u; /* AIRCR: SYSRESETREQ */
#endif
  for (;;) {
  }
}
#endif

/* CMD_SINK: the next N raw bytes are consumed unframed (the link's raw rate, for benchmarks);
 * rx_byte counts them down, then a second reply says all of them arrived. */
static uint32_t sink_left;

static void handle(const uint8_t p[], size_t n) { /* a request with a good CRC, n >= HEADER + CRC_LEN */
  static uint8_t last_seq; /* the host's seqs are 1..255: with no saved reply yet, 0 repeats nothing */
  const uint8_t seq = p[0];
  const uint8_t cmd = p[1];
  const size_t len = n - (HEADER + CRC_LEN);
  if ((seq == last_seq) && (reply_len > 0u)) { /* a retry of the request just done: the same reply */
    stats[STAT_REPEATS]++;
    send_frame(reply, reply_len);
  } else {
    uint8_t status = ST_OK;
    size_t body = 0u;
    uint32_t sink = 0u;
    last_seq = seq;
    stats[STAT_FRAMES]++;
    switch (cmd) {
      case CMD_HELLO:
        status = do_hello(p, len, &body);
        break;
      case CMD_PING:
        status = do_ping(&body);
        break;
      case CMD_READ:
        status = do_read(p, len, &body);
        break;
      case CMD_WRITE:
        status = do_write(p, len);
        break;
      case CMD_CALL:
        status = do_call(p, len, &body);
        break;
      case CMD_SINK:
        sink = (len >= 4u) ? get32(p, HEADER) : 0u;
        break;
      case CMD_RESET:
        break;
      case CMD_STATS:
        status = do_stats(&body);
        break;
      default:
        status = ST_UNKNOWN;
        break;
    }
    finish_reply(seq, cmd, status, body);
    if (cmd == CMD_SINK) {
      sink_left = sink;
      if (sink == 0u) {
        send_frame(reply, reply_len); /* the second reply: all (none) arrived */
      }
    } else if (cmd == CMD_RESET) {
      device_reset();
    } else {
      /* done */
    }
  }
}

/* A complete frame rx[0..got) arrived (got > 0): decode, check, answer. */
static void frame_received(const uint8_t rx[], size_t got) {
  static uint8_t payload[MAX_FRAME];
  const size_t n = cobs_decode(rx, got, payload, MAX_FRAME);
  if (n < (HEADER + CRC_LEN)) {
    stats[STAT_NOISE]++; /* not COBS, or too short to be a request: the host times out and retries */
  } else if (crc32(payload, n - CRC_LEN) != get32(payload, n - CRC_LEN)) { /* a NAK; the saved reply stays */
    uint8_t nak[BODY + CRC_LEN];
    stats[STAT_CRC]++;
    nak[0] = payload[0];
    nak[1] = (uint8_t)((payload[1] & 0x7Fu) | REPLY_FLAG);
    nak[2] = ST_BAD_CRC;
    put32(nak, BODY, crc32(nak, BODY));
    send_frame(nak, BODY + CRC_LEN);
  } else {
    handle(payload, n);
  }
}

/* One byte from the UART. */
static void rx_byte(uint8_t c) {
  static uint8_t rx[RX_CAP];
  static size_t got;
  static bool overrun;
  if (sink_left > 0u) {
    sink_left--;
    if (sink_left == 0u) {
      send_frame(reply, reply_len); /* the second reply: all of them arrived */
    }
  } else if (c != 0u) {
    if (got < RX_CAP) {
      rx[got] = c;
      got++;
    } else {
      overrun = true;
    }
  } else { /* a frame ended */
    if (overrun) {
      stats[STAT_OVERRUNS]++;
    } else if (got > 0u) {
      frame_received(rx, got);
    } else {
      /* an empty frame (a lone delimiter): nothing to answer */
    }
    got = 0u;
    overrun = false;
  }
}

#if !defined(UTVM_SERIAL_TEST)
int main(void) {
  lock_guard();
  uart_init();
  for (;;) {
    while (!uart_ready()) { /* between polls, a short spin: under an emulator each UART access stops the
                               world for the device model, and polling flat out starves its I/O */
      spin(64u);
    }
    rx_byte(uart_get());
  }
}
#endif
