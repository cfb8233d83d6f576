#pragma once
// OpenCL C 1.2 source of batch normalization over channels (layers/batch_norm.hpp): x is n positions
// (samples x H x W) of C channels, channels-last. Work-groups of 32 channels reduce over slices of
// the positions; element-wise kernels apply the per-channel results. Fixed formats sum x and x^2 in
// 64-bit integers (exact, like the CPU's double sums of integers); fp32 sums in float, in another
// order than the CPU, so its statistics agree to rounding only.
// Build options: -DTQ=float|char|short, -DFIXED=0|1, -DNVIDIA_PTX (last_group_cl.hpp).
#include "pbnn/opencl/kernels/join.hpp"
#include "pbnn/opencl/kernels/last_group_cl.hpp"
#include "pbnn/opencl/kernels/slice_sum_cl.hpp"

namespace pbnn::opencl::kernels {

inline constexpr char batch_norm_body_source[] = R"CLC(
// The reductions over positions: a work-group sums BN_CT consecutive channels (coalesced reads of
// channels-last rows) over BN_RW rows at a time of one slice of the positions. With one slice the
// group finishes the channel itself; with more, slices' partial sums go to `partial` ([2][slices][C])
// and the last group of the channel tile to finish adds them (in slice order: the result does not
// depend on the schedule), counting in counters[channel tile].
#define BN_CT 32
#define BN_RW 8
#if FIXED
typedef long TSUM;
#else
typedef float TSUM;
#endif

// Sums a and b over the rows of the work-group into row 0's items (uniform barrier).
#define DEFINE_ROW_SUM2(NAME, T)                                     \
  void NAME(T* a, T* b, __local T (*la)[BN_CT], __local T (*lb)[BN_CT]) { \
    const uint lx = get_local_id(0), ly = get_local_id(1);           \
    la[ly][lx] = *a;                                                 \
    lb[ly][lx] = *b;                                                 \
    barrier(CLK_LOCAL_MEM_FENCE);                                    \
    if (ly != 0) return;                                             \
    for (uint r = 1; r < BN_RW; ++r) {                               \
      *a += la[r][lx];                                               \
      *b += lb[r][lx];                                               \
    }                                                                \
  }
DEFINE_ROW_SUM2(row_sum2, TSUM)
DEFINE_ROW_SUM2(row_sum2_float, float)

// Channel c's totals of the slices' partial sums ([2][slices][C]) into row 0's items: each row adds
// every BN_RW-th slice, then the rows add each other's (uniform barrier).
#define DEFINE_SLICE_SUM2(NAME, T, ROW_SUM)                                                         \
  void NAME(volatile __global const T* partial, const uint slices, const uint C, const uint c, T* s1, T* s2, \
            __local T (*l1)[BN_CT], __local T (*l2)[BN_CT]) {                                       \
    *s1 = 0;                                                                                        \
    *s2 = 0;                                                                                        \
    if (c < C)                                                                                      \
      for (uint s = get_local_id(1); s < slices; s += BN_RW) {                                      \
        *s1 += partial[s * C + c];                                                                  \
        *s2 += partial[(slices + s) * C + c];                                                       \
      }                                                                                             \
    ROW_SUM(s1, s2, l1, l2);                                                                        \
  }
DEFINE_SLICE_SUM2(slice_sum2, TSUM, row_sum2)
DEFINE_SLICE_SUM2(slice_sum2_float, float, row_sum2_float)

// Per channel c: mean and 1/sigma (batch statistics from the sums of x and x^2 over npos positions
// in training and calibration, running ones in evaluation), running statistics updated with weight
// m_run (mode 0: training, 1: calibration; 2: evaluation, no update), and the affine (scale, shift)
// of y = scale x + shift and the threshold comparison (tscale x > tshift) of sign(y), with
// x = data 2^x_exp.
void bn_finish_statistics(const uint c, const TSUM s1, const TSUM s2, const uint npos, const int x_exp,
                          __global const TQ* gamma, __global const TQ* beta, const int param_exp, const float eps,
                          const float m_run, const int mode, __global float* running_mean,
                          __global float* running_var, __global float* mean, __global float* invstd,
                          __global float* scale, __global float* shift, __global float* tscale,
                          __global float* tshift) {
  const float xs = ldexp(1.0f, x_exp);
  float mu, is;
  if (mode == 2) {
    mu = running_mean[c];
    is = 1.0f / sqrt(running_var[c] + eps);
  } else {
    const float n = (float)npos;
    const float m = (float)s1 / n, var = fmax(0.0f, (float)s2 / n - m * m);
    mu = m * xs;
    const float var_real = var * xs * xs;
    is = 1.0f / sqrt(var_real + eps);
    const float unbiased = npos > 1 ? var_real * n / (n - 1.0f) : var_real;
    running_mean[c] = (1.0f - m_run) * running_mean[c] + m_run * mu;
    running_var[c] = (1.0f - m_run) * running_var[c] + m_run * unbiased;
  }
  mean[c] = mu;
  invstd[c] = is;
  const float ps = ldexp(1.0f, param_exp), g = (float)gamma[c] * ps, be = (float)beta[c] * ps;
  scale[c] = g * is * xs;
  shift[c] = be - g * is * mu;
  const float t = g != 0.0f ? mu - be / (g * is) : 0.0f;
  tscale[c] = g > 0.0f ? xs : g < 0.0f ? -xs : 0.0f;
  tshift[c] = g > 0.0f ? t : g < 0.0f ? -t : (be > 0.0f ? -1.0f : 1.0f);
}

#define BN_FINISH_ARGS                                                                                     \
  __global const TQ *gamma, __global const TQ *beta, const int param_exp, const float eps, const float m_run, \
      const int mode, __global float *running_mean, __global float *running_var, __global float *mean,        \
      __global float *invstd, __global float *scale, __global float *shift, __global float *tscale,           \
      __global float *tshift
#define BN_FINISH_PASS \
  gamma, beta, param_exp, eps, m_run, mode, running_mean, running_var, mean, invstd, scale, shift, tscale, tshift

// Work-group (channel tile, slice); evaluation (mode 2) reads no x and takes one slice.
__kernel __attribute__((reqd_work_group_size(BN_CT, BN_RW, 1)))
void bn_statistics(__global const TQ* x, __global const int* x_exp, const uint npos, const uint C, const uint slices,
                   __global TSUM* partial, volatile __global int* counters, BN_FINISH_ARGS) {
  __local TSUM l1[BN_RW][BN_CT], l2[BN_RW][BN_CT];
  __local int last;
  const uint c = get_group_id(0) * BN_CT + get_local_id(0), slice = get_group_id(1);
  const bool finishes = get_local_id(1) == 0 && c < C;  // the items that hold a channel's sums
  TSUM s1 = 0, s2 = 0;
  if (mode != 2 && c < C)
#pragma unroll 4
    for (uint p = slice * BN_RW + get_local_id(1); p < npos; p += slices * BN_RW) {
      const TSUM v = (TSUM)x[(size_t)p * C + c];
      s1 += v;
      s2 += v * v;
    }
  row_sum2(&s1, &s2, l1, l2);
  if (slices == 1) {
    if (finishes) bn_finish_statistics(c, s1, s2, npos, x_exp[0], BN_FINISH_PASS);
    return;
  }
  if (finishes) {
    partial[slice * C + c] = s1;
    partial[(slices + slice) * C + c] = s2;
  }
  if (!last_to_arrive(counters, get_group_id(0), slices, &last)) return;
  slice_sum2(partial, slices, C, c, &s1, &s2, l1, l2);
  if (finishes) bn_finish_statistics(c, s1, s2, npos, x_exp[0], BN_FINISH_PASS);
}

#if FIXED
// The float results of bn_affine and bn_grad_input are quantized next. For a tensor quantized in two
// launches (opencl/quantize.hpp), the kernel reduces their largest magnitude as it writes them, into
// maxima[slot], in place of a max_abs_float pass: groups of BN_EW work-items (the host launches them
// so), the bits of |value| as max_abs_float takes them, skipped where track_max is 0 (uniform).
#define BN_EW 256
#define MAXIMUM_ARGS , volatile __global uint* maxima, const uint slot, const int track_max
void group_max_into(float value, __local uint* scratch, volatile __global uint* maxima, uint slot, int track_max) {
  if (!track_max) return;
  const uint lid = get_local_id(0);
  scratch[lid] = as_uint(fabs(value));
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint s = BN_EW / 2; s > 0; s >>= 1) {
    if (lid < s) scratch[lid] = max(scratch[lid], scratch[lid + s]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lid == 0) atomic_max(maxima + slot, scratch[0]);
}
#define TRACK_MAXIMUM(VALUE)      \
  __local uint scratch[BN_EW];    \
  group_max_into(VALUE, scratch, maxima, slot, track_max)
#else
#define MAXIMUM_ARGS
#define TRACK_MAXIMUM(VALUE)
#endif

#if FIXED
// Fixed formats, a batch norm followed by an activation with a straight-through gradient: its dy
// passes back where the stored output y satisfies |y| <= 1 (binarize_cl.hpp's straight_through).
#define OUTPUT_ARGS , __global const TQ *y, __global const int *y_exp
bool passes_straight_through(__global const TQ* y, __global const int* y_exp, size_t i) {
  return fabs((float)y[i]) <= ldexp(1.0f, -y_exp[0]);
}
#else
#define OUTPUT_ARGS
#endif

__kernel void bn_affine(__global const TQ* x, const uint n, const uint C, __global const float* scale,
                        __global const float* shift, __global float* y MAXIMUM_ARGS) {
  const uint i = get_global_id(0);
  float out = 0.0f;
  if (i < n) {
    const uint c = i % C;
    out = scale[c] * (float)x[i] + shift[c];
    y[i] = out;
  }
  TRACK_MAXIMUM(out);
}

// sign(BN(x)) by comparison: +1 where tscale x > tshift, else -1; exponent 0.
__kernel void bn_threshold(__global const TQ* x, const uint n, const uint C, __global const float* tscale,
                           __global const float* tshift, __global TQ* out, __global int* out_exp) {
  const uint i = get_global_id(0);
  if (i == 0) out_exp[0] = 0;
  if (i >= n) return;
  const uint c = i % C;
  out[i] = tscale[c] * (float)x[i] > tshift[c] ? (TQ)1 : (TQ)-1;
}

// The activations fp32 training runs inside a batch norm's passes (opencl::fused_activation): 0 ReLU,
// 1 sign (sign(0) = -1), 2 progressive clamp(v y, -1, 1); the expressions of the activation kernels;
// -1 none (y itself).
float fused_activation(const int kind, const float y, const float v) {
  return kind < 0 ? y : kind == 0 ? max(y, 0.0f) : kind == 1 ? (y > 0.0f ? 1.0f : -1.0f) : clamp(v * y, -1.0f, 1.0f);
}
// Where the activation passes its dy back: ReLU where y > 0, the others (straight-through) where |y| <= 1.
bool passes_gradient(const int kind, const float y) { return kind == 0 ? y > 0.0f : fabs(y) <= 1.0f; }

// Per channel: dgamma = sum g xhat, dbeta = sum g, with xhat = (x xs - mean) invstd, g = dy 2^dy_exp
// (work-groups as bn_statistics). activation >= 0: dy is the gradient of that fused activation of
// this layer's output, and g the part of it the activation passes back; fp32 recomputes the output
// y = scale x + shift, fixed formats read it (OUTPUT_ARGS; straight-through activations only).
__kernel __attribute__((reqd_work_group_size(BN_CT, BN_RW, 1)))
void bn_grad_params(__global const TQ* x, __global const int* x_exp, __global const TQ* dy,
                    __global const int* dy_exp, const uint npos, const uint C, const uint slices,
                    __global const float* mean, __global const float* invstd, const int activation,
                    __global const float* scale, __global const float* shift, __global float* partial,
                    volatile __global int* counters, __global float* dgamma, __global float* dbeta OUTPUT_ARGS) {
  __local float l1[BN_RW][BN_CT], l2[BN_RW][BN_CT];
  __local int last;
  const uint c = get_group_id(0) * BN_CT + get_local_id(0), slice = get_group_id(1);
  const bool finishes = get_local_id(1) == 0 && c < C;
  float s1 = 0.0f, s2 = 0.0f;
  if (c < C) {
    const float a = ldexp(1.0f, x_exp[0]) * invstd[c], b = -mean[c] * invstd[c], gs = ldexp(1.0f, dy_exp[0]);
#if !FIXED
    const float ys = scale[c], yt = shift[c];
#endif
#pragma unroll 4
    for (uint p = slice * BN_RW + get_local_id(1); p < npos; p += slices * BN_RW) {
      const size_t i = (size_t)p * C + c;
      float g = (float)dy[i] * gs;
#if FIXED
      if (activation >= 0 && !passes_straight_through(y, y_exp, i)) g = 0.0f;
#else
      if (activation >= 0 && !passes_gradient(activation, ys * (float)x[i] + yt)) g = 0.0f;
#endif
      s1 += g * ((float)x[i] * a + b);
      s2 += g;
    }
  }
  row_sum2_float(&s1, &s2, l1, l2);
  if (slices > 1) {  // as bn_statistics
    if (finishes) {
      partial[slice * C + c] = s1;
      partial[(slices + slice) * C + c] = s2;
    }
    if (!last_to_arrive(counters, get_group_id(0), slices, &last)) return;
    slice_sum2_float(partial, slices, C, c, &s1, &s2, l1, l2);
  }
  if (finishes) {
    dgamma[c] = s1;
    dbeta[c] = s2;
  }
}

// dx = gamma invstd (g - (dbeta + xhat dgamma) / n), in float; fixed formats with straight_through:
// g of the activation's dy where |y| <= 1, as bn_grad_params.
#if FIXED
#define STRAIGHT_THROUGH_ARGS OUTPUT_ARGS, const int straight_through
#else
#define STRAIGHT_THROUGH_ARGS
#endif
__kernel void bn_grad_input(__global const TQ* x, __global const int* x_exp, __global const TQ* dy,
                            __global const int* dy_exp, const uint n, const uint C, __global const TQ* gamma,
                            const int param_exp, __global const float* mean, __global const float* invstd,
                            __global const float* dgamma, __global const float* dbeta STRAIGHT_THROUGH_ARGS,
                            __global float* dx MAXIMUM_ARGS) {
  const uint i = get_global_id(0);
  float out = 0.0f;
  if (i < n) {
    const uint c = i % C;
    const float is = invstd[c];
    const float xhat = (float)x[i] * (ldexp(1.0f, x_exp[0]) * is) + (-mean[c] * is);
    float g = (float)dy[i] * ldexp(1.0f, dy_exp[0]);
#if FIXED
    if (straight_through && !passes_straight_through(y, y_exp, i)) g = 0.0f;
#endif
    const float k = (float)gamma[c] * ldexp(1.0f, param_exp) * is;
    out = k * (g - (dbeta[c] + xhat * dgamma[c]) * (1.0f / (float)(n / C)));
    dx[i] = out;
  }
  TRACK_MAXIMUM(out);
}

#if !FIXED
// fp32 training of a batch norm followed by an activation, one pass each way; the normalized
// y = scale x + shift is recomputed, never stored (the expressions are bn_affine's and the
// activation kernels', so the results are the unfused ones).
__kernel void bn_affine_activate(__global const float* x, const uint n, const uint C, __global const float* scale,
                                 __global const float* shift, const int activation, const float v,
                                 __global float* out) {
  const uint i = get_global_id(0);
  if (i >= n) return;
  const uint c = i % C;
  out[i] = fused_activation(activation, scale[c] * x[i] + shift[c], v);
}

// bn_grad_input of the gradient the activation passes back, in place: d holds the activation's dy
// and becomes dx.
__kernel void bn_grad_input_through_activation(__global const float* x, const uint n, const uint C,
                                               __global const float* gamma, __global const float* mean,
                                               __global const float* invstd, const int activation,
                                               __global const float* scale, __global const float* shift,
                                               __global const float* dgamma, __global const float* dbeta,
                                               __global float* d) {
  const uint i = get_global_id(0);
  if (i >= n) return;
  const uint c = i % C;
  const float is = invstd[c];
  const float g = passes_gradient(activation, scale[c] * x[i] + shift[c]) ? d[i] : 0.0f;
  const float xhat = x[i] * is + (-mean[c] * is);
  const float k = gamma[c] * is;
  d[i] = k * (g - (dbeta[c] + xhat * dgamma[c]) * (1.0f / (float)(n / C)));
}
#endif

#if !FIXED
// fp32 training in one launch each way (device_batch_norm's single-launch passes): work-groups of
// BN_CT channels x BN_RW1 rows, (channel tile, slice). Every group sums its slice of the positions;
// the last of a tile to arrive adds the slices' sums (in slice order), finishes the tile's channels
// and releases the others (with more than one slice the host launches at most one group per compute
// unit of a device that runs them all at once), and then every group makes the element-wise pass over
// its own positions with the finished values: the expressions of the two-launch kernels.
#define BN_RW1 32

// Sums a and b over the rows of the work-group into row 0's items (uniform barriers).
void rows_sum2(float* a, float* b, __local float (*la)[BN_CT], __local float (*lb)[BN_CT]) {
  const uint lx = get_local_id(0), ly = get_local_id(1);
  la[ly][lx] = *a;
  lb[ly][lx] = *b;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint s = BN_RW1 / 2; s > 0; s >>= 1) {
    if (ly < s) {
      la[ly][lx] += la[ly + s][lx];
      lb[ly][lx] += lb[ly + s][lx];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  *a = la[0][lx];
  *b = lb[0][lx];
}

// The channel tile's totals of the groups' (s1, s2) into row 0's items of the group that finishes
// them (`finish`, run by row 0's items of the channels in range): with one slice, each group itself;
// else the last group of the tile to arrive, which then releases the tile's finished values to the
// others (wait_for_release). Afterwards every item of every group may read them. partial:
// [2][slices][C].
#define SUM_OVER_SLICES(s1, s2, l1, l2, partial, counters, flags, seq, finish)                          \
  rows_sum2(&s1, &s2, l1, l2);                                                                        \
  if (slices > 1) {                                                                                   \
    if (get_local_id(1) == 0 && c < C) {                                                              \
      partial[slice * C + c] = s1;                                                                    \
      partial[(slices + slice) * C + c] = s2;                                                         \
    }                                                                                                 \
    if (last_to_arrive(counters, tile, slices, &last)) {                                              \
      volatile __global const float* sums = partial;                                                  \
      s1 = 0.0f;                                                                                      \
      s2 = 0.0f;                                                                                      \
      if (c < C)                                                                                      \
        for (uint s = get_local_id(1); s < slices; s += BN_RW1) {                                     \
          s1 += sums[s * C + c];                                                                      \
          s2 += sums[(slices + s) * C + c];                                                           \
        }                                                                                             \
      rows_sum2(&s1, &s2, l1, l2);                                                                    \
      if (get_local_id(1) == 0 && c < C) finish;                                                      \
      release(flags, tile, seq);                                                                      \
    } else {                                                                                          \
      wait_for_release(flags, tile, seq);                                                             \
    }                                                                                                 \
  } else {                                                                                            \
    if (get_local_id(1) == 0 && c < C) finish;                                                        \
    barrier(CLK_GLOBAL_MEM_FENCE);                                                                    \
  }

// A max pool in front of the single-launch passes (pool > 0): position p of x is the window of pool x
// pool pixels of an image of height x width (x pool: its positions) at which the max_pool kernel puts
// it, and window offset k of channel c lies at image[window(p) + k's pixel]. 0: no pool.
#define POOL_ARGS const int pool, const int height, const int width
size_t pool_window(const uint p, const uint C, const uint c, POOL_ARGS) {
  const int ho = height / pool, wo = width / pool, ow = p % wo, oh = (p / wo) % ho, n = p / (wo * ho);
  return ((size_t)(n * height + oh * pool) * width + ow * pool) * C + c;
}
size_t pool_offset(const int k, const uint C, POOL_ARGS) { return ((size_t)(k / pool) * width + k % pool) * C; }

// Element i of a tensor that a product may have left as `splits` k slices (parts) of part_size
// values each, added as gemm_sum_splits adds them (0 splits: the tensor t itself).
#define SPLIT_ARGS __global const float *parts, const uint splits, const uint part_size
DEFINE_SLICE_SUM(slice_sum, float, float, SLICE_ELEMENT)
float summed(__global const float* t, SPLIT_ARGS, const size_t i) {
  return splits == 0 ? t[i] : slice_sum(0.0f, parts, splits, part_size, i);
}

// Statistics (training: batch ones, running ones moved by m_run), then out = the activation (-1:
// none) of y = scale x + shift: bn_statistics and bn_affine_activate (or bn_affine) in one launch.
// pool > 0: x is first written as the max pool of image (argmax kept), as max_pool does. SPLIT_ARGS:
// the product's k slices that x (pool: image) is the sum of; x is then written as that sum.
__kernel __attribute__((reqd_work_group_size(BN_CT, BN_RW1, 1)))
void bn_train_forward(__global float* x, const uint npos, const uint C, const uint slices,
                      __global float* partial, volatile __global int* counters, volatile __global int* flags,
                      const int seq, const int activation, const float v, __global float* out,
                      __global const float* image, __global uchar* argmax, POOL_ARGS, SPLIT_ARGS, BN_FINISH_ARGS) {
  __local float l1[BN_RW1][BN_CT], l2[BN_RW1][BN_CT];
  __local int last;
  const uint tile = get_group_id(0), c = tile * BN_CT + get_local_id(0), slice = get_group_id(1);
  const uint first = slice * BN_RW1 + get_local_id(1), step = slices * BN_RW1;
  float s1 = 0.0f, s2 = 0.0f;
  if (c < C)
#pragma unroll 4
    for (uint p = first; p < npos; p += step) {
      float value;
      if (pool > 0) {
        const size_t window = pool_window(p, C, c, pool, height, width);
        value = summed(image, parts, splits, part_size, window);
        uchar arg = 0;
        for (int k = 1; k < pool * pool; ++k) {
          const size_t at = window + pool_offset(k, C, pool, height, width);
          const float candidate = summed(image, parts, splits, part_size, at);
          if (candidate > value) {
            value = candidate;
            arg = (uchar)k;
          }
        }
        x[(size_t)p * C + c] = value;
        argmax[(size_t)p * C + c] = arg;
      } else {
        value = summed(x, parts, splits, part_size, (size_t)p * C + c);
        if (splits > 0) x[(size_t)p * C + c] = value;
      }
      s1 += value;
      s2 += value * value;
    }
  SUM_OVER_SLICES(s1, s2, l1, l2, partial, counters, flags, seq,
                  bn_finish_statistics(c, s1, s2, npos, 0, BN_FINISH_PASS))
  if (c >= C) return;
  const float sc = ((volatile __global const float*)scale)[c], sh = ((volatile __global const float*)shift)[c];
#pragma unroll 4
  for (uint p = first; p < npos; p += step) {
    const size_t i = (size_t)p * C + c;
    out[i] = fused_activation(activation, sc * x[i] + sh, v);
  }
}

// dgamma and dbeta of the part of dy the activation (-1: none) passes back, then dx: bn_grad_params and
// bn_grad_input_through_activation (or bn_grad_input) in one launch. dx may be dy (in place: each
// work-item writes only the values it has read). pool > 0: dx is instead the gradient of the max
// pool's image, each window's dx at its argmax and 0 elsewhere, as max_pool_grad writes it.
// SPLIT_ARGS: the product's k slices that dy is the sum of; dy is then written as that sum.
__kernel __attribute__((reqd_work_group_size(BN_CT, BN_RW1, 1)))
void bn_train_backward(__global const float* x, __global float* dy, __global float* dx, const uint npos,
                       const uint C, const uint slices, __global float* partial, volatile __global int* counters,
                       volatile __global int* flags, const int seq, __global const float* mean,
                       __global const float* invstd, const int activation, __global const float* scale,
                       __global const float* shift, __global const float* gamma, __global float* dgamma,
                       __global float* dbeta, __global const uchar* argmax, POOL_ARGS, SPLIT_ARGS) {
  __local float l1[BN_RW1][BN_CT], l2[BN_RW1][BN_CT];
  __local int last;
  const uint tile = get_group_id(0), c = tile * BN_CT + get_local_id(0), slice = get_group_id(1);
  const uint first = slice * BN_RW1 + get_local_id(1), step = slices * BN_RW1;
  float s1 = 0.0f, s2 = 0.0f, is = 0.0f, mu_is = 0.0f, ys = 0.0f, yt = 0.0f;
  if (c < C) {
    is = invstd[c];
    mu_is = -mean[c] * is;
    ys = scale[c];
    yt = shift[c];
#pragma unroll 4
    for (uint p = first; p < npos; p += step) {
      const size_t i = (size_t)p * C + c;
      float g = summed(dy, parts, splits, part_size, i);
      if (splits > 0) dy[i] = g;
      if (activation >= 0 && !passes_gradient(activation, ys * x[i] + yt)) g = 0.0f;
      s1 += g * (x[i] * is + mu_is);
      s2 += g;
    }
  }
  SUM_OVER_SLICES(s1, s2, l1, l2, partial, counters, flags, seq, (dgamma[c] = s1, dbeta[c] = s2))
  if (c >= C) return;
  const float dg = ((volatile __global const float*)dgamma)[c], db = ((volatile __global const float*)dbeta)[c];
  const float k = gamma[c] * is, per_position = 1.0f / (float)npos;
#pragma unroll 4
  for (uint p = first; p < npos; p += step) {
    const size_t i = (size_t)p * C + c;
    const float g = activation < 0 || passes_gradient(activation, ys * x[i] + yt) ? dy[i] : 0.0f;
    const float xhat = x[i] * is + mu_is;
    const float gradient = k * (g - (db + xhat * dg) * per_position);
    if (pool > 0) {
      __global float* window = dx + pool_window(p, C, c, pool, height, width);
      const int arg = argmax[i];
      for (int w = 0; w < pool * pool; ++w) window[pool_offset(w, C, pool, height, width)] = w == arg ? gradient : 0.0f;
    } else {
      dx[i] = gradient;
    }
  }
}
#endif
)CLC";

inline constexpr auto batch_norm_joined = join_sources(last_group_source, slice_sum_source, batch_norm_body_source);
inline constexpr const char* batch_norm_source = batch_norm_joined.data();

}  // namespace pbnn::opencl::kernels
