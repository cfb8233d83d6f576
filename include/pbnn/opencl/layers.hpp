#pragma once
// The device version of each CPU layer (layers/*.hpp): device_layer<HostLayer> computes what
// HostLayer computes, drawing random streams from the context at the same points, so that a device
// network equals its host network given the same generator (bit for bit in fixed formats). A layer
// without a device version is a compile error naming it.
//
// Every device layer provides
//     device_layer(runtime&, HostLayer&);                  // parameters and state copied from the host layer
//     void forward(runtime&, const tensor& x, tensor& y, context&);
//     void backward(runtime&, const tensor& x, const tensor& y, const tensor& dy, tensor* dx, context&);
//     template <class Fn> void for_each_parameter(Fn&&);   // fn(device_parameter<F>&), the host layer's order
//     void upload(runtime&, HostLayer&);                   // host parameters and state -> device
//     void download(runtime&, HostLayer&);                 // device -> host
// and batch norm also sign_by_threshold() and begin_calibration(), as the host layer.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "pbnn/context.hpp"
#include "pbnn/layers/activation.hpp"
#include "pbnn/layers/batch_norm.hpp"
#include "pbnn/layers/conv2d.hpp"
#include "pbnn/layers/dense.hpp"
#include "pbnn/layers/max_pool.hpp"
#include "pbnn/opencl/activation.hpp"
#include "pbnn/opencl/batch_norm.hpp"
#include "pbnn/opencl/binarize.hpp"
#include "pbnn/opencl/conv.hpp"
#include "pbnn/opencl/conv2d.hpp"
#include "pbnn/opencl/dense.hpp"
#include "pbnn/opencl/parameter.hpp"
#include "pbnn/opencl/tensor.hpp"

namespace pbnn::opencl {

template <class HostLayer>
inline constexpr bool has_device_version = false;

template <class HostLayer>
struct device_layer {
  static_assert(has_device_version<HostLayer>,
                "pbnn::opencl::backend has no device version of this layer (named in the instantiation above)");
};

namespace detail {

// Host parameter values (and exponent) to the device and back.
template <class F>
void upload_values(runtime& rt, device_parameter<F>& d, const parameter<F>& h) {
  d.value.upload(rt, h.value.data(), h.size());
  d.exp = h.exp;
  d.value_exp.upload(rt, &h.exp, 1);
  d.theta_v = 0;  // theta no longer matches the values
}
template <class F>
void download_values(runtime& rt, const device_parameter<F>& d, parameter<F>& h) {
  const auto v = d.value.download(rt);
  std::copy(v.begin(), v.end(), h.value.begin());
  h.exp = d.exp;
}

// The exponent of y = the exponent of x (operations that move or select values); fp32 exponents
// stay 0 (tensor.hpp).
template <class F>
void copy_exponent(runtime& rt, const device_tensor<F>& x, device_tensor<F>& y) {
  if constexpr (is_fixed_v<F>)
    check(rt.queue().enqueueCopyBuffer(x.exp.handle(), y.exp.handle(), 0, 0, sizeof(cl_int)), "copying an exponent");
  else
    (void)rt, (void)x, (void)y;
}

// A stream drawn where the host layer draws one that the device computation does not need
// (keeps every later stream equal to the host's).
inline void skip_stream(context& ctx) { (void)ctx.next_stream(); }

template <class F>
constexpr bool rounds_errors_stochastically() {
  if constexpr (is_fixed_v<F>) return format_traits<F>::error_rounding == rounding::stochastic;
  else return false;
}

}  // namespace detail

template <class P, class In, std::size_t Out, bool Bias>
inline constexpr bool has_device_version<dense_layer<P, In, Out, Bias>> = true;
template <class P, class In, std::size_t Out, bool Bias>
class device_layer<dense_layer<P, In, Out, Bias>> {
 public:
  using host_type = dense_layer<P, In, Out, Bias>;
  using format = typename P::format;
  using tensor = device_tensor<format>;

  device_layer(runtime& rt, host_type& h) : dense_(make(rt, h)) {}

  void forward(runtime& rt, const tensor& x, tensor& y, context& ctx) { dense_.forward(rt, x, y, ctx); }
  void backward(runtime& rt, const tensor& x, const tensor&, const tensor& dy, tensor* dx, context& ctx) {
    dense_.backward(rt, x, dy, dx, ctx);
  }
  template <class Fn>
  void for_each_parameter(Fn&& fn) {
    fn(dense_.weight());
    if constexpr (Bias) fn(dense_.bias());
  }
  void upload(runtime& rt, host_type& h) {
    detail::upload_values(rt, dense_.weight(), h.weight());
    if constexpr (Bias) detail::upload_values(rt, dense_.bias(), h.bias());
  }
  void download(runtime& rt, host_type& h) {
    detail::download_values(rt, dense_.weight(), h.weight());
    if constexpr (Bias) detail::download_values(rt, dense_.bias(), h.bias());
  }

 private:
  using device_type = device_dense<P, In::size, Out, Bias>;
  static device_type make(runtime& rt, host_type& h) {
    if constexpr (Bias) return device_type(rt, h.weight(), h.bias());
    else return device_type(rt, h.weight());
  }
  device_type dense_;
};

template <class P, class In, std::size_t Cout, std::size_t K, std::size_t S, std::size_t Pad>
inline constexpr bool has_device_version<conv2d_layer<P, In, Cout, K, S, Pad>> = true;
template <class P, class In, std::size_t Cout, std::size_t K, std::size_t S, std::size_t Pad>
class device_layer<conv2d_layer<P, In, Cout, K, S, Pad>> {
 public:
  using host_type = conv2d_layer<P, In, Cout, K, S, Pad>;
  using format = typename P::format;
  using tensor = device_tensor<format>;
  using dims = pbnn::detail::image_dims<In>;

  device_layer(runtime& rt, host_type& h) : conv_(rt, h.weight()) {}

  void forward(runtime& rt, const tensor& x, tensor& y, context& ctx) { conv_.forward(rt, x, y, ctx); }
  void backward(runtime& rt, const tensor& x, const tensor&, const tensor& dy, tensor* dx, context& ctx) {
    conv_.backward(rt, x, dy, dx, ctx);
  }
  template <class Fn>
  void for_each_parameter(Fn&& fn) {
    fn(conv_.weight());
  }
  void upload(runtime& rt, host_type& h) { detail::upload_values(rt, conv_.weight(), h.weight()); }
  void download(runtime& rt, host_type& h) { detail::download_values(rt, conv_.weight(), h.weight()); }

 private:
  device_conv2d<P, dims::C, dims::H, dims::W, Cout, K, S, Pad> conv_;
};

template <class P, class In, std::size_t N>
inline constexpr bool has_device_version<batch_norm_layer<P, In, N>> = true;
template <class P, class In, std::size_t N>
class device_layer<batch_norm_layer<P, In, N>> {
 public:
  using host_type = batch_norm_layer<P, In, N>;
  using format = typename P::format;
  using tensor = device_tensor<format>;

  device_layer(runtime& rt, host_type& h)
      : gamma_(device_parameter<format>::from_host(rt, h.gamma())),
        beta_(device_parameter<format>::from_host(rt, h.beta())), bn_(rt, host_type::C) {
    upload(rt, h);
  }

  void forward(runtime& rt, const tensor& x, tensor& y, context& ctx) {
    if (ctx.mode == mode::train) return bn_.train_forward(rt, x, gamma_, beta_, y);
    statistics(rt, x, ctx);
    bn_.forward(rt, x, y);
  }
  // As the host layer: the last forward's statistics in training, the running ones in evaluation,
  // this batch's in calibration.
  void sign_by_threshold(runtime& rt, const tensor& x, tensor& out, context& ctx) {
    if (!ctx.training()) statistics(rt, x, ctx);
    bn_.threshold(rt, x, out);
  }
  void backward(runtime& rt, const tensor& x, const tensor&, const tensor& dy, tensor* dx, context& ctx) {
    const stream rnd = dx && detail::rounds_errors_stochastically<format>() ? ctx.next_stream() : stream{};
    bn_.backward(rt, x, dy, gamma_, beta_, dx, rnd);
  }
  // Training of this layer and the activation after it: fp32 in one pass each way
  // (device_batch_norm::forward_activate; y is not written), fixed formats with the progressive
  // activation computed by the pass that quantizes y (device_batch_norm::forward_progressive). The
  // backward pass turns the activation's dy into this layer's dx in place.
  void forward_activate(runtime& rt, const tensor& x, tensor& y, tensor& out, fused_activation act, context& ctx) {
    if constexpr (is_fixed_v<format>) {
      if (act != fused_activation::progressive)
        throw std::logic_error("pbnn::opencl: a fixed-format batch norm fuses only the progressive activation");
      statistics(rt, x, ctx);
      bn_.forward_progressive(rt, x, y, out, ctx.v);
    } else if (ctx.mode == mode::train) {
      (void)y;
      bn_.train_forward_activate(rt, x, gamma_, beta_, out, act, ctx.v);
    } else {
      statistics(rt, x, ctx);
      bn_.forward_activate(rt, x, out, act, ctx.v);
    }
  }
  void backward_through_activation(runtime& rt, const tensor& x, const tensor& y, tensor& d, fused_activation act,
                                   bool with_dx, context& ctx) {
    if constexpr (is_fixed_v<format>) {
      (void)act;  // straight-through (binary_act's backward), folded into this layer's
      const stream rnd = with_dx && detail::rounds_errors_stochastically<format>() ? ctx.next_stream() : stream{};
      bn_.backward_straight_through(rt, x, y, d, gamma_, beta_, with_dx ? &d : nullptr, rnd);
    } else {
      (void)y, (void)ctx;
      bn_.backward_through_activation(rt, x, d, gamma_, beta_, act, with_dx);
    }
  }
  // fp32 training of a max pool (pool, of the layer in front), this layer and the activation after
  // it, one pass each way where the device allows (device_batch_norm::train_pool_forward_activate).
  template <class Pool>
  void pool_forward_activate(runtime& rt, Pool& pool, const tensor& image, tensor& pooled, tensor& out,
                             fused_activation act, context& ctx)
    requires(!is_fixed_v<format>)
  {
    bn_.train_pool_forward_activate(rt, image, pool.pooling(image.rows()), pooled, gamma_, beta_, out, act, ctx.v);
  }
  template <class Pool>
  void pool_backward_through_activation(runtime& rt, Pool& pool, const tensor& image, const tensor& pooled, tensor& d,
                                        tensor* dimage, fused_activation act, context&)
    requires(!is_fixed_v<format>)
  {
    bn_.pool_backward_through_activation(rt, pooled, pool.pooling(image.rows()), d, dimage, gamma_, beta_, act);
  }
  void begin_calibration() noexcept { calibration_batches_ = 0; }

  template <class Fn>
  void for_each_parameter(Fn&& fn) {
    fn(gamma_);
    fn(beta_);
  }
  void upload(runtime& rt, host_type& h) {
    detail::upload_values(rt, gamma_, h.gamma());
    detail::upload_values(rt, beta_, h.beta());
    bn_.running_mean.upload(rt, h.running_mean());
    bn_.running_var.upload(rt, h.running_var());
  }
  void download(runtime& rt, host_type& h) {
    detail::download_values(rt, gamma_, h.gamma());
    detail::download_values(rt, beta_, h.beta());
    h.for_each_state([&](std::string_view name, std::vector<float>& values) {
      values = (name == "running_mean" ? bn_.running_mean : bn_.running_var).download(rt);
    });
  }

 private:
  void statistics(runtime& rt, const tensor& x, const context& ctx) {
    // Calibration: the mean over the batches since begin_calibration(), as on the host.
    const float weight = 1.0f / static_cast<float>(calibration_batches_ + 1);
    bn_.statistics(rt, x, gamma_, beta_, ctx.mode, weight);
    if (ctx.mode == mode::calibrate) ++calibration_batches_;
  }

  device_parameter<format> gamma_, beta_;
  device_batch_norm<format> bn_;
  std::size_t calibration_batches_ = 0;
};

// The element-wise layers without parameters or state.
struct stateless_device_layer {
  template <class Fn>
  void for_each_parameter(Fn&&) {}
  template <class H>
  void upload(runtime&, H&) {}
  template <class H>
  void download(runtime&, H&) {}
};

template <class P, class In>
inline constexpr bool has_device_version<relu_layer<P, In>> = true;
template <class P, class In>
class device_layer<relu_layer<P, In>> : public stateless_device_layer {
 public:
  using format = typename P::format;
  using tensor = device_tensor<format>;
  device_layer(runtime&, relu_layer<P, In>&) {}
  // After a batch norm, fp32 training computes ReLU inside the normalization's passes.
  static constexpr bool fuses_after_batch_norm = !is_fixed_v<format>;
  static constexpr fused_activation fused = fused_activation::relu;

  void forward(runtime& rt, const tensor& x, tensor& y, context&) { relu(rt, x, y); }
  void backward(runtime& rt, const tensor& x, const tensor&, const tensor& dy, tensor* dx, context&) {
    if (dx) relu_grad(rt, x, dy, *dx);
  }
};

template <class P, class In>
inline constexpr bool has_device_version<hardtanh_layer<P, In>> = true;
template <class P, class In>
class device_layer<hardtanh_layer<P, In>> : public stateless_device_layer {
 public:
  using format = typename P::format;
  using tensor = device_tensor<format>;
  device_layer(runtime&, hardtanh_layer<P, In>&) {}
  void forward(runtime& rt, const tensor& x, tensor& y, context&) { hardtanh(rt, x, y); }
  void backward(runtime& rt, const tensor& x, const tensor&, const tensor& dy, tensor* dx, context& ctx) {
    if (!dx) return;
    if constexpr (is_fixed_v<format>) detail::skip_stream(ctx);  // the host's exact gradient at v = 1 draws one
    hardtanh_grad(rt, x, dy, *dx);
  }
};

template <class P, class In>
inline constexpr bool has_device_version<binary_act_layer<P, In>> = true;
template <class P, class In>
class device_layer<binary_act_layer<P, In>> : public stateless_device_layer {
 public:
  using format = typename P::format;
  using scheme = typename P::scheme;
  using tensor = device_tensor<format>;
  device_layer(runtime&, binary_act_layer<P, In>&) {}

  // After a batch norm, training computes this activation inside the normalization's passes where
  // its gradient is straight-through: fp32 sign and progressive, fixed formats progressive (the
  // device batch norm layer's forward_activate).
  static constexpr bool fuses_after_batch_norm = [] {
    if constexpr (is_progressive_v<scheme>) return scheme::act_grad == activation_gradient::straight_through;
    else if constexpr (is_fixed_v<format>) return false;
    else return std::is_same_v<scheme, pbnn::sign>;
  }();
  static constexpr fused_activation fused =
      is_progressive_v<scheme> ? fused_activation::progressive : fused_activation::sign;

  // scheme::activate: sign in evaluation, the scheme's function of x in training.
  void forward(runtime& rt, const tensor& x, tensor& y, context& ctx) {
    y.resize(rt, x.rows(), x.cols());
    if (!ctx.training() || std::is_same_v<scheme, pbnn::sign>) return sign_values<format>(rt, x.data, x.size(), y.data, &y.exp);
    if constexpr (std::is_same_v<scheme, pbnn::stochastic>)
      stochastic_signs<format>(rt, x.data, x.exp, x.size(), y.data, &y.exp, ctx.next_stream());
    else
      clamp_scale<format>(rt, x.data, x.exp, x.size(), ctx.v, y.data, y.exp);
  }
  // scheme::activate_grad: straight through, or progressive's exact gradient.
  void backward(runtime& rt, const tensor& x, const tensor&, const tensor& dy, tensor* dx, context& ctx) {
    if (!dx) return;
    if constexpr (is_progressive_v<scheme>) {
      if constexpr (scheme::act_grad == activation_gradient::exact)
        return progressive_grad(rt, x, dy, *dx, ctx.v, is_fixed_v<format> ? ctx.next_stream() : stream{});
    }
    straight_through(rt, x, dy, *dx);
  }
};

template <class P, class In, std::size_t Size>
inline constexpr bool has_device_version<max_pool_layer<P, In, Size>> = true;
template <class P, class In, std::size_t Size>
class device_layer<max_pool_layer<P, In, Size>> : public stateless_device_layer {
 public:
  using format = typename P::format;
  using tensor = device_tensor<format>;
  using dims = pbnn::detail::image_dims<In>;
  device_layer(runtime&, max_pool_layer<P, In, Size>&) {}

  void forward(runtime& rt, const tensor& x, tensor& y, context& ctx) {
    const auto g = geometry(x.rows());
    sum_pending(rt, x);  // a convolution's output, unsummed only for a batch norm's fused pass (not this one)
    y.resize(rt, x.rows(), x.cols() / (Size * Size));
    max_pool(rt, x.data, g, Size, y.data, ctx.training() ? &argmax_ : nullptr);
    detail::copy_exponent(rt, x, y);
  }
  void backward(runtime& rt, const tensor& x, const tensor&, const tensor& dy, tensor* dx, context&) {
    if (!dx) return;
    dx->resize(rt, x.rows(), x.cols());
    max_pool_grad(rt, dy.data, argmax_, geometry(x.rows()), Size, dx->data);
    detail::copy_exponent(rt, dy, *dx);
  }
  // What a batch norm trained together with this pool reads of it (train_pool_forward_activate).
  typename device_batch_norm<format>::max_pool_input pooling(std::size_t b) { return {geometry(b), Size, &argmax_}; }

 private:
  static conv_geometry geometry(std::size_t b) { return {b, dims::H, dims::W, dims::C, Size, Size, 0}; }
  device_buffer<std::uint8_t> argmax_;
};

}  // namespace pbnn::opencl
