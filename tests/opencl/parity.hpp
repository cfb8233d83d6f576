#pragma once
// What the parity tests share: random tensors in a format, their device copies, and counting
// where device results differ from the CPU's.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

#include <pbnn/opencl/parameter.hpp>
#include <pbnn/opencl/tensor.hpp>
#include <pbnn/parameter.hpp>
#include <pbnn/quantize.hpp>
#include <pbnn/tensor.hpp>

namespace test_opencl {

// rows x cols uniform in [lo, hi), quantized to nearest in fixed formats.
template <class F>
pbnn::batch_tensor<F> random_tensor(std::size_t rows, std::size_t cols, float lo, float hi, pbnn::rng& g) {
  std::vector<float> real(rows * cols);
  for (auto& v : real) v = g.uniform(lo, hi);
  pbnn::batch_tensor<F> t;
  t.resize(rows, cols);
  if constexpr (pbnn::is_fixed_v<F>)
    t.exp = pbnn::quantize_dynamic(real.data(), real.size(), t.data.data(), pbnn::format_traits<F>::operand_max,
                                   pbnn::rounding::nearest_even, pbnn::stream{});
  else
    std::copy(real.begin(), real.end(), t.data.data());
  return t;
}

template <class F>
pbnn::opencl::device_tensor<F> to_device(pbnn::opencl::runtime& rt, const pbnn::batch_tensor<F>& t) {
  pbnn::opencl::device_tensor<F> d;
  d.upload(rt, t.rows(), t.cols(), t.data.data(), t.exp);
  return d;
}

// Elements that differ: exactly for integers, beyond a relative tol of the largest host magnitude
// for floats (a size mismatch counts as one).
template <class T>
std::size_t differences(const std::vector<T>& device, const T* host, std::size_t n, float tol = 1e-5f) {
  float scale = 0;
  for (std::size_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(static_cast<float>(host[i])));
  std::size_t bad = device.size() == n ? 0 : 1;
  for (std::size_t i = 0; i < std::min(n, device.size()); ++i) {
    if constexpr (std::is_floating_point_v<T>) bad += std::fabs(device[i] - host[i]) > tol * scale;
    else bad += device[i] != host[i];
  }
  return bad;
}

// The real values of a parameter's gradient, on the device and on the host.
template <class F>
std::vector<float> real_gradient(pbnn::opencl::runtime& rt, const pbnn::opencl::device_parameter<F>& p) {
  const auto grad = p.grad.download(rt);
  const float scale = std::ldexp(1.0f, p.grad_exp.download(rt).at(0)) * p.grad_factor;
  std::vector<float> out(grad.size());
  for (std::size_t i = 0; i < grad.size(); ++i) out[i] = static_cast<float>(grad[i]) * scale;
  return out;
}
template <class F>
std::vector<float> real_gradient(const pbnn::parameter<F>& p) {
  std::vector<float> out(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) out[i] = p.gradient(i);
  return out;
}

}  // namespace test_opencl
