/* Identical kernels: gcc -O2 folds them (identical code folding, -fipa-icf). */
void scale_a(float *x, int n) { for (int i = 0; i < n; i++) x[i] *= 2.0f; }
void scale_b(float *x, int n) { for (int i = 0; i < n; i++) x[i] *= 2.0f; }
int plus7_a(int a) { return a + 7; }
int plus7_b(int a) { return a + 7; }
