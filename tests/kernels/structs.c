#include <stdint.h>
struct pair { int32_t a, b; };
int32_t sum_pair(struct pair p) { return p.a + p.b; }
int32_t sum_pair_ptr(const struct pair *p) { return p->a + p->b; }
int32_t sum_var(int32_t n, ...) { return n; }
