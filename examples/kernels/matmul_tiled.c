#include <stdint.h>

/* Tiled float32 matmul C = A @ B (n x n, row-major). TILE_M, TILE_N and UNROLL are the knobs
 * a tuning loop turns (examples/tune_matmul.py); WRONG=1 makes a fast but wrong variant. */
#ifndef TILE_M
#define TILE_M 4
#endif
#ifndef TILE_N
#define TILE_N 4
#endif
#ifndef UNROLL
#define UNROLL 1
#endif

void matmul(const float *a, const float *b, float *c, int32_t n) {
  for (int32_t i0 = 0; i0 < n; i0 += TILE_M) {
    for (int32_t j0 = 0; j0 < n; j0 += TILE_N) {
      for (int32_t i = i0; i < i0 + TILE_M && i < n; i++) {
        for (int32_t j = j0; j < j0 + TILE_N && j < n; j++) {
          float acc = 0.0f;
          int32_t k = 0;
#if UNROLL >= 2
          for (; k + UNROLL <= n; k += UNROLL) {
            for (int32_t u = 0; u < UNROLL; u++) acc += a[i * n + k + u] * b[(k + u) * n + j];
          }
#endif
          for (; k < n; k++) acc += a[i * n + k] * b[k * n + j];
#if defined(WRONG) && WRONG
          acc *= 0.5f;
#endif
          c[i * n + j] = acc;
        }
      }
    }
  }
}
