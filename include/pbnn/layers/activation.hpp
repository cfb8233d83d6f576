#pragma once
// Element-wise activations: relu, hardtanh, and binary_act (the binarization scheme applied to
// activations: sign with a straight-through gradient, stochastic sign, or the progressive
// clamp(v x, -1, 1) of the batch-normalized input).
#include <algorithm>
#include <cmath>
#include <string>

#include <fmt/format.h>

#include "pbnn/layers/layer_spec.hpp"

namespace pbnn {

// The members of the layer interface that a layer without parameters or state has nothing to do in.
struct stateless_layer {
  void init(rng&) {}
  template <class Fn>
  void for_each_parameter(Fn&&) {}
  template <class Fn>
  void for_each_state(Fn&&) {}
  void save(io::safetensors&, const std::string&) const {}
  void load(const io::safetensors&, const std::string&) {}
};

template <class Policy, class In>
class relu_layer : public stateless_layer {
 public:
  using format = typename Policy::format;
  using in_shape = In;
  using out_shape = In;
  static std::string describe() { return "relu"; }
  void forward(const batch_tensor<format>& x, batch_tensor<format>& y, context&) {
    y.resize(x.rows(), x.cols());
    using V = storage_t<format>;
    const V* in = x.data.data();
    V* out = y.data.data();
    const std::size_t n = x.size();
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) out[i] = std::max(in[i], V{0});
    y.exp = x.exp;
  }
  void backward(const batch_tensor<format>& x, const batch_tensor<format>&, const batch_tensor<format>& dy,
                batch_tensor<format>* dx, context&) {
    if (!dx) return;
    dx->resize(dy.rows(), dy.cols());
    using V = storage_t<format>;
    const V* in = x.data.data();
    const V* g = dy.data.data();
    V* out = dx->data.data();
    const std::size_t n = dy.size();
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) out[i] = in[i] > V{0} ? g[i] : V{0};
    dx->exp = dy.exp;
  }
};

// hardtanh(x) = clamp(x, -1, 1): the progressive function at v = 1.
template <class Policy, class In>
class hardtanh_layer : public stateless_layer {
 public:
  using format = typename Policy::format;
  using in_shape = In;
  using out_shape = In;
  static std::string describe() { return "hardtanh"; }
  void forward(const batch_tensor<format>& x, batch_tensor<format>& y, context& ctx) {
    context unit = ctx;
    unit.v = 1.0f;
    unit.mode = mode::train;  // the clamp itself, never its sign
    progressive<log_schedule, activation_gradient::exact>::activate(x, y, unit);
  }
  void backward(const batch_tensor<format>& x, const batch_tensor<format>&, const batch_tensor<format>& dy,
                batch_tensor<format>* dx, context& ctx) {
    if (!dx) return;
    context unit = ctx;
    unit.v = 1.0f;
    progressive<log_schedule, activation_gradient::exact>::activate_grad(x, dy, *dx, unit);
  }
};

// The policy's scheme applied to activations. After a batch_norm, the network computes the
// evaluation output (and, for progressive schemes once v reaches the threshold, the training output)
// as sign(BN(x)) by comparison against thresholds; see sequential.hpp.
template <class Policy, class In>
class binary_act_layer : public stateless_layer {
 public:
  using format = typename Policy::format;
  using scheme = typename Policy::scheme;
  static_assert(scheme::binarizes,
                "pbnn::binary_act: the policy's scheme does not binarize (pbnn::real); use relu or hardtanh");
  using in_shape = In;
  using out_shape = In;
  static std::string describe() { return fmt::format("binary_act({})", scheme::name); }
  void forward(const batch_tensor<format>& x, batch_tensor<format>& y, context& ctx) { scheme::activate(x, y, ctx); }
  void backward(const batch_tensor<format>& x, const batch_tensor<format>&, const batch_tensor<format>& dy,
                batch_tensor<format>* dx, context& ctx) {
    if (dx) scheme::activate_grad(x, dy, *dx, ctx);
  }
};

struct relu {
  template <class Policy, class In>
  using layer = relu_layer<Policy, In>;
};
struct hardtanh {
  template <class Policy, class In>
  using layer = hardtanh_layer<Policy, In>;
};
struct binary_act {
  template <class Policy, class In>
  using layer = binary_act_layer<Policy, In>;
};

}  // namespace pbnn
