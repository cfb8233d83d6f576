#pragma once
// OpenCL C 1.2 source of ReLU and its gradient (layers/activation.hpp). Build option: -DTQ=float|char|short.
namespace pbnn::opencl::kernels {

inline constexpr const char* activation_source = R"CLC(
// y = max(x, 0), exp(y) = exp(x).
__kernel void relu(__global const TQ* x, __global const int* x_exp, const uint n, __global TQ* y, __global int* y_exp) {
  const uint i = get_global_id(0);
  if (i == 0) y_exp[0] = x_exp[0];
  if (i < n) y[i] = max(x[i], (TQ)0);
}

// dx = dy where x > 0, else 0; exp(dx) = exp(dy).
__kernel void relu_grad(__global const TQ* x, __global const TQ* dy, __global const int* dy_exp, const uint n,
                        __global TQ* dx, __global int* dx_exp) {
  const uint i = get_global_id(0);
  if (i == 0) dx_exp[0] = dy_exp[0];
  if (i < n) dx[i] = x[i] > (TQ)0 ? dy[i] : (TQ)0;
}
)CLC";

}  // namespace pbnn::opencl::kernels
