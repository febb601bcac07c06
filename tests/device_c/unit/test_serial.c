/* Unit tests of the serial stub (device_stubs/programs/serial/utvm_serial_stub.c), built for the host with
 * ASan and UBSan by `python tests/device_c/checks.py unit serial`: the COBS decoder on its own
 * (round trips, over-long runs, zero codes, truncated frames, exact capacities), then the frame
 * handling a host can reach (bytes in through rx_byte, replies out of test_tx): every command,
 * retries, NAKs, noise and overruns, SINK, console frames. main() returns 0 when all passed. */
#define UTVM_SERIAL_TEST 1
#include "../../../device_stubs/programs/serial/utvm_serial_stub.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint8_t __stub_end;      /* the linker script's symbols, which PING reports */
uint8_t __stub_code_end;

static int failures;
static int checks;

#define CHECK(cond)                                                      \
  do {                                                                   \
    checks++;                                                            \
    if (!(cond)) {                                                       \
      failures++;                                                        \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                    \
  } while (0)

/* ---- a reference COBS (as utvm_host/transport/serial.py), independent of the stub's ---------- */
static size_t ref_encode(const uint8_t *in, size_t n, uint8_t *out) { /* without the delimiter */
  size_t i = 0, o = 0;
  while (i <= n) {
    size_t run = 0;
    while (i + run < n && in[i + run] != 0 && run < 254) run++;
    out[o++] = (uint8_t)(run + 1);
    memcpy(out + o, in + i, run);
    o += run;
    i += run;
    if (run < 254) i++;
  }
  return o;
}

static long ref_decode(const uint8_t *in, size_t n, uint8_t *out) { /* -1: malformed */
  size_t i = 0, o = 0;
  if (n == 0) return -1;
  while (i < n) {
    size_t code = in[i++];
    if (code == 0 || i + code - 1 > n) return -1;
    memcpy(out + o, in + i, code - 1);
    o += code - 1;
    i += code - 1;
    if (code < 255 && i < n) out[o++] = 0;
  }
  return (long)o;
}

static uint32_t ref_crc32(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

/* Decode with the stub's decoder into a heap buffer of exactly cap bytes (ASan sees any byte
 * written past it), and into a larger buffer with a canary after cap (checked here). */
static size_t decode_checked(const uint8_t *in, size_t n, size_t cap, uint8_t *copy) {
  uint8_t *exact = malloc(cap ? cap : 1);
  uint8_t *fenced = malloc(cap + 64);
  memset(fenced, 0xA5, cap + 64);
  size_t got = cobs_decode(in, n, exact, cap);
  size_t got2 = cobs_decode(in, n, fenced, cap);
  CHECK(got == got2);
  CHECK(got <= cap);
  for (size_t i = cap; i < cap + 64; i++) {
    if (fenced[i] != 0xA5) {
      CHECK(!"the decoder wrote past its capacity");
      break;
    }
  }
  if (copy != NULL && got > 0) memcpy(copy, exact, got);
  free(exact);
  free(fenced);
  return got;
}

/* ---- the decoder on its own ------------------------------------------------------------------ */
static void fill(uint8_t *p, size_t n, int pattern, unsigned seed) {
  for (size_t i = 0; i < n; i++) {
    switch (pattern) {
      case 0: p[i] = 0; break;                                     /* all zeros */
      case 1: p[i] = (uint8_t)(1 + (i % 255)); break;              /* no zero at all */
      case 2: seed = seed * 1103515245u + 12345u; p[i] = (uint8_t)(seed >> 16); break;
      default: p[i] = (i % 7 == 3) ? 0 : 0xEE; break;              /* zeros now and then */
    }
  }
}

static void test_round_trips(void) {
  static const size_t sizes[] = {1, 2, 6, 100, 253, 254, 255, 256, 507, 508, 509, 1000, 1087, 1088};
  uint8_t data[2048], enc[2200], dec[2048];
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    for (int pattern = 0; pattern < 4; pattern++) {
      size_t n = sizes[s];
      fill(data, n, pattern, (unsigned)(n * 31 + (size_t)pattern));
      size_t e = ref_encode(data, n, enc);
      CHECK(memchr(enc, 0, e) == NULL);
      /* the stub's decoder undoes the reference encoder, with room to spare or exactly enough */
      CHECK(decode_checked(enc, e, MAX_FRAME + 100, dec) == n && memcmp(dec, data, n) == 0);
      CHECK(decode_checked(enc, e, n, dec) == n && memcmp(dec, data, n) == 0);
      /* one byte less room: refused, not truncated */
      CHECK(decode_checked(enc, e, n - 1, NULL) == 0);
      /* the stub's encoder (send_frame) gives what the reference decoder undoes */
      test_tx_len = 0;
      send_frame(data, n);
      CHECK(test_tx_len >= 2 && test_tx[test_tx_len - 1] == 0);
      CHECK(memchr(test_tx, 0, test_tx_len - 1) == NULL);
      CHECK(test_tx_len - 1 == e && memcmp(test_tx, enc, e) == 0);
      CHECK(ref_decode(test_tx, test_tx_len - 1, dec) == (long)n && memcmp(dec, data, n) == 0);
    }
  }
  /* the empty payload: one code byte */
  test_tx_len = 0;
  send_frame(data, 0);
  CHECK(test_tx_len == 2 && test_tx[0] == 1 && test_tx[1] == 0);
  test_tx_len = 0;
}

static void test_malformed_frames(void) {
  static uint8_t in[4096], out[4096];
  /* empty */
  CHECK(decode_checked(in, 0, 100, NULL) == 0);
  /* a zero code anywhere */
  in[0] = 0;
  CHECK(decode_checked(in, 1, 100, NULL) == 0);
  memcpy(in, "\x03\x41\x42\x00\x01", 5);
  CHECK(decode_checked(in, 5, 100, NULL) == 0);
  memcpy(in, "\x03\x41\x42\x01", 4); /* the same without the zero: "AB\0" */
  CHECK(decode_checked(in, 4, 100, out) == 3 && memcmp(out, "AB\0", 3) == 0);
  /* truncated: a code promising more bytes than the frame has */
  memcpy(in, "\x05\x41\x42", 3);
  CHECK(decode_checked(in, 3, 100, NULL) == 0);
  in[0] = 0xFF;
  memset(in + 1, 0x55, 200);
  CHECK(decode_checked(in, 201, 1000, NULL) == 0);
  CHECK(decode_checked(in, 1, 1000, NULL) == 0);
  /* a full block ends the frame exactly */
  memset(in + 1, 0x55, 254);
  CHECK(decode_checked(in, 255, 254, out) == 254 && out[0] == 0x55 && out[253] == 0x55);
  CHECK(decode_checked(in, 255, 253, NULL) == 0);
}

static void test_over_long_runs(void) {
  static uint8_t in[8192];
  /* codes of 1: every byte a zero; the decoded frame is one byte shorter than the run */
  memset(in, 0x01, sizeof in);
  for (size_t n = 1; n <= 1200; n += 7) {
    size_t want = n - 1;
    CHECK(decode_checked(in, n, MAX_FRAME, NULL) == (want <= MAX_FRAME && want > 0 ? want : 0));
  }
  CHECK(decode_checked(in, 1100, MAX_FRAME, NULL) == 0);     /* the bug: 1,099 zeros into 1,088 */
  CHECK(decode_checked(in, MAX_FRAME + 1, MAX_FRAME, NULL) == MAX_FRAME);
  CHECK(decode_checked(in, sizeof in, MAX_FRAME, NULL) == 0);
  /* full blocks of non-zero bytes, then a short one */
  size_t n = 0;
  for (int b = 0; b < 4; b++) {
    in[n++] = 0xFF;
    memset(in + n, 0xEE, 254);
    n += 254;
  }
  in[n++] = 0x54;
  memset(in + n, 0xEE, 0x53);
  n += 0x53;
  CHECK(n == 1104);
  CHECK(decode_checked(in, n, MAX_FRAME, NULL) == 0);        /* 1,099 bytes: too many */
  CHECK(decode_checked(in, n, 1099, NULL) == 1099);
  /* a long run of one non-zero byte value: codes and data alike */
  memset(in, 0x55, sizeof in);
  for (size_t m = 1; m < sizeof in; m += 97) {
    size_t got = decode_checked(in, m, MAX_FRAME, NULL);
    CHECK(got <= MAX_FRAME);
    CHECK(got == 0 || m % 0x55 == 0);                        /* only whole blocks decode */
  }
}

/* ---- frames through rx_byte ------------------------------------------------------------------ */
typedef struct {
  uint8_t seq, cmd, status;
  uint8_t body[MAX_FRAME];
  size_t len; /* of body */
} Reply;

static uint8_t next_seq = 0;

static void feed(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) rx_byte(p[i]);
}

static size_t send_request(uint8_t seq, uint8_t cmd, const uint8_t *body, size_t n, int corrupt_crc) {
  uint8_t payload[MAX_FRAME + 16], enc[MAX_FRAME + 32];
  payload[0] = seq;
  payload[1] = cmd;
  if (n > 0) memcpy(payload + 2, body, n);
  uint32_t crc = ref_crc32(payload, n + 2) ^ (corrupt_crc ? 1u : 0u);
  memcpy(payload + 2 + n, &crc, 4); /* the host is little-endian too */
  size_t e = ref_encode(payload, n + 6, enc);
  enc[e++] = 0;
  feed(enc, e);
  return e;
}

static uint8_t request(uint8_t cmd, const uint8_t *body, size_t n) {
  next_seq = (uint8_t)(next_seq % 255 + 1);
  send_request(next_seq, cmd, body, n, 0);
  return next_seq;
}

/* The frames the stub sent since the last call, decoded and CRC-checked (at most max). */
static size_t replies(Reply *out, size_t max) {
  size_t count = 0, start = 0;
  uint8_t dec[MAX_FRAME + 64];
  for (size_t i = 0; i < test_tx_len; i++) {
    if (test_tx[i] != 0) continue;
    long n = ref_decode(test_tx + start, i - start, dec);
    CHECK(n >= 6);
    if (n >= 6) {
      uint32_t crc;
      memcpy(&crc, dec + n - 4, 4);
      CHECK(crc == ref_crc32(dec, (size_t)n - 4));
      if (count < max) {
        out[count].seq = dec[0];
        out[count].cmd = dec[1];
        out[count].status = dec[2];
        out[count].len = (size_t)n - 7;
        memcpy(out[count].body, dec + 3, (size_t)n - 7);
      }
      count++;
    }
    start = i + 1;
  }
  CHECK(start == test_tx_len); /* nothing half sent */
  test_tx_len = 0;
  return count;
}

static Reply one_reply(uint8_t seq, uint8_t cmd) {
  static Reply r[4];
  size_t n = replies(r, 4);
  CHECK(n == 1);
  CHECK(r[0].seq == seq && r[0].cmd == (uint8_t)(cmd | 0x80));
  return r[0];
}

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }
static void set32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void set64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static void read_stats(uint32_t out[STAT_COUNT]) {
  uint8_t seq = request(CMD_STATS, NULL, 0);
  Reply r = one_reply(seq, CMD_STATS);
  CHECK(r.status == ST_OK && r.len == 4 * STAT_COUNT);
  for (size_t i = 0; i < STAT_COUNT; i++) out[i] = le32(r.body + 4 * i);
}

static void test_hello_ping(void) {
  uint8_t body[4];
  set32(body, 0x12345678u);
  uint8_t seq = request(CMD_HELLO, body, 4);
  Reply r = one_reply(seq, CMD_HELLO);
  CHECK(r.status == ST_OK && r.len == 4 && le32(r.body) == 0); /* fresh: no nonce yet */
  seq = request(CMD_PING, NULL, 0);
  r = one_reply(seq, CMD_PING);
  CHECK(r.status == ST_OK && r.len == 44);
  CHECK(le32(r.body) == STUB_VERSION && r.body[4] == sizeof(void *) && (r.body[6] | r.body[7] << 8) == MAX_DATA);
  CHECK(le64(r.body + 8) == (uint64_t)(uintptr_t)&__stub_end && le32(r.body + 16) == 0x12345678u);
  CHECK(le64(r.body + 20) == (uint64_t)(uintptr_t)&UTVMDoneHook);
  CHECK(le64(r.body + 28) == (uint64_t)(uintptr_t)&UTVMConsoleHook);
  CHECK(le64(r.body + 36) == (uint64_t)(uintptr_t)&__stub_code_end);
}

static void test_read_write(void) {
  uint8_t body[8 + MAX_DATA + 8];
  for (int i = 0; i < 300; i++) body[8 + i] = (uint8_t)(i * 7 + 1);
  set64(body, 0x10000u + 100);
  uint8_t seq = request(CMD_WRITE, body, 8 + 300);
  Reply r = one_reply(seq, CMD_WRITE);
  CHECK(r.status == ST_OK && r.len == 0);
  CHECK(memcmp(test_mem + 100, body + 8, 300) == 0);
  set64(body, 0x10000u + 100);
  set32(body + 8, 300);
  seq = request(CMD_READ, body, 12);
  r = one_reply(seq, CMD_READ);
  CHECK(r.status == ST_OK && r.len == 300 && memcmp(r.body, test_mem + 100, 300) == 0);
  /* the whole window, in MAX_DATA pieces, up to its last byte */
  set64(body, 0x10000u + 4096 - MAX_DATA);
  set32(body + 8, MAX_DATA);
  seq = request(CMD_READ, body, 12);
  r = one_reply(seq, CMD_READ);
  CHECK(r.status == ST_OK && r.len == MAX_DATA);
  /* refused: past the window, more than MAX_DATA, too short a request */
  set64(body, 0x10000u + 4096 - 10);
  set32(body + 8, 11);
  seq = request(CMD_READ, body, 12);
  CHECK(one_reply(seq, CMD_READ).status == ST_BAD_ARGS);
  set64(body, 0x10000u);
  set32(body + 8, MAX_DATA + 1);
  seq = request(CMD_READ, body, 12);
  CHECK(one_reply(seq, CMD_READ).status == ST_BAD_ARGS);
  seq = request(CMD_READ, body, 11);
  CHECK(one_reply(seq, CMD_READ).status == ST_BAD_ARGS);
  set64(body, UINT64_MAX - 3);
  set32(body + 8, 8);
  seq = request(CMD_READ, body, 12);
  CHECK(one_reply(seq, CMD_READ).status == ST_BAD_ARGS);
  set64(body, 0x10000u + 4000);
  seq = request(CMD_WRITE, body, 8 + 200);                 /* runs past the window's end */
  CHECK(one_reply(seq, CMD_WRITE).status == ST_BAD_ARGS);
  seq = request(CMD_WRITE, body, 7);
  CHECK(one_reply(seq, CMD_WRITE).status == ST_BAD_ARGS);
  set64(body, 0x10000u);
  memset(body + 8, 0x77, MAX_DATA + 1);
  seq = request(CMD_WRITE, body, 8 + MAX_DATA + 1);        /* one byte more than a WRITE carries */
  CHECK(one_reply(seq, CMD_WRITE).status == ST_BAD_ARGS);
  CHECK(test_mem[0] != 0x77);
  seq = request(CMD_WRITE, body, 8 + MAX_DATA);
  CHECK(one_reply(seq, CMD_WRITE).status == ST_OK && test_mem[MAX_DATA - 1] == 0x77 && test_mem[MAX_DATA] != 0x77);
}

static void test_retries_naks_noise_overruns(void) {
  uint32_t s0[STAT_COUNT], s1[STAT_COUNT];
  uint8_t body[16];
  read_stats(s0);
  /* a request, then the same seq again: the saved reply, not done again */
  set32(body, 0xCAFEF00Du);
  uint8_t seq = request(CMD_HELLO, body, 4);
  Reply first = one_reply(seq, CMD_HELLO);
  set32(body, 0x0BADBEEFu);
  send_request(seq, CMD_HELLO, body, 4, 0);
  Reply again = one_reply(seq, CMD_HELLO);
  CHECK(again.len == first.len && memcmp(again.body, first.body, first.len) == 0);
  CHECK(nonce == 0xCAFEF00Du);
  /* a corrupted CRC: a NAK with the seq, and the saved reply stays */
  send_request((uint8_t)(seq + 1), CMD_PING, NULL, 0, 1);
  Reply nak = one_reply((uint8_t)(seq + 1), CMD_PING);
  CHECK(nak.status == ST_BAD_CRC && nak.len == 0);
  /* noise: a malformed frame, a too-short one, a lone delimiter, then over-long runs of
   * non-zero bytes (within and beyond the receive buffer), each ended by a delimiter */
  static uint8_t noise[6000];
  feed((const uint8_t *)"\x05\x01\x02\x00", 4);
  feed((const uint8_t *)"\x03\x01\x02\x00", 4);
  feed((const uint8_t *)"\x00", 1);
  memset(noise, 0x01, 1100);
  feed(noise, 1100);
  rx_byte(0);
  size_t n = 0;
  for (int b = 0; b < 4; b++) {
    noise[n++] = 0xFF;
    memset(noise + n, 0xEE, 254);
    n += 254;
  }
  noise[n++] = 0x54;
  memset(noise + n, 0xEE, 0x53);
  n += 0x53;
  feed(noise, n);
  rx_byte(0);
  memset(noise, 0x55, sizeof noise);
  feed(noise, sizeof noise);
  rx_byte(0);
  /* a frame exactly as long as the receive buffer (1,088 zeros: a bad CRC) is not an overrun */
  memset(noise, 0x01, RX_CAP);
  feed(noise, RX_CAP);
  rx_byte(0);
  Reply r[4];
  CHECK(replies(r, 4) == 1 && r[0].status == ST_BAD_CRC && r[0].seq == 0);
  /* the saved reply survived all of it */
  send_request(seq, CMD_HELLO, body, 4, 0);
  again = one_reply(seq, CMD_HELLO);
  CHECK(again.status == ST_OK && again.len == first.len && memcmp(again.body, first.body, first.len) == 0);
  read_stats(s1);
  CHECK(s1[STAT_FRAMES] == s0[STAT_FRAMES] + 2);   /* the HELLO and this STATS */
  CHECK(s1[STAT_CRC] == s0[STAT_CRC] + 2);
  CHECK(s1[STAT_REPEATS] == s0[STAT_REPEATS] + 2);
  CHECK(s1[STAT_OVERRUNS] == s0[STAT_OVERRUNS] + 3);
  CHECK(s1[STAT_NOISE] == s0[STAT_NOISE] + 2);
}

static void test_call_sink_reset_unknown(void) {
  uint8_t body[16];
  set64(body, 0x8000u);
  set64(body + 8, 0x9000u);
  uint8_t seq = request(CMD_CALL, body, 16);
  Reply r = one_reply(seq, CMD_CALL);
  CHECK(r.status == ST_OK && r.len == 28);
  CHECK(le64(r.body) == (0x8000u ^ 0x9000u) && le64(r.body + 8) == 0x8000u && le64(r.body + 16) == 0x9000u);
  CHECK(le32(r.body + 24) == nonce && !call_active);
  seq = request(CMD_CALL, body, 15);
  CHECK(one_reply(seq, CMD_CALL).status == ST_BAD_ARGS);
  UTVMDoneHook(1, 2, 3); /* outside a call: returns */
  /* SINK: raw bytes, zeros included, then the second reply */
  set32(body, 1000);
  seq = request(CMD_SINK, body, 4);
  r = one_reply(seq, CMD_SINK);
  CHECK(r.status == ST_OK);
  uint8_t raw[1000];
  memset(raw, 0, sizeof raw);
  feed(raw, 999);
  CHECK(test_tx_len == 0);
  rx_byte(0);
  one_reply(seq, CMD_SINK);
  set32(body, 0);
  seq = request(CMD_SINK, body, 4);
  Reply two[2];
  CHECK(replies(two, 2) == 2 && two[0].seq == seq && two[1].seq == seq);
  /* RESET answers, then resets */
  uint32_t resets = test_resets;
  seq = request(CMD_RESET, NULL, 0);
  CHECK(one_reply(seq, CMD_RESET).status == ST_OK && test_resets == resets + 1);
  seq = request(0x42, NULL, 0);
  CHECK(one_reply(seq, 0x42).status == ST_UNKNOWN);
  /* seq 0 then 255 then 1: the counter wraps like the host's */
  next_seq = 254;
  seq = request(CMD_PING, NULL, 0);
  CHECK(seq == 255 && one_reply(seq, CMD_PING).status == ST_OK);
  seq = request(CMD_PING, NULL, 0);
  CHECK(seq == 1 && one_reply(seq, CMD_PING).status == ST_OK);
}

static void test_console(void) {
  char text[300];
  for (int i = 0; i < 300; i++) text[i] = (char)('a' + i % 26);
  UTVMConsoleHook("hello\n", 6);
  Reply r[4];
  CHECK(replies(r, 4) == 1 && r[0].seq == 0 && r[0].cmd == (CMD_CONSOLE | 0x80));
  /* the body of a console frame has no status byte: it is all text */
  CHECK(r[0].status == 'h' && r[0].len == 5 && memcmp(r[0].body, "ello\n", 5) == 0);
  UTVMConsoleHook(text, 300);
  CHECK(replies(r, 4) == 3 && r[0].len + r[1].len + r[2].len + 3 == 300);
  UTVMConsoleHook(text, 0);
  CHECK(test_tx_len == 0);
}

int main(void) {
  test_round_trips();
  test_malformed_frames();
  test_over_long_runs();
  test_hello_ping();
  test_read_write();
  test_retries_naks_noise_overruns();
  test_call_sink_reset_unknown();
  test_console();
  printf("test_serial: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
