#pragma once
// OpenCL C 1.2 source of the optimizers' parameter updates (pbnn/optim.hpp): Adam and SGD with
// momentum in fp32 state, on the real value of each parameter; fixed formats store the result with
// stochastic rounding from the CPU's counter-based hash and count values clamped to their range.
// Build options: -DTQ=float|char|short, -DTG=float|int, -DFIXED=0|1.
namespace pbnn::opencl::kernels {

inline constexpr const char* optim_source = R"CLC(
// Products and sums exactly as written (the CPU rounds each too, except where its compiler fuses).
#pragma OPENCL FP_CONTRACT OFF

// hash32 and hash_uniform come from random_cl.hpp (prepended by the host).

// pbnn::parameter::store_range for element i: clip to +-bound, then (fixed) floor(x 2^-exp + u)
// clamped to +-qmax, counting the clamped values where count_saturation.
void store_value(__global TQ* value, uint i, float x, float bound, int value_exp, int qmax, uint key,
                 int count_saturation, volatile __global uint* saturation) {
  const float c = clamp(x, -bound, bound);
#if FIXED
  const float lim = (float)qmax;
  const float t = floor(c * ldexp(1.0f, -value_exp) + hash_uniform(key, i));
  if (count_saturation && (t > lim || t < -lim)) atomic_inc(saturation);
  value[i] = (TQ)clamp(t, -lim, lim);
#else
  value[i] = c;
#endif
}

float real_value(__global const TQ* value, uint i, int value_exp) {
#if FIXED
  return (float)value[i] * ldexp(1.0f, value_exp);
#else
  return value[i];
#endif
}

__kernel void adam(__global TQ* value, const int value_exp, __global float* m, __global float* v,
                   __global const TG* grad, __global const int* grad_exp, const float grad_factor, const uint n,
                   const float b1, const float b2, const float step_size, const float rc2, const float eps,
                   const float bound, const int qmax, const uint key, const int count_saturation,
                   volatile __global uint* saturation) {
  const uint i = get_global_id(0);
  if (i >= n) return;
  const float g = (float)grad[i] * (ldexp(1.0f, grad_exp[0]) * grad_factor);
  const float mi = b1 * m[i] + (1.0f - b1) * g;
  const float vi = b2 * v[i] + (1.0f - b2) * (g * g);
  m[i] = mi;
  v[i] = vi;
  const float w = clamp(real_value(value, i, value_exp) - step_size * mi / (sqrt(vi) * rc2 + eps), -bound, bound);
  store_value(value, i, w, bound, value_exp, qmax, key, count_saturation, saturation);
}

__kernel void sgd(__global TQ* value, const int value_exp, __global float* velocity, __global const TG* grad,
                  __global const int* grad_exp, const float grad_factor, const uint n, const float momentum,
                  const float rate, const float bound, const int qmax, const uint key, const int count_saturation,
                  volatile __global uint* saturation) {
  const uint i = get_global_id(0);
  if (i >= n) return;
  const float vel = momentum * velocity[i] + (float)grad[i] * (ldexp(1.0f, grad_exp[0]) * grad_factor);
  velocity[i] = vel;
  store_value(value, i, real_value(value, i, value_exp) - rate * vel, bound, value_exp, qmax, key, count_saturation,
              saturation);
}
)CLC";

}  // namespace pbnn::opencl::kernels
