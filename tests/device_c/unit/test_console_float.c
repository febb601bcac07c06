/* The console's unit test (test_console.c) with %f %e %g compiled in (cfg["console_float"]). */
#define UTVM_CONSOLE_FLOAT
#include "test_console.c"
