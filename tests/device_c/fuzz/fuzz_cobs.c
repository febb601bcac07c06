/* libFuzzer harness for the serial stub's frame decoding and handling
 * (device_stubs/programs/serial/utvm_serial_stub.c, built for the host with UTVM_SERIAL_TEST):
 *
 * 1. The whole input is a COBS frame for cobs_decode, into a heap buffer of exactly the capacity
 *    given (ASan sees a byte written past it), with a generous and a tight capacity. A decoded
 *    payload must fit, and encoding it again must decode to the same bytes.
 * 2. The input is also a list of records, each fed to the stub byte by byte through rx_byte:
 *      kind (1) | length (2, little-endian) | bytes
 *    kind & 3 == 0: bytes are a request payload (seq, command, body): a correct CRC-32 is
 *                   appended and the frame COBS-encoded and delimited, as the host sends it;
 *                1: the same with a wrong CRC;
 *                2 or 3: bytes go on the line as they are (noise, partial frames, SINK data).
 *    Requests reach every command: READ and WRITE work on the test build's 4 KiB window at
 *    0x10000 (other addresses are refused there), CALL returns through UTVMDoneHook. Everything
 *    the stub sends must be well-formed frames with a good CRC.
 *
 * Seeds: tests/device_c/corpus/cobs/ (records for each command, noise, long runs). */
#define UTVM_SERIAL_TEST 1
#include "../../../device_stubs/programs/serial/utvm_serial_stub.c"

#include <stdlib.h>
#include <string.h>

uint8_t __stub_end;
uint8_t __stub_code_end;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t ref_encode(const uint8_t *in, size_t n, uint8_t *out) {
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

static void must(int cond) {
  if (!cond) abort();
}

/* Every frame the stub sent is COBS with a good CRC; then forget them. */
static void drain(void) {
  static uint8_t dec[sizeof(test_tx)];
  size_t start = 0;
  for (size_t i = 0; i < test_tx_len; i++) {
    if (test_tx[i] != 0) continue;
    size_t n = cobs_decode(test_tx + start, i - start, dec, sizeof dec);
    must(n >= 6 && n <= MAX_FRAME);
    must(crc32(dec, n - 4) == get32(dec, n - 4));
    must(dec[1] & 0x80);
    start = i + 1;
  }
  must(start == test_tx_len);
  test_tx_len = 0;
}

static void decode_alone(const uint8_t *data, size_t size, size_t cap) {
  uint8_t *out = malloc(cap ? cap : 1);
  size_t n = cobs_decode(data, size, out, cap);
  must(n <= cap);
  must(n == 0 || n < size); /* COBS output is always shorter than its input */
  if (n > 0) {
    uint8_t *enc = malloc(n + n / 254 + 2);
    uint8_t *again = malloc(n);
    size_t e = ref_encode(out, n, enc);
    must(cobs_decode(enc, e, again, n) == n && memcmp(again, out, n) == 0);
    free(enc);
    free(again);
  }
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t payload[MAX_FRAME + 64], frame[2 * MAX_FRAME];
  /* 1: the decoder on its own */
  decode_alone(data, size, size);
  decode_alone(data, size, size > 0 ? data[0] : 0);
  decode_alone(data, size, MAX_FRAME);

  /* 2: the frame handler, from a clean state */
  sink_left = 0;
  rx_byte(0); /* ends whatever the last input left half received */
  reply_len = 0;
  nonce = 0;
  memset(stats, 0, sizeof stats);
  memset(test_mem, 0, sizeof test_mem);
  test_tx_len = 0;
  size_t at = 0;
  while (at + 3 <= size) {
    uint8_t kind = data[at];
    size_t len = (size_t)data[at + 1] | (size_t)data[at + 2] << 8;
    at += 3;
    if (len > size - at) len = size - at;
    if ((kind & 2) != 0) {
      for (size_t i = 0; i < len; i++) {
        rx_byte(data[at + i]);
        if (test_tx_len > sizeof test_tx / 2) drain();
      }
    } else if (len <= MAX_FRAME) {
      memcpy(payload, data + at, len);
      uint32_t crc = crc32(payload, len) ^ (kind & 1u);
      put32(payload, len, crc);
      size_t e = ref_encode(payload, len + 4, frame);
      frame[e++] = 0;
      for (size_t i = 0; i < e; i++) rx_byte(frame[i]);
    }
    drain();
    at += len;
  }
  must(stats[STAT_FRAMES] + stats[STAT_CRC] + stats[STAT_REPEATS] <= size);
  return 0;
}
