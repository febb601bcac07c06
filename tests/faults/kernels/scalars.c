#include <stdbool.h>
int pick(bool b, int x) { return b ? x : -x; }
float halve(float x) { return x / 2.0f; }
double twice(double x) { return 2.0 * x; }
