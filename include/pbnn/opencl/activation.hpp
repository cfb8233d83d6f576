#pragma once
// ReLU and hardtanh on an OpenCL device, as the CPU layers compute them (layers/activation.hpp);
// hardtanh is the progressive clamp at v = 1 with its exact gradient (binarize.hpp).
#include <string>

#include <fmt/format.h>

#include "pbnn/opencl/binarize.hpp"
#include "pbnn/opencl/cl_types.hpp"
#include "pbnn/opencl/kernels/activation_cl.hpp"
#include "pbnn/opencl/launch.hpp"
#include "pbnn/opencl/tensor.hpp"

namespace pbnn::opencl {

namespace detail {
template <class F>
const cl::Program& activation_program(runtime& rt) {
  static const std::string options = fmt::format("-DTQ={}", cl_storage_name<F>());
  return rt.static_program(kernels::activation_source, options);
}
}  // namespace detail

template <class F>
void relu(runtime& rt, const device_tensor<F>& x, device_tensor<F>& y) {
  y.resize(rt, x.rows(), x.cols());
  detail::launch(rt, detail::activation_program<F>(rt), "relu", x.size(), x.data.handle(), x.exp.handle(),
                 detail::checked_count(x.size()), y.data.handle(), y.exp.handle());
}

template <class F>
void relu_grad(runtime& rt, const device_tensor<F>& x, const device_tensor<F>& dy, device_tensor<F>& dx) {
  dx.resize(rt, dy.rows(), dy.cols());
  detail::launch(rt, detail::activation_program<F>(rt), "relu_grad", dy.size(), x.data.handle(), dy.data.handle(),
                 dy.exp.handle(), detail::checked_count(dy.size()), dx.data.handle(), dx.exp.handle());
}

template <class F>
void hardtanh(runtime& rt, const device_tensor<F>& x, device_tensor<F>& y) {
  y.resize(rt, x.rows(), x.cols());
  clamp_scale<F>(rt, x.data, x.exp, x.size(), 1.0f, y.data, y.exp);
}

// At v = 1 there is nothing to round (floor(dy + u) = dy), so no stream is needed; the CPU layer
// still draws one from the context, which a device network must mirror to keep later streams equal.
template <class F>
void hardtanh_grad(runtime& rt, const device_tensor<F>& x, const device_tensor<F>& dy, device_tensor<F>& dx) {
  progressive_grad(rt, x, dy, dx, 1.0f, stream{});
}

}  // namespace pbnn::opencl
