#include <stdint.h>

/* C[n x n] = A[n x n] @ B[n x n], row-major float32 */
void matmul(const float *a, const float *b, float *c, int32_t n) {
  for (int32_t i = 0; i < n; i++) {
    for (int32_t j = 0; j < n; j++) {
      float acc = 0.0f;
      for (int32_t k = 0; k < n; k++) acc += a[i * n + k] * b[k * n + j];
      c[i * n + j] = acc;
    }
  }
}

/* int8 matmul with int32 accumulation */
void matmul_i8(const int8_t *a, const int8_t *b, int32_t *c, int32_t n) {
  for (int32_t i = 0; i < n; i++) {
    for (int32_t j = 0; j < n; j++) {
      int32_t acc = 0;
      for (int32_t k = 0; k < n; k++) acc += (int32_t)a[i * n + k] * (int32_t)b[k * n + j];
      c[i * n + j] = acc;
    }
  }
}
