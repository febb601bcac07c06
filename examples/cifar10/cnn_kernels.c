/* int8 CNN layers with CMSIS-NN's arithmetic (arm_convolve_HWC_q7_basic, arm_maxpool_q7_HWC,
 * arm_avepool_q7_HWC, arm_fully_connected_q7, arm_relu_q7), in portable C for every target.
 *
 * Tensors are HWC, square (dim x dim x ch). Weights are [ch_out][k][k][ch_in] (conv) and
 * [dim_out][dim_in] (dense). A layer's accumulator starts at (bias << bias_shift) plus half an
 * output step (rounding), adds the int8 products in int32, shifts right by out_shift
 * (arithmetic) and saturates to int8. The graph executor calls these with inputs, outputs,
 * then the attributes in order (see cifar10.json). */
#include <stdint.h>

static inline int8_t sat8(int32_t v) { return (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v); }

void conv_hwc_s8(const int8_t *in, const int8_t *wt, const int8_t *bias, int8_t *out, int32_t dim,
                 int32_t ch_in, int32_t ch_out, int32_t k, int32_t pad, int32_t stride, int32_t out_dim,
                 int32_t bias_shift, int32_t out_shift, int32_t relu) {
  for (int32_t oy = 0; oy < out_dim; oy++) {
    for (int32_t ox = 0; ox < out_dim; ox++) {
      for (int32_t co = 0; co < ch_out; co++) {
        int32_t acc = ((int32_t)bias[co] << bias_shift) + (out_shift > 0 ? 1 << (out_shift - 1) : 0);
        const int8_t *w = wt + co * k * k * ch_in;
        for (int32_t ky = 0; ky < k; ky++) {
          int32_t iy = oy * stride + ky - pad;
          if (iy < 0 || iy >= dim) continue;
          for (int32_t kx = 0; kx < k; kx++) {
            int32_t ix = ox * stride + kx - pad;
            if (ix < 0 || ix >= dim) continue;
            const int8_t *x = in + (iy * dim + ix) * ch_in;
            const int8_t *wk = w + (ky * k + kx) * ch_in;
            for (int32_t ci = 0; ci < ch_in; ci++) acc += (int32_t)x[ci] * wk[ci];
          }
        }
        int8_t v = sat8(acc >> out_shift);
        out[(oy * out_dim + ox) * ch_out + co] = (relu && v < 0) ? 0 : v;
      }
    }
  }
}

/* Pooling over a k x k window clipped to the input (padding never counts). */
void maxpool_hwc_s8(const int8_t *in, int8_t *out, int32_t dim, int32_t ch, int32_t k, int32_t pad,
                    int32_t stride, int32_t out_dim) {
  for (int32_t oy = 0; oy < out_dim; oy++) {
    for (int32_t ox = 0; ox < out_dim; ox++) {
      for (int32_t c = 0; c < ch; c++) {
        int32_t best = -128;
        for (int32_t iy = oy * stride - pad; iy < oy * stride - pad + k; iy++) {
          if (iy < 0 || iy >= dim) continue;
          for (int32_t ix = ox * stride - pad; ix < ox * stride - pad + k; ix++) {
            if (ix < 0 || ix >= dim) continue;
            int32_t v = in[(iy * dim + ix) * ch + c];
            if (v > best) best = v;
          }
        }
        out[(oy * out_dim + ox) * ch + c] = (int8_t)best;
      }
    }
  }
}

/* The mean of the valid window elements, truncated toward zero (C division). */
void avgpool_hwc_s8(const int8_t *in, int8_t *out, int32_t dim, int32_t ch, int32_t k, int32_t pad,
                    int32_t stride, int32_t out_dim) {
  for (int32_t oy = 0; oy < out_dim; oy++) {
    for (int32_t ox = 0; ox < out_dim; ox++) {
      for (int32_t c = 0; c < ch; c++) {
        int32_t sum = 0, count = 0;
        for (int32_t iy = oy * stride - pad; iy < oy * stride - pad + k; iy++) {
          if (iy < 0 || iy >= dim) continue;
          for (int32_t ix = ox * stride - pad; ix < ox * stride - pad + k; ix++) {
            if (ix < 0 || ix >= dim) continue;
            sum += in[(iy * dim + ix) * ch + c];
            count++;
          }
        }
        out[(oy * out_dim + ox) * ch + c] = (int8_t)(count ? sum / count : 0);
      }
    }
  }
}

void dense_s8(const int8_t *in, const int8_t *wt, const int8_t *bias, int8_t *out, int32_t dim_in,
              int32_t dim_out, int32_t bias_shift, int32_t out_shift) {
  for (int32_t o = 0; o < dim_out; o++) {
    int32_t acc = ((int32_t)bias[o] << bias_shift) + (out_shift > 0 ? 1 << (out_shift - 1) : 0);
    const int8_t *w = wt + o * dim_in;
    for (int32_t i = 0; i < dim_in; i++) acc += (int32_t)in[i] * w[i];
    out[o] = sat8(acc >> out_shift);
  }
}
