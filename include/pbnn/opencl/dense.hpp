#pragma once
// A fully connected layer on an OpenCL device, y = x theta(P)^T (+ b), computed as the CPU's
// dense_layer computes it (same products, rounding and random streams, drawn from the context at the
// same points): the weights binarized per the policy's scheme, the product in the device GEMM
// (fp32, or int8/int16 with int32 sums requantized on the device), the scheme's gradient mask.
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include <fmt/format.h>

#include "pbnn/binarize.hpp"
#include "pbnn/context.hpp"
#include "pbnn/opencl/binarize.hpp"
#include "pbnn/opencl/cl_types.hpp"
#include "pbnn/opencl/gemm.hpp"
#include "pbnn/opencl/kernels/bias_cl.hpp"
#include "pbnn/opencl/launch.hpp"
#include "pbnn/opencl/parameter.hpp"
#include "pbnn/opencl/quantize.hpp"
#include "pbnn/opencl/tensor.hpp"
#include "pbnn/parameter.hpp"
#include "pbnn/policy.hpp"

namespace pbnn::opencl {

template <class Policy, std::size_t In, std::size_t Out, bool Bias = false>
class device_dense {
 public:
  using format = typename Policy::format;
  using scheme = typename Policy::scheme;
  using value_type = storage_t<format>;

  // The layer with the host parameter's current values (initialize or load on the host, then upload).
  device_dense(runtime& rt, const parameter<format>& weight) requires(!Bias)
      : weight_(device_parameter<format>::from_host(rt, weight)) {
    check_size(weight, In * Out, "weight");
    theta_exp_.resize(rt, 1);
  }
  device_dense(runtime& rt, const parameter<format>& weight, const parameter<format>& bias) requires Bias
      : weight_(device_parameter<format>::from_host(rt, weight)), bias_(device_parameter<format>::from_host(rt, bias)) {
    check_size(weight, In * Out, "weight");
    check_size(bias, Out, "bias");
    theta_exp_.resize(rt, 1);
  }

  device_parameter<format>& weight() noexcept { return weight_; }
  device_parameter<format>& bias() noexcept requires Bias { return bias_; }

  void forward(runtime& rt, const device_tensor<format>& x, device_tensor<format>& y, context& ctx) {
    const std::size_t b = x.rows();
    y.resize(rt, b, Out);
    scheme_weights<scheme>(rt, weight_, theta_, theta_exp_, ctx);
    if constexpr (!is_fixed_v<format>) {
      matmul_xwt(rt, x.data, weights(), y.data, b, Out, In);
      if constexpr (Bias)
        detail::launch(rt, program(rt), "add_bias", b * Out, y.data.handle(), detail::checked_count(b),
                       detail::checked_count(Out), bias_.value.handle());
    } else {
      matmul_xwt(rt, x.data, weights(), acc_, b, Out, In);
      if constexpr (Bias)  // in the sums' units, rounded to nearest, as the CPU layer adds it
        detail::launch(rt, program(rt), "add_bias", b * Out, acc_.handle(), detail::checked_count(b),
                       detail::checked_count(Out), bias_.value.handle(), cl_int{bias_.exp}, x.exp.handle(),
                       theta_exp_.handle());
      requantize_dynamic(rt, acc_, {&x.exp, &theta_exp_, 0}, y, rounding::nearest_even, stream{});
    }
  }

  // dW into weight().grad (scale 2^grad_exp times grad_factor) and dx if asked, from the last forward's theta.
  void backward(runtime& rt, const device_tensor<format>& x, const device_tensor<format>& dy, device_tensor<format>* dx,
                context& ctx) {
    const std::size_t b = x.rows();
    weight_.grad_factor = 1.0f;
    if constexpr (!is_fixed_v<format>) {  // fp32 exponents stay 0 (tensor.hpp)
      if (dx) dx->resize(rt, b, In);
      matmul_dense_backward(rt, dy.data, x.data, weights(), weight_.grad, dx ? &dx->data : nullptr, b, Out, In);
    } else {
      matmul_dytx(rt, dy.data, x.data, weight_.grad, b, Out, In);
      sum_exponents(rt, {&dy.exp, &x.exp, 0}, weight_.grad_exp);
      if (dx) {  // the product reduces the sums' largest magnitude for their requantization
        dx->resize(rt, b, In);
        const maximum_reservation reserved = reserve_maximum(rt, dx->size(), dx->maxima);
        matmul_dyw(rt, dy.data, weights(), acc_, b, Out, In, {}, tracked_maximum(dx->maxima, reserved));
        requantize_reserved(rt, acc_, {&dy.exp, &theta_exp_, 0}, *dx, format_traits<format>::error_rounding,
                            ctx.next_stream(), reserved);
      }
    }
    if constexpr (is_progressive_v<scheme>) {
      mask_saturated(rt, weight_, theta_, theta_exp_, ctx.v);
    }
    if constexpr (Bias) {
      bias_.grad_factor = 1.0f;
      detail::launch(rt, program(rt), "bias_grad", Out, dy.data.handle(), dy.exp.handle(), detail::checked_count(b),
                     detail::checked_count(Out), bias_.grad.handle(), bias_.grad_exp.handle());
    }
  }

 private:
  static void check_size(const parameter<format>& p, std::size_t n, const char* what) {
    if (p.size() != n)
      throw std::invalid_argument(
          fmt::format("pbnn::opencl::device_dense: a {}-element {} for {} x {}", p.size(), what, Out, In));
  }
  static const cl::Program& program(runtime& rt) {
    static const std::string options =
        fmt::format("-DTQ={} -DFIXED={}", detail::cl_storage_name<format>(), is_fixed_v<format> ? 1 : 0);
    return rt.static_program(kernels::bias_source, options);
  }

  device_parameter<format> weight_;
  device_parameter<format> bias_;  // empty without a bias
  const device_buffer<value_type>& weights() const noexcept { return product_weights<scheme>(weight_, theta_); }

  device_buffer<value_type> theta_;
  device_buffer<int> theta_exp_;
  device_buffer<std::int32_t> acc_;  // fixed formats: int32 sums before requantization
};

}  // namespace pbnn::opencl
