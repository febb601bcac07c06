/* Signatures fixture for tests/test_elf.py: the test finds the marker comment in vadd by text. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct pair {
    int8_t tag;
    int64_t value;
    int16_t small;
};

typedef struct pair pair_t;

static int32_t helper(int32_t x) { return x * 3 + 1; }

void vadd(const float *a, const float *b, float *c, int32_t n) {
    for (int32_t i = 0; i < n; ++i) {
        c[i] = a[i] + b[i];  /* MARKER_LINE */
    }
}

int32_t dot_i8(const int8_t *a, const int8_t *b, int32_t n) {
    int32_t acc = 0;
    for (int32_t i = 0; i < n; ++i) acc += a[i] * b[i];
    return helper(acc);
}

double mixed(int8_t a, uint16_t b, int32_t c, int64_t d, float e, double f) {
    return a + b + c + (double)d + e + f;
}

void *rawp(void *p, const void *q) { return q ? p : NULL; }

int64_t take_pair(struct pair p, const pair_t *pp) { return p.value + pp->small; }

int32_t sum_va(int32_t count, ...) {
    va_list ap;
    va_start(ap, count);
    int32_t s = 0;
    for (int32_t i = 0; i < count; ++i) s += va_arg(ap, int32_t);
    va_end(ap);
    return s;
}

char chars(char c, signed char s, unsigned char u) { return (char)(c + s + u); }

_Bool flag(_Bool b, size_t n) { return b && n; }

/* External and inlined into use_scale at -O2: the out-of-line copy's DWARF refers to an
 * abstract instance through DW_AT_abstract_origin. */
int32_t scale(int32_t x, float k) { return (int32_t)((float)x * k) + helper(x); }

int32_t use_scale(int32_t y) { return scale(y, 2.0f) + 1; }

enum mode { MODE_LOW = -1, MODE_HIGH = 1 };

/* Qualifiers, pointers to pointers, a function pointer, an enum. */
int32_t quals(const char **names, char *const *argv, float *restrict out, volatile int32_t *reg,
              int32_t (*cb)(int32_t, float), enum mode m, const pair_t *const cp) {
    return cb((int32_t)m, out[0]) + (int32_t)names[0][0] + argv[0][0] + *reg + cp->small;
}
