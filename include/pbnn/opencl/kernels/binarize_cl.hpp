#pragma once
// OpenCL C 1.2 source of the binarization schemes' element-wise work, bit for bit the CPU
// backend's (pbnn/binarize.hpp) given the same stream. Exponents are read from (and written to)
// one-int device buffers. Build options: -DTQ=float|char|short (the format's storage),
// -DUNIT_FRAC=n for fixed formats (1.0 == 2^n in theta and in progressive activations).
namespace pbnn::opencl::kernels {

inline constexpr const char* binarize_source = R"CLC(
#ifndef UNIT_FRAC
#define UNIT_FRAC 0
#endif
#define IS_FLOAT (UNIT_FRAC == 0)

// hash32 and hash_uniform come from random_cl.hpp (prepended by the host).

// out = sign(in) with sign(0) = -1; exp_out (if any) = 0.
__kernel void sign_values(__global const TQ* in, const uint n, __global TQ* out, __global int* exp_out,
                          const int write_exp) {
  const uint i = get_global_id(0);
  if (i == 0 && write_exp) exp_out[0] = 0;
  if (i < n) out[i] = in[i] > (TQ)0 ? (TQ)1 : (TQ)-1;
}

// +1 with probability clamp((x + 1) / 2, 0, 1), x = in 2^in_exp; exp_out (if any) = 0.
__kernel void stochastic_signs(__global const TQ* in, __global const int* in_exp, const uint n, __global TQ* out,
                               __global int* exp_out, const int write_exp, const uint key) {
  const uint i = get_global_id(0);
  if (i == 0 && write_exp) exp_out[0] = 0;
  if (i >= n) return;
  const float p = clamp(((float)in[i] * ldexp(1.0f, in_exp[0]) + 1.0f) * 0.5f, 0.0f, 1.0f);
  out[i] = hash_uniform(key, i) < p ? (TQ)1 : (TQ)-1;
}

// Progressive: out = clamp(v x, -1, 1) with x = in 2^in_exp; fixed formats hold 1.0 as 2^UNIT_FRAC.
__kernel void clamp_scale(__global const TQ* in, __global const int* in_exp, const uint n, const float v,
                          __global TQ* out, __global int* exp_out) {
  const uint i = get_global_id(0);
  if (i == 0) exp_out[0] = IS_FLOAT ? 0 : -UNIT_FRAC;
  if (i >= n) return;
#if IS_FLOAT
  out[i] = clamp(v * in[i], -1.0f, 1.0f);
#else
  const float m = ldexp(v, in_exp[0] + UNIT_FRAC), lim = (float)(1 << UNIT_FRAC);
  out[i] = (TQ)rint(clamp((float)in[i] * m, -lim, lim));
#endif
}

// Straight-through gradient of sign: dx = dy where |x| <= 1, else 0; exp(dx) = exp(dy).
__kernel void straight_through(__global const TQ* x, __global const int* x_exp, __global const TQ* dy,
                               __global const int* dy_exp, const uint n, __global TQ* dx, __global int* dx_exp) {
  const uint i = get_global_id(0);
  if (i == 0) dx_exp[0] = dy_exp[0];
  if (i >= n) return;
  const float limit = ldexp(1.0f, -x_exp[0]);
  dx[i] = fabs((float)x[i]) <= limit ? dy[i] : (TQ)0;
}

// The exact gradient of the progressive activation: v dy inside |v x| <= 1, 0 outside. Fixed
// formats round v dy stochastically with v = m 2^k, m in (1/2, 1], and carry 2^k in the exponent.
// The host passes 1/v and k: OpenCL's division and log2 need not be correctly rounded.
__kernel void progressive_grad(__global const TQ* x, __global const int* x_exp, __global const TQ* dy,
                               __global const int* dy_exp, const uint n, const float v, const float inv_v,
                               const int k, __global TQ* dx, __global int* dx_exp, const uint key) {
  const uint i = get_global_id(0);
  const float lim = ldexp(inv_v, -x_exp[0]);
#if IS_FLOAT
  if (i == 0) dx_exp[0] = 0;
  if (i < n) dx[i] = fabs(x[i]) <= lim ? v * dy[i] : 0.0f;
#else
  if (i == 0) dx_exp[0] = dy_exp[0] + k;
  if (i < n) {
    const float m = ldexp(v, -k);
    dx[i] = fabs((float)x[i]) <= lim ? (TQ)floor((float)dy[i] * m + hash_uniform(key, i)) : (TQ)0;
  }
#endif
}

// Weights kept real, as GEMM operands: P requantized to the operand range by a right shift, rounded
// to nearest even (pbnn::detail::real_weights); exp_out = value_exp + shift.
__kernel void real_weights(__global const TQ* in, const int value_exp, const uint n, const int shift, __global TQ* out,
                           __global int* exp_out) {
  const uint i = get_global_id(0);
  if (i == 0) exp_out[0] = value_exp + shift;
  if (i >= n) return;
#if IS_FLOAT
  out[i] = in[i];
#else
  const int v = in[i];
  out[i] = shift == 0 ? (TQ)v : (TQ)((v + (1 << (shift - 1)) - 1 + ((v >> shift) & 1)) >> shift);
#endif
}

// Progressive weights' gradient mask: zero where |v P| > 1 (P = value 2^value_exp).
__kernel void mask_saturated(__global const TQ* value, const int value_exp, const uint n, const float inv_v,
                             __global TG* grad) {
  const uint i = get_global_id(0);
  if (i >= n) return;
  const float limit = ldexp(inv_v, -value_exp);
  if (fabs((float)value[i]) > limit) grad[i] = (TG)0;
}
)CLC";

}  // namespace pbnn::opencl::kernels
