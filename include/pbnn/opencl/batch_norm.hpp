#pragma once
// Batch normalization over channels on an OpenCL device (kernels/batch_norm_cl.hpp), the CPU layer's
// computation (layers/batch_norm.hpp) with its state in device buffers: statistics and running
// statistics, the affine forward pass, sign(BN(x)) as a threshold comparison, and the backward pass
// into gamma's and beta's gradients and dx. Every call enqueues its kernels and waits for none.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "pbnn/context.hpp"
#include "pbnn/format.hpp"
#include "pbnn/opencl/cl_types.hpp"
#include "pbnn/opencl/kernels/batch_norm_cl.hpp"
#include "pbnn/opencl/launch.hpp"
#include "pbnn/opencl/parameter.hpp"
#include "pbnn/opencl/quantize.hpp"
#include "pbnn/opencl/tensor.hpp"

namespace pbnn::opencl {

template <class F>
class device_batch_norm {
 public:
  static constexpr float eps = 1e-5f, momentum = 0.1f;  // the CPU layer's
  static constexpr std::size_t reduction_group = 256;   // RED_WG of the kernels

  device_batch_norm(runtime& rt, std::size_t channels) : channels_(channels) {
    const std::vector<float> zeros(channels, 0.0f), ones(channels, 1.0f);
    running_mean.upload(rt, zeros);
    running_var.upload(rt, ones);
    for (auto* b : {&mean_, &invstd_, &scale_, &shift_, &tscale_, &tshift_, &dgamma_, &dbeta_}) b->resize(rt, channels);
  }

  device_buffer<float> running_mean, running_var;

  // Statistics of x (batch ones in training and calibration, running ones in evaluation); training
  // moves the running ones by `momentum`, calibration by calibration_weight (1 / (batches + 1)).
  void statistics(runtime& rt, const device_tensor<F>& x, const device_parameter<F>& gamma,
                  const device_parameter<F>& beta, mode m, float calibration_weight = 1.0f) {
    const std::size_t npos = positions(x);
    const cl_int which = m == mode::train ? 0 : m == mode::calibrate ? 1 : 2;
    detail::launch_range(rt, program(rt), "bn_statistics", cl::NDRange(channels_ * reduction_group),
                         cl::NDRange(reduction_group), x.data.handle(), x.exp.handle(), detail::checked_count(npos),
                         detail::checked_count(channels_), gamma.value.handle(), beta.value.handle(), cl_int{gamma.exp},
                         eps, m == mode::calibrate ? calibration_weight : momentum, which, running_mean.handle(),
                         running_var.handle(), mean_.handle(), invstd_.handle(), scale_.handle(), shift_.handle(),
                         tscale_.handle(), tshift_.handle());
  }

  // y = gamma (x - mean) invstd + beta with the last statistics; fixed formats round to nearest.
  void forward(runtime& rt, const device_tensor<F>& x, device_tensor<F>& y) {
    y.resize(rt, x.rows(), x.cols());
    device_buffer<float>& out = real_output(rt, y, x.size());
    detail::launch(rt, program(rt), "bn_affine", x.size(), x.data.handle(), detail::checked_count(x.size()),
                   detail::checked_count(channels_), scale_.handle(), shift_.handle(), out.handle());
    store(rt, y, rounding::nearest_even, stream{});
  }

  // sign(BN(x)) as +-1 by comparison against the thresholds of the last statistics.
  void threshold(runtime& rt, const device_tensor<F>& x, device_tensor<F>& out) {
    out.resize(rt, x.rows(), x.cols());
    detail::launch(rt, program(rt), "bn_threshold", x.size(), x.data.handle(), detail::checked_count(x.size()),
                   detail::checked_count(channels_), tscale_.handle(), tshift_.handle(), out.data.handle(),
                   out.exp.handle());
  }

  // Gradients of gamma and beta, and dx if asked (fixed formats: rounded stochastically from rnd).
  void backward(runtime& rt, const device_tensor<F>& x, const device_tensor<F>& dy, device_parameter<F>& gamma,
                device_parameter<F>& beta, device_tensor<F>* dx, stream rnd) {
    const std::size_t npos = positions(x);
    detail::launch_range(rt, program(rt), "bn_grad_params", cl::NDRange(channels_ * reduction_group),
                         cl::NDRange(reduction_group), x.data.handle(), x.exp.handle(), dy.data.handle(),
                         dy.exp.handle(), detail::checked_count(npos), detail::checked_count(channels_),
                         mean_.handle(), invstd_.handle(), dgamma_.handle(), dbeta_.handle());
    store_gradient(rt, dgamma_, gamma);
    store_gradient(rt, dbeta_, beta);
    if (!dx) return;
    dx->resize(rt, x.rows(), x.cols());
    device_buffer<float>& out = real_output(rt, *dx, x.size());
    detail::launch(rt, program(rt), "bn_grad_input", x.size(), x.data.handle(), x.exp.handle(), dy.data.handle(),
                   dy.exp.handle(), detail::checked_count(x.size()), detail::checked_count(channels_),
                   gamma.value.handle(), cl_int{gamma.exp}, mean_.handle(), invstd_.handle(), dgamma_.handle(),
                   dbeta_.handle(), out.handle());
    if constexpr (is_fixed_v<F>) store(rt, *dx, format_traits<F>::error_rounding, rnd);
  }

 private:
  static const cl::Program& program(runtime& rt) {
    static const std::string options = fmt::format("-DTQ={} -DFIXED={}", detail::cl_storage_name<F>(), is_fixed_v<F> ? 1 : 0);
    return rt.program(kernels::batch_norm_source, options);
  }

  std::size_t positions(const device_tensor<F>& x) const {
    if (x.cols() % channels_)
      throw std::invalid_argument(fmt::format("pbnn::opencl::batch_norm: {} features are not a multiple of {} channels",
                                              x.cols(), channels_));
    return x.rows() * (x.cols() / channels_);
  }

  // Where the float results go: the tensor itself in fp32, a scratch to quantize from otherwise.
  device_buffer<float>& real_output(runtime& rt, device_tensor<F>& t, std::size_t n) {
    if constexpr (is_fixed_v<F>) {
      real_.resize(rt, n);
      return real_;
    } else {
      (void)rt;
      (void)n;
      return t.data;
    }
  }
  void store(runtime& rt, device_tensor<F>& t, rounding r, stream rnd) {
    if constexpr (is_fixed_v<F>)
      quantize_into(rt, real_, t.size(), t.data, t.exp, format_traits<F>::operand_max, r, rnd, t.max_scratch);
    else
      check(rt.queue().enqueueFillBuffer(t.exp.handle(), cl_int{0}, 0, sizeof(cl_int)), "setting an exponent");
  }
  // The CPU's store_float_grads: fp32 as is; fixed formats as int32 with one exponent (30 bits).
  void store_gradient(runtime& rt, const device_buffer<float>& g, device_parameter<F>& p) {
    p.grad_factor = 1.0f;
    if (p.grad_exp.size() != 1) p.grad_exp.resize(rt, 1);
    if constexpr (is_fixed_v<F>) {
      quantize_into(rt, g, channels_, p.grad, p.grad_exp, (1 << 30) - 1, rounding::nearest_even, stream{}, max_scratch_);
    } else {
      check(rt.queue().enqueueCopyBuffer(g.handle(), p.grad.handle(), 0, 0, channels_ * sizeof(float)),
            "copying a gradient");
      check(rt.queue().enqueueFillBuffer(p.grad_exp.handle(), cl_int{0}, 0, sizeof(cl_int)), "setting an exponent");
    }
  }

  std::size_t channels_;
  device_buffer<float> mean_, invstd_, scale_, shift_, tscale_, tshift_, dgamma_, dbeta_, real_;
  device_buffer<std::uint32_t> max_scratch_;
};

}  // namespace pbnn::opencl
