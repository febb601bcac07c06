/* Conformance fixture for tests/test_elf.py: globals, statics, bss, const data, an undefined
 * (weak) reference.  Its values are read back by the read() test. */
int counter = 3;
static int hidden = 7;
float bss_buf[64];
const unsigned short table[5] = {1, 2, 3, 4, 5};

extern int external_fn(int) __attribute__((weak));

static int twice(int x) { return 2 * x + hidden; }

int entry(int x) {
    counter += twice(x);
    bss_buf[x & 63] = (float)x;
    return table[x % 5];
}

int calls_ext(int y) { return external_fn ? external_fn(y) : y; }
