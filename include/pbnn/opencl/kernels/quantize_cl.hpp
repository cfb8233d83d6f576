#pragma once
// OpenCL C 1.2 source of the fixed formats' per-tensor quantization, bit for bit the CPU backend's
// (pbnn/quantize.hpp, pbnn/random.hpp). The exponents stay on the device: a tensor's exponent is an
// int in a buffer of its own, written by the kernel that chooses it and read by the kernels after
// it, so a step never waits for the host.
//   max_abs_int / max_abs_float  atomic_max of |x| (as uint bits for floats) into a zeroed uint
//   requantize  int32 sums (value = acc 2^(exp_a [+ exp_b] + exp_c)) -> TQ with the smallest shift >= 0
//               that fits qmax; nearest-even or stochastic rounding
//   quantize    floats -> TQ with the exponent that maps the largest magnitude to at most qmax
// Build options: -DTQ=char|short|int.
namespace pbnn::opencl::kernels {

inline constexpr const char* quantize_source = R"CLC(
#ifndef RED_WG
#define RED_WG 256
#endif

// hash32 and hash_uniform come from random_cl.hpp (prepended by the host).

// Work-group maximum, then one atomic per group. The loops have the same trip count in every
// work-item of a group (barriers stay uniform).
void group_max_to(uint mine, __local uint* scratch, volatile __global uint* out) {
  const int lid = get_local_id(0);
  scratch[lid] = mine;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = RED_WG / 2; s > 0; s >>= 1) {
    if (lid < s) scratch[lid] = max(scratch[lid], scratch[lid + s]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lid == 0) atomic_max(out, scratch[0]);
}

__kernel __attribute__((reqd_work_group_size(RED_WG, 1, 1)))
void max_abs_int(__global const int* x, const uint n, volatile __global uint* out) {
  __local uint scratch[RED_WG];
  uint m = 0;
  for (uint i = get_global_id(0); i < n; i += get_global_size(0)) m = max(m, abs(x[i]));
  group_max_to(m, scratch, out);
}

// For non-negative floats the IEEE bit pattern orders like the value.
__kernel __attribute__((reqd_work_group_size(RED_WG, 1, 1)))
void max_abs_float(__global const float* x, const uint n, volatile __global uint* out) {
  __local uint scratch[RED_WG];
  uint m = 0;
  for (uint i = get_global_id(0); i < n; i += get_global_size(0)) m = max(m, as_uint(fabs(x[i])));
  group_max_to(m, scratch, out);
}

// pbnn::detail::shift_for(maxabs, qmax, 0).
int shift_for(ulong maxabs, int qmax) {
  int s = 0;
  while (((maxabs + ((1ul << s) - 1)) >> s) > (ulong)qmax) ++s;
  return s;
}

__kernel void requantize(__global const int* acc, const uint n, __global const int* exp_a,
                         __global const int* exp_b, const int use_b, const int exp_c, __global const uint* maxabs,
                         __global TQ* dst, __global int* exp_out, const int qmax, const uint key,
                         const int stochastic) {
  const int shift = shift_for(maxabs[0], qmax);
  const uint i = get_global_id(0);
  if (i == 0) exp_out[0] = exp_a[0] + (use_b ? exp_b[0] : 0) + exp_c + shift;
  if (i >= n) return;
  const long v = acc[i];
  long q;
  if (shift == 0) q = v;
  else if (stochastic && shift <= 31) q = (v + (long)(hash32(key, i) & ((1u << shift) - 1u))) >> shift;
  else q = (v + (1l << (shift - 1)) - 1 + ((v >> shift) & 1)) >> shift;
  dst[i] = (TQ)clamp(q, (long)-qmax, (long)qmax);
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

__kernel void quantize(__global const float* src, const uint n, __global const uint* maxabs_bits,
                       __global TQ* dst, __global int* exp_out, const int qmax, const uint key,
                       const int stochastic) {
  const int e = exponent_for(as_float(maxabs_bits[0]), qmax);
  const uint i = get_global_id(0);
  if (i == 0) exp_out[0] = e;
  if (i >= n) return;
  const float scale = ldexp(1.0f, -e), lim = (float)qmax;
  const float x = src[i] * scale;
  dst[i] = (TQ)(stochastic ? clamp(floor(x + hash_uniform(key, i)), -lim, lim) : rint(clamp(x, -lim, lim)));
}
)CLC";

}  // namespace pbnn::opencl::kernels
