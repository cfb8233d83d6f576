#pragma once
// The binarization schemes' element-wise work on an OpenCL device (kernels/binarize_cl.hpp), bit for
// bit the CPU backend's given the same stream. Every function enqueues one kernel and waits for none.
// Outputs must not alias inputs: work-item 0 writes the output exponent while others still read the input's.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include <fmt/format.h>

#include "pbnn/binarize.hpp"
#include "pbnn/context.hpp"
#include "pbnn/format.hpp"
#include "pbnn/opencl/cl_types.hpp"
#include "pbnn/opencl/kernels/binarize_cl.hpp"
#include "pbnn/opencl/kernels/random_cl.hpp"
#include "pbnn/opencl/launch.hpp"
#include "pbnn/opencl/parameter.hpp"
#include "pbnn/opencl/quantize.hpp"
#include "pbnn/opencl/tensor.hpp"
#include "pbnn/quantize.hpp"
#include "pbnn/random.hpp"

namespace pbnn::opencl {

namespace detail {

template <class F>
const cl::Program& binarize_program(runtime& rt) {
  static const std::string source = kernels::with_random(kernels::binarize_source);
  static const std::string options = [] {
    if constexpr (!is_fixed_v<F>) return std::string("-DTQ=float -DTG=float -DUNIT_FRAC=0");
    else return fmt::format("-DTQ={} -DTG=int -DUNIT_FRAC={}", cl_storage_name<F>(), format_traits<F>::unit_frac);
  }();
  return rt.static_program(source, options);
}

}  // namespace detail

// out = sign(in), sign(0) = -1 (deterministic weights, binary activations); exp_out, if given, = 0.
template <class F>
void sign_values(runtime& rt, const device_buffer<storage_t<F>>& in, std::size_t n, device_buffer<storage_t<F>>& out,
                 device_buffer<int>* exp_out = nullptr) {
  out.resize(rt, std::max(out.size(), n));
  detail::launch(rt, detail::binarize_program<F>(rt), "sign_values", n, in.handle(), detail::checked_count(n),
                 out.handle(), exp_out ? exp_out->handle() : in.handle(), cl_int{exp_out != nullptr});
}

// out = +1 with probability clamp((x + 1) / 2, 0, 1), x = in 2^in_exp, from stream rnd.
template <class F>
void stochastic_signs(runtime& rt, const device_buffer<storage_t<F>>& in, const device_buffer<int>& in_exp, std::size_t n,
                      device_buffer<storage_t<F>>& out, device_buffer<int>* exp_out, stream rnd) {
  out.resize(rt, std::max(out.size(), n));
  detail::launch(rt, detail::binarize_program<F>(rt), "stochastic_signs", n, in.handle(), in_exp.handle(),
                 detail::checked_count(n), out.handle(), exp_out ? exp_out->handle() : in.handle(),
                 cl_int{exp_out != nullptr}, static_cast<cl_uint>(rnd.key));
}

// Progressive: out = clamp(v x, -1, 1), x = in 2^in_exp (weights theta, or activations).
template <class F>
void clamp_scale(runtime& rt, const device_buffer<storage_t<F>>& in, const device_buffer<int>& in_exp, std::size_t n,
                 float v, device_buffer<storage_t<F>>& out, device_buffer<int>& exp_out) {
  out.resize(rt, std::max(out.size(), n));
  detail::launch(rt, detail::binarize_program<F>(rt), "clamp_scale", n, in.handle(), in_exp.handle(),
                 detail::checked_count(n), v, out.handle(), exp_out.handle());
}

// dx = dy where |x| <= 1, else 0 (the straight-through gradient of sign).
template <class F>
void straight_through(runtime& rt, const device_tensor<F>& x, const device_tensor<F>& dy, device_tensor<F>& dx) {
  dx.resize(rt, dy.rows(), dy.cols());
  detail::launch(rt, detail::binarize_program<F>(rt), "straight_through", dy.size(), x.data.handle(), x.exp.handle(),
                 dy.data.handle(), dy.exp.handle(), detail::checked_count(dy.size()), dx.data.handle(),
                 dx.exp.handle());
}

// The exact gradient of the progressive activation clamp(v x): v dy inside |v x| <= 1, else 0.
template <class F>
void progressive_grad(runtime& rt, const device_tensor<F>& x, const device_tensor<F>& dy, device_tensor<F>& dx, float v,
                      stream rnd) {
  dx.resize(rt, dy.rows(), dy.cols());
  const int k = std::max(0, static_cast<int>(std::ceil(std::log2(v))));  // as the CPU backend computes it
  detail::launch(rt, detail::binarize_program<F>(rt), "progressive_grad", dy.size(), x.data.handle(), x.exp.handle(),
                 dy.data.handle(), dy.exp.handle(), detail::checked_count(dy.size()), v, 1.0f / v, cl_int{k},
                 dx.data.handle(), dx.exp.handle(), static_cast<cl_uint>(rnd.key));
}

// Weights kept real as GEMM operands (fixed: P shifted into the operand range), with their exponent.
template <class F>
void real_weights(runtime& rt, const device_buffer<storage_t<F>>& value, int value_exp, std::size_t n,
                  device_buffer<storage_t<F>>& out, device_buffer<int>& exp_out) {
  int shift = 0;
  if constexpr (is_fixed_v<F>)
    shift = pbnn::detail::shift_for(static_cast<std::uint64_t>(format_traits<F>::param_max), format_traits<F>::operand_max, 0);
  out.resize(rt, std::max(out.size(), n));
  detail::launch(rt, detail::binarize_program<F>(rt), "real_weights", n, value.handle(), cl_int{value_exp},
                 detail::checked_count(n), cl_int{shift}, out.handle(), exp_out.handle());
}

// Progressive weights: the gradient of P is zero where |v P| > 1 (P = value 2^value_exp).
template <class F>
void mask_saturated_values(runtime& rt, const device_buffer<storage_t<F>>& value, int value_exp, std::size_t n, float v,
                    device_buffer<typename format_traits<F>::accum>& grad) {
  detail::launch(rt, detail::binarize_program<F>(rt), "mask_saturated", n, value.handle(), cl_int{value_exp},
                 detail::checked_count(n), 1.0f / v, grad.handle());
}

// fp32 weights of a scheme that does not binarize are their own theta: a layer's products read the
// values (product_weights), and scheme_weights writes no copy of them.
template <class Scheme, class F>
inline constexpr bool theta_is_value = !Scheme::binarizes && !is_fixed_v<F>;

// What a layer's products read as its weights: theta as scheme_weights leaves it, or the values.
template <class Scheme, class F>
const device_buffer<storage_t<F>>& product_weights(const device_parameter<F>& w,
                                                   const device_buffer<storage_t<F>>& theta) noexcept {
  if constexpr (theta_is_value<Scheme, F>) return w.value;
  else return theta;
}

// theta of a layer's weights per its scheme and the mode, as Scheme::weights does on the CPU
// (drawing a stream from the context where the CPU draws one); kept where the optimizer already
// wrote it for this v (device_parameter::theta_v); none where theta is the values (theta_is_value).
template <class Scheme, class F>
void scheme_weights(runtime& rt, device_parameter<F>& w, device_buffer<storage_t<F>>& theta,
                    device_buffer<int>& theta_exp, context& ctx) {
  if constexpr (theta_is_value<Scheme, F>) return;
  if (ctx.training() && w.theta_v != 0 && w.theta_v == ctx.v) return;
  w.theta_v = 0;
  const std::size_t n = w.size();
  if constexpr (!Scheme::binarizes) {
    real_weights<F>(rt, w.value, w.exp, n, theta, theta_exp);
  } else if constexpr (std::is_same_v<Scheme, pbnn::sign>) {
    sign_values<F>(rt, w.value, n, theta, &theta_exp);
  } else {
    if (!ctx.training()) return sign_values<F>(rt, w.value, n, theta, &theta_exp);
    if constexpr (std::is_same_v<Scheme, pbnn::stochastic>)
      stochastic_signs<F>(rt, w.value, w.value_exp, n, theta, &theta_exp, ctx.next_stream());
    else
      clamp_scale<F>(rt, w.value, w.value_exp, n, ctx.v, theta, theta_exp);
  }
}

// The end of a progressive layer's backward pass for its weights w: the gradient's mask, or, where
// the optimizer takes it over (w.defer_to_update), what the optimizer needs for it; and the
// gradient's scale v.
template <class F>
void mask_saturated(runtime& rt, device_parameter<F>& w, device_buffer<storage_t<F>>& theta,
                    device_buffer<int>& theta_exp, float v) {
  if (w.defer_to_update) {
    w.deferred_v = v;
    w.deferred_theta = &theta;
    w.deferred_theta_exp = &theta_exp;
  } else {
    mask_saturated_values<F>(rt, w.value, w.exp, w.size(), v, w.grad);
  }
  w.grad_factor = v;
}

}  // namespace pbnn::opencl
