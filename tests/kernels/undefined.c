#include <stdint.h>
extern int32_t nowhere_defined(int32_t);
extern int32_t also_missing;
int32_t calls_nowhere(int32_t x) { return nowhere_defined(x) + also_missing; }
