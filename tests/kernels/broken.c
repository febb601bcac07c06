#include <stdint.h>
int32_t broken(int32_t x) { return x + ; }
