#pragma once
// OpenCL C 1.2 source of the optimizers' parameter updates (pbnn/optim.hpp): Adam and SGD with
// momentum in fp32 state, on the real value of each parameter; fixed formats store the result with
// stochastic rounding from the CPU's counter-based hash and count values clamped to their range.
// Build options: -DTQ=float|char|short, -DTG=float|int, -DFIXED=0|1, and for the fixed formats'
// progressive theta that adam_group_source(segments) writes (Adam on many parameters in one
// launch) -DUNIT_FRAC=n.
#include <cstddef>
#include <string>

#include <fmt/format.h>

#include "pbnn/opencl/kernels/join.hpp"
#include "pbnn/opencl/kernels/slice_sum_cl.hpp"

namespace pbnn::opencl::kernels {

inline constexpr char optim_body_source[] = R"CLC(
// Products and sums exactly as written (the CPU rounds each too, except where its compiler fuses).
#pragma OPENCL FP_CONTRACT OFF

// hash32 and hash_uniform come from random_cl.hpp (prepended by the host).

#ifndef UNIT_FRAC
#define UNIT_FRAC 0
#endif

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

// Element i of a gradient that its product may have left as `splits` k slices of `n` values each,
// added as gemm_sum_splits adds them (0 splits: grad itself).
DEFINE_SLICE_SUM(gradient_slice_sum, TG, TG, SLICE_ELEMENT)
TG gradient_element(__global const TG* grad, const uint splits, const uint n, const uint i) {
  return splits == 0 ? grad[i] : gradient_slice_sum((TG)0, grad, splits, n, i);
}

// Adam on element i; progressive weights may also have their gradient masked where |P| > mask
// (0: no mask), as mask_saturated does, and theta = clamp(theta_scale P, -1, 1) written from the
// stored P after the update (theta_scale 0: not), as clamp_scale does (-DUNIT_FRAC=n: fixed theta's
// 1.0 is 2^n). The gradient: gradient_element(grad, splits, n, i).
void adam_element(__global TQ* value, __global float* m, __global float* v, __global const TG* grad,
                  const uint splits, const uint n, __global const int* grad_exp, __global TQ* theta,
                  __global int* theta_exp, const uint i,
                  const int value_exp, const float factor, const float step_size, const float bound,
                  const float mask, const float theta_scale, const uint key, const int count_saturation,
                  const int qmax, volatile __global uint* saturation, const float b1, const float b2,
                  const float rc2, const float eps) {
  const float p = real_value(value, i, value_exp);
  const int masked = mask > 0.0f && fabs((float)value[i]) > ldexp(mask, -value_exp);
  const float scale = ldexp(1.0f, grad_exp[0]) * factor;
  const float g = masked ? 0.0f : (float)gradient_element(grad, splits, n, i) * scale;
  const float mi = b1 * m[i] + (1.0f - b1) * g;
  const float vi = b2 * v[i] + (1.0f - b2) * (g * g);
  m[i] = mi;
  v[i] = vi;
  const float w = clamp(p - step_size * mi / (sqrt(vi) * rc2 + eps), -bound, bound);
  store_value(value, i, w, bound, value_exp, qmax, key, count_saturation, saturation);
  if (theta_scale > 0.0f) {
#if FIXED
    if (i == 0) theta_exp[0] = -UNIT_FRAC;
    const float lim = (float)(1 << UNIT_FRAC);
    theta[i] = (TQ)rint(clamp((float)value[i] * ldexp(theta_scale, value_exp + UNIT_FRAC), -lim, lim));
#else
    if (i == 0) theta_exp[0] = 0;
    theta[i] = clamp(theta_scale * value[i], -1.0f, 1.0f);
#endif
  }
}

#if !FIXED
// adam_element on elements e to e + 3 (those below n), four at a time where all four are there and
// the gradient's slices keep 16-byte words (n % 4 == 0): the same operations on each element, so the
// same results, with a quarter of the work-items and loads in 16-byte words.
__global float4* quad(__global float* p, const size_t e) { return (__global float4*)(p + e); }
__global const float4* quad_const(__global const float* p, const size_t e) { return (__global const float4*)(p + e); }
#define QUAD_ELEMENT(p, j) (*quad_const(p, j))
DEFINE_SLICE_SUM(gradient_quad_slice_sum, float4, float, QUAD_ELEMENT)
void adam_quad(__global float* value, __global float* m, __global float* v, __global const float* grad,
               const uint splits, const uint n, __global const int* grad_exp, __global float* theta,
               __global int* theta_exp, const uint e, const int value_exp, const float factor,
               const float step_size, const float bound, const float mask, const float theta_scale, const uint key,
               const int count_saturation, const int qmax, volatile __global uint* saturation, const float b1,
               const float b2, const float rc2, const float eps) {
  if (e >= n) return;
  if (e + 4 > n || (splits > 0 && n % 4 != 0)) {
    for (uint i = e; i < min(e + 4, n); ++i)
      adam_element(value, m, v, grad, splits, n, grad_exp, theta, theta_exp, i, value_exp, factor, step_size, bound,
                   mask, theta_scale, key, count_saturation, qmax, saturation, b1, b2, rc2, eps);
    return;
  }
  const float4 p = *quad(value, e);
  const float4 gq = splits == 0 ? *quad_const(grad, e) : gradient_quad_slice_sum((float4)(0.0f), grad, splits, n, e);
  float4 g = gq * (ldexp(1.0f, grad_exp[0]) * factor);
  if (mask > 0.0f) g = select(g, (float4)(0.0f), isgreater(fabs(p), (float4)(ldexp(mask, -value_exp))));
  const float4 mi = b1 * *quad(m, e) + (1.0f - b1) * g;
  const float4 vi = b2 * *quad(v, e) + (1.0f - b2) * (g * g);
  *quad(m, e) = mi;
  *quad(v, e) = vi;
  const float4 w = clamp(p - step_size * mi / (sqrt(vi) * rc2 + eps), -bound, bound);
  *quad(value, e) = w;  // store_value's fp32 result: its clamp leaves w as it is
  if (theta_scale > 0.0f) {
    if (e == 0) theta_exp[0] = 0;
    *quad(theta, e) = clamp(theta_scale * w, -1.0f, 1.0f);
  }
}
#endif

__kernel void adam(__global TQ* value, const int value_exp, __global float* m, __global float* v,
                   __global const TG* grad, __global const int* grad_exp, const float grad_factor, const uint n,
                   const float b1, const float b2, const float step_size, const float rc2, const float eps,
                   const float bound, const int qmax, const uint key, const int count_saturation,
                   volatile __global uint* saturation) {
  const uint i = get_global_id(0);
  if (i < n)  // no mask, no theta: value and grad_exp stand in for the theta buffers
    adam_element(value, m, v, grad, 0, n, grad_exp, value, (__global int*)grad_exp, i, value_exp, grad_factor,
                 step_size, bound, 0.0f, 0.0f, key, count_saturation, qmax, saturation, b1, b2, rc2, eps);
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

inline constexpr auto optim_joined = join_sources(slice_sum_source, optim_body_source);
inline constexpr const char* optim_source = optim_joined.data();

// The kernel-argument bytes of adam_group: 5 common 4-byte values and the counter's buffer, and per
// parameter 7 buffers (up to 8 bytes each) and 12 4-byte values.
inline constexpr std::size_t adam_group_common_bytes = 5 * 4 + 8;
inline constexpr std::size_t adam_group_segment_bytes = 7 * 8 + 12 * 4;
inline constexpr std::size_t adam_group_max_segments = 64;

// optim_source with adam_group over `segments` parameters: parameter s owns work-items
// [start_s, end_s), a whole number of work-groups, of which the first update its n_s elements with
// adam_element (the adam kernel's update, and progressive weights' mask and theta where asked), its
// gradient in splits_s slices where its product left them so (device_parameter::grad_pending); fp32
// four elements per work-item (adam_quad), fixed formats one.
inline std::string adam_group_source(std::size_t segments) {
  std::string s = std::string(optim_source) + R"CLC(
__kernel void adam_group(const float b1, const float b2, const float rc2, const float eps, const int qmax,
                         volatile __global uint* saturation)CLC";
  for (std::size_t k = 0; k < segments; ++k)
    s += fmt::format(
        ",\n    __global TQ* value{0}, __global float* m{0}, __global float* v{0}, __global const TG* grad{0}, "
        "const uint splits{0}, __global const int* grad_exp{0}, __global TQ* theta{0}, __global int* theta_exp{0}, "
        "const uint start{0}, const uint end{0}, const uint n{0}, const int value_exp{0}, const float factor{0}, "
        "const float step{0}, const float bound{0}, const float mask{0}, const float theta_scale{0}, "
        "const uint key{0}, const int count_saturation{0}",
        k);
  s += ") {\n  const uint i = get_global_id(0);\n";
  for (std::size_t k = 0; k < segments; ++k)
    s += fmt::format(
        "  {1}if (i < end{0}) {{\n#if FIXED\n    if (i - start{0} < n{0})\n      adam_element(value{0}, m{0}, v{0}, "
        "grad{0}, splits{0}, n{0}, grad_exp{0}, theta{0}, theta_exp{0}, i - start{0}, value_exp{0}, factor{0}, "
        "step{0}, bound{0}, mask{0}, theta_scale{0}, key{0}, count_saturation{0}, qmax, saturation, b1, b2, rc2, "
        "eps);\n#else\n    adam_quad(value{0}, m{0}, v{0}, grad{0}, splits{0}, n{0}, grad_exp{0}, theta{0}, "
        "theta_exp{0}, (i - start{0}) * 4, value_exp{0}, factor{0}, step{0}, bound{0}, mask{0}, theta_scale{0}, "
        "key{0}, count_saturation{0}, qmax, saturation, b1, b2, rc2, eps);\n#endif\n  }}",
        k, k ? "else " : "");
  s += "\n}\n";
  return s;
}

}  // namespace pbnn::opencl::kernels
