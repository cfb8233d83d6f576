#pragma once
// OpenCL C 1.2 source of the fixed formats' per-tensor quantization, bit for bit the CPU backend's
// (pbnn/quantize.hpp, pbnn/random.hpp). The exponents stay on the device: a tensor's exponent is an
// int in a buffer of its own, written by the kernel that chooses it and read by the kernels after
// it, so a step never waits for the host.
//   max_abs_int / max_abs_float  atomic_max of |x| (as uint bits for floats) into maxima[slot], zero
//   requantize  int32 sums (value = acc 2^(exp_a [+ exp_b] + exp_c)) -> TQ with the smallest shift >= 0
//               that fits qmax; nearest-even or stochastic rounding
//   quantize    floats -> TQ with the exponent that maps the largest magnitude to at most qmax
//   Both read maxima[slot] and clear maxima[slot ^ 1], which the tensor's next quantization reduces
//   into: no command of its own clears a maximum.
//   requantize_small / quantize_small  the same in one work-group per tensor, maximum included (one
//               launch for a small tensor; quantize_small takes two tensors, one per group)
//   quantize and quantize_small (its first tensor) also write, where `activate`, the progressive
//   activation of the quantized values: theta = clamp(v q 2^e, -1, 1) in units of 2^-unit_frac, as
//   binarize_cl.hpp's clamp_scale computes it from them.
// Build options: -DTQ=char|short|int.
namespace pbnn::opencl::kernels {

inline constexpr const char* quantize_source = R"CLC(
#ifndef RED_WG
#define RED_WG 256
#endif

// hash32 and hash_uniform come from random_cl.hpp (prepended by the host).

// The work-group's maximum of mine, returned to every work-item. The loops have the same trip count
// in every work-item of a group (barriers stay uniform).
uint group_max(uint mine, __local uint* scratch) {
  const int lid = get_local_id(0);
  scratch[lid] = mine;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = RED_WG / 2; s > 0; s >>= 1) {
    if (lid < s) scratch[lid] = max(scratch[lid], scratch[lid + s]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  return scratch[0];
}

// |x| of an int32 sum (2^31 for INT_MIN) and, for non-negative floats, the IEEE bit pattern, which
// orders like the value.
uint abs_bits_int(int x) { return abs(x); }
uint abs_bits_float(float x) { return as_uint(fabs(x)); }

// One atomic per group into maxima[slot].
#define MAX_ABS_KERNEL(NAME, T, BITS)                                                              \
  __kernel __attribute__((reqd_work_group_size(RED_WG, 1, 1)))                                     \
  void NAME(__global const T* x, const uint n, volatile __global uint* maxima, const uint slot) {  \
    __local uint scratch[RED_WG];                                                                  \
    uint m = 0;                                                                                    \
    for (uint i = get_global_id(0); i < n; i += get_global_size(0)) m = max(m, BITS(x[i]));        \
    m = group_max(m, scratch);                                                                     \
    if (get_local_id(0) == 0) atomic_max(maxima + slot, m);                                        \
  }
MAX_ABS_KERNEL(max_abs_int, int, abs_bits_int)
MAX_ABS_KERNEL(max_abs_float, float, abs_bits_float)

// pbnn::detail::shift_for(maxabs, qmax, 0).
int shift_for(ulong maxabs, int qmax) {
  int s = 0;
  while (((maxabs + ((1ul << s) - 1)) >> s) > (ulong)qmax) ++s;
  return s;
}

TQ requantized(long v, uint i, int shift, int qmax, uint key, int stochastic) {
  long q;
  if (shift == 0) q = v;
  else if (stochastic && shift <= 31) q = (v + (long)(hash32(key, i) & ((1u << shift) - 1u))) >> shift;
  else q = (v + (1l << (shift - 1)) - 1 + ((v >> shift) & 1)) >> shift;
  return (TQ)clamp(q, (long)-qmax, (long)qmax);
}

__kernel void requantize(__global const int* acc, const uint n, __global const int* exp_a,
                         __global const int* exp_b, const int use_b, const int exp_c, __global uint* maxima,
                         const uint slot, __global TQ* dst, __global int* exp_out, const int qmax, const uint key,
                         const int stochastic) {
  const int shift = shift_for(maxima[slot], qmax);
  const uint i = get_global_id(0);
  if (i == 0) {
    exp_out[0] = exp_a[0] + (use_b ? exp_b[0] : 0) + exp_c + shift;
    maxima[slot ^ 1u] = 0;
  }
  if (i < n) dst[i] = requantized(acc[i], i, shift, qmax, key, stochastic);
}

__kernel __attribute__((reqd_work_group_size(RED_WG, 1, 1)))
void requantize_small(__global const int* acc, const uint n, __global const int* exp_a, __global const int* exp_b,
                      const int use_b, const int exp_c, __global TQ* dst, __global int* exp_out, const int qmax,
                      const uint key, const int stochastic) {
  __local uint scratch[RED_WG];
  const uint lid = get_local_id(0);
  uint m = 0;
  for (uint i = lid; i < n; i += RED_WG) m = max(m, abs_bits_int(acc[i]));
  const int shift = shift_for(group_max(m, scratch), qmax);
  if (lid == 0) exp_out[0] = exp_a[0] + (use_b ? exp_b[0] : 0) + exp_c + shift;
  for (uint i = lid; i < n; i += RED_WG) dst[i] = requantized(acc[i], i, shift, qmax, key, stochastic);
}

// The 64-bit sums narrowed to int32 with the smallest right shift (nearest even) that fits, and
// exp_out = exp_a + exp_b + shift, as the CPU's conv2d weight_gradient_int. One work-group.
__kernel __attribute__((reqd_work_group_size(RED_WG, 1, 1)))
void narrow_wide(__global const long* wide, const uint n, __global int* out, __global const int* exp_a,
                 __global const int* exp_b, __global int* exp_out) {
  __local ulong scratch[RED_WG];
  const int lid = get_local_id(0);
  ulong m = 0;
  for (uint i = lid; i < n; i += RED_WG) m = max(m, (ulong)(wide[i] < 0 ? -wide[i] : wide[i]));
  scratch[lid] = m;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = RED_WG / 2; s > 0; s >>= 1) {
    if (lid < s) scratch[lid] = max(scratch[lid], scratch[lid + s]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  int shift = 0;
  while ((scratch[0] >> shift) > (ulong)(INT_MAX - 1)) ++shift;
  for (uint i = lid; i < n; i += RED_WG) {
    const long v = wide[i];
    out[i] = shift ? (int)((v + (1l << (shift - 1)) - 1 + ((v >> shift) & 1)) >> shift) : (int)v;
  }
  if (lid == 0) exp_out[0] = exp_a[0] + exp_b[0] + shift;
}

// out = exp_a [+ exp_b] + exp_c: the exponent of a product's int32 sums (a weight gradient's scale).
__kernel void sum_exponents(__global const int* exp_a, __global const int* exp_b, const int use_b, const int exp_c,
                            __global int* out) {
  if (get_global_id(0) == 0) out[0] = exp_a[0] + (use_b ? exp_b[0] : 0) + exp_c;
}

// pbnn::detail::exponent_for(maxabs, qmax): the smallest e with ceil(maxabs 2^-e) <= qmax.
int exponent_for(float maxabs, int qmax) {
  if (!(maxabs > 0.0f) || isinf(maxabs)) return 0;
  // Compared as integers: (float)qmax rounds up for qmax = 2^30 - 1 (int32 gradients).
  int e = (int)ceil(log2(maxabs / (float)qmax));
  while ((long)ceil(ldexp(maxabs, -e)) > (long)qmax) ++e;
  while ((long)ceil(ldexp(maxabs, -(e - 1))) <= (long)qmax) --e;
  return e;
}

TQ quantized(float x, uint i, int e, int qmax, uint key, int stochastic) {
  const float lim = (float)qmax;
  x *= ldexp(1.0f, -e);
  return (TQ)(stochastic ? clamp(floor(x + hash_uniform(key, i)), -lim, lim) : rint(clamp(x, -lim, lim)));
}

// clamp(v q 2^e, -1, 1) in units of 2^-unit_frac: clamp_scale's fixed-point expression.
TQ progressive_of(TQ q, int e, float v, int unit_frac) {
  const float m = ldexp(v, e + unit_frac), lim = (float)(1 << unit_frac);
  return (TQ)rint(clamp((float)q * m, -lim, lim));
}

#define ACTIVATION_ARGS \
  __global TQ *theta, __global int *theta_exp, const float v, const int unit_frac, const int activate

__kernel void quantize(__global const float* src, const uint n, __global uint* maxima, const uint slot,
                       __global TQ* dst, __global int* exp_out, const int qmax, const uint key,
                       const int stochastic, ACTIVATION_ARGS) {
  const int e = exponent_for(as_float(maxima[slot]), qmax);
  const uint i = get_global_id(0);
  if (i == 0) {
    exp_out[0] = e;
    maxima[slot ^ 1u] = 0;
    if (activate) theta_exp[0] = -unit_frac;
  }
  if (i >= n) return;
  const TQ q = quantized(src[i], i, e, qmax, key, stochastic);
  dst[i] = q;
  if (activate) theta[i] = progressive_of(q, e, v, unit_frac);
}

// Group g quantizes tensor g: (src0, n0, dst0, exp0, key0) or (src1, ...); the activation is the
// first tensor's.
__kernel __attribute__((reqd_work_group_size(RED_WG, 1, 1)))
void quantize_small(__global const float* src0, const uint n0, __global TQ* dst0, __global int* exp0,
                    const uint key0, __global const float* src1, const uint n1, __global TQ* dst1,
                    __global int* exp1, const uint key1, const int qmax, const int stochastic, ACTIVATION_ARGS) {
  __local uint scratch[RED_WG];
  const int second = get_group_id(0) == 1;
  __global const float* src = second ? src1 : src0;
  __global TQ* dst = second ? dst1 : dst0;
  const uint n = second ? n1 : n0, key = second ? key1 : key0, lid = get_local_id(0);
  const int act = activate && !second;
  uint m = 0;
  for (uint i = lid; i < n; i += RED_WG) m = max(m, abs_bits_float(src[i]));
  const int e = exponent_for(as_float(group_max(m, scratch)), qmax);
  if (lid == 0) {
    (second ? exp1 : exp0)[0] = e;
    if (act) theta_exp[0] = -unit_frac;
  }
  for (uint i = lid; i < n; i += RED_WG) {
    const TQ q = quantized(src[i], i, e, qmax, key, stochastic);
    dst[i] = q;
    if (act) theta[i] = progressive_of(q, e, v, unit_frac);
  }
}
)CLC";

}  // namespace pbnn::opencl::kernels
