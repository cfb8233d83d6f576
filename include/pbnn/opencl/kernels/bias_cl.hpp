#pragma once
// OpenCL C 1.2 source of a dense layer's bias (layers/dense.hpp): added to the product, and its
// gradient, the column sums of dy. Build options: -DTQ=float|char|short (storage), -DFIXED=0|1.
namespace pbnn::opencl::kernels {

inline constexpr const char* bias_source = R"CLC(
#if FIXED
// pbnn::detail::round_shift, nearest-even: v 2^-shift rounded to an integer.
long round_shift_nearest_even(const long v, const int shift) {
  if (shift <= 0) return v * ((long)1 << -shift);
  if (shift >= 62) return 0;
  const long q = v >> shift, rem = v - (q << shift), halfway = (long)1 << (shift - 1);
  return (rem > halfway || (rem == halfway && (q & 1))) ? q + 1 : q;
}

// acc[r, j] += bias[j] in the sums' units: acc = x theta^T of exponent x_exp + theta_exp, bias of
// exponent bias_exp.
__kernel void add_bias(__global int* acc, const uint rows, const uint cols, __global const TQ* bias, const int bias_exp,
                       __global const int* x_exp, __global const int* theta_exp) {
  const uint i = get_global_id(0);
  if (i >= rows * cols) return;
  const int shift = x_exp[0] + theta_exp[0] - bias_exp;
  acc[i] += (int)round_shift_nearest_even((long)bias[i % cols], shift);
}

// grad[j] = sum over rows of dy[r, j] (exact in int); grad_exp = dy_exp.
__kernel void bias_grad(__global const TQ* dy, __global const int* dy_exp, const uint rows, const uint cols,
                        __global int* grad, __global int* grad_exp) {
  const uint j = get_global_id(0);
  if (j == 0) grad_exp[0] = dy_exp[0];
  if (j >= cols) return;
  int s = 0;
  for (uint r = 0; r < rows; ++r) s += dy[(size_t)r * cols + j];
  grad[j] = s;
}
#else
__kernel void add_bias(__global float* y, const uint rows, const uint cols, __global const float* bias) {
  const uint i = get_global_id(0);
  if (i < rows * cols) y[i] += bias[i % cols];
}

// grad[j] = sum over rows of dy[r, j], in the host's order; grad_exp = 0.
__kernel void bias_grad(__global const float* dy, __global const int* dy_exp, const uint rows, const uint cols,
                        __global float* grad, __global int* grad_exp) {
  const uint j = get_global_id(0);
  if (j == 0) grad_exp[0] = 0;
  if (j >= cols) return;
  float s = 0.0f;
  for (uint r = 0; r < rows; ++r) s += dy[(size_t)r * cols + j];
  grad[j] = s;
}
#endif
)CLC";

}  // namespace pbnn::opencl::kernels
