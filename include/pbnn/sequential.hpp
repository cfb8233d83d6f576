#pragma once
// A network: layer specs composed at compile time over one policy, each layer's input shape being
// its predecessor's output shape.
//
//   using P = pbnn::policy<pbnn::fixed<8>, pbnn::progressive<>>;
//   using mlp = pbnn::sequential<P, pbnn::input<784>,
//       pbnn::dense<1000>, pbnn::batch_norm<>, pbnn::binary_act,
//       pbnn::dense<500>,  pbnn::batch_norm<>, pbnn::binary_act,
//       pbnn::dense<10, pbnn::real>, pbnn::batch_norm<>>;
//
// A batch_norm followed by binary_act is evaluated as one threshold comparison (eqs. 4-5) in
// evaluation, and in training once context::bn_threshold is set (progressive schemes, v >= 500):
// detail/layer_passes.hpp, shared with the other backends.
#include <algorithm>
#include <array>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "pbnn/detail/layer_passes.hpp"
#include "pbnn/layers/activation.hpp"
#include "pbnn/layers/batch_norm.hpp"
#include "pbnn/layers/conv2d.hpp"
#include "pbnn/layers/dense.hpp"
#include "pbnn/layers/max_pool.hpp"

namespace pbnn {

namespace detail {
template <class Policy, class In, class... Specs>
struct build_layers {
  using type = std::tuple<>;
  using out_shape = In;
};
template <class Policy, class In, class Spec, class... Rest>
struct build_layers<Policy, In, Spec, Rest...> {
  using layer = typename Spec::template layer<Policy, In>;
  using next = build_layers<Policy, typename layer::out_shape, Rest...>;
  using type = decltype(std::tuple_cat(std::declval<std::tuple<layer>>(), std::declval<typename next::type>()));
  using out_shape = typename next::out_shape;
};

template <class In, class Layers>
struct widest_of;
template <class In, class... L>
struct widest_of<In, std::tuple<L...>> {
  static constexpr std::size_t value = std::max({In::size, L::out_shape::size...});
};

// The CPU backend's layer operations for layer_passes.
struct host_calls {
  template <class L, class... Args>
  void forward(L& layer, Args&&... args) const {
    layer.forward(std::forward<Args>(args)...);
  }
  template <class L, class... Args>
  void backward(L& layer, Args&&... args) const {
    layer.backward(std::forward<Args>(args)...);
  }
  template <class L, class... Args>
  void threshold(L& layer, Args&&... args) const {
    layer.sign_by_threshold(std::forward<Args>(args)...);
  }
};
}  // namespace detail

template <class Policy, class In, class... Specs>
class sequential {
  static_assert(sizeof...(Specs) > 0, "pbnn::sequential: a network needs at least one layer");
  // Other backends specialize sequential in their own headers (pbnn/opencl.hpp for pbnn::opencl::backend).
  static_assert(std::is_same_v<typename Policy::backend, cpu>,
                "pbnn::sequential: no network for this backend; include its header (pbnn/opencl.hpp for OpenCL)");

 public:
  using policy_type = Policy;
  using format = typename Policy::format;
  using scheme = typename Policy::scheme;
  using in_shape = In;
  using layers_type = typename detail::build_layers<Policy, In, Specs...>::type;
  using out_shape = typename detail::build_layers<Policy, In, Specs...>::out_shape;
  using tensor = batch_tensor<format>;
  static constexpr std::size_t depth = sizeof...(Specs);
  // The most features any tensor between layers has per sample (for sizing evaluation batches).
  static constexpr std::size_t widest = detail::widest_of<In, layers_type>::value;

  void init(rng& g) {
    for_each_layer([&](auto& l, std::size_t) { l.init(g); });
  }

  // Runs the layers on x (which must stay alive until backward) and returns the output.
  const tensor& forward(const tensor& x, context& ctx) {
    input_ = &x;
    return passes().forward(ctx);
  }

  // Back-propagates dy (the loss gradient of the output); every parameter gradient is overwritten.
  void backward(const tensor& dy, context& ctx) {
    if (!input_) throw std::logic_error("pbnn::sequential::backward: no forward pass to go back through");
    passes().backward(dy, ctx);
  }

  template <class Fn>
  void for_each_layer(Fn&& fn) {
    each_layer(fn, std::make_index_sequence<depth>{});
  }
  template <class Fn>
  void for_each_layer(Fn&& fn) const {
    each_layer(fn, std::make_index_sequence<depth>{});
  }
  template <class Fn>
  void for_each_parameter(Fn&& fn) {
    for_each_layer([&](auto& l, std::size_t) { l.for_each_parameter(fn); });
  }

  static std::string describe() {
    std::string s = fmt::format("input({})", In::size);
    describe_each(s, std::make_index_sequence<depth>{});
    return s;
  }

  template <std::size_t I>
  auto& layer() noexcept {
    return std::get<I>(layers_);
  }
  const tensor& output(std::size_t i) const noexcept { return outputs_[i]; }

 private:
  template <class Fn, std::size_t... I>
  void each_layer(Fn& fn, std::index_sequence<I...>) {
    (fn(std::get<I>(layers_), I), ...);
  }
  template <class Fn, std::size_t... I>
  void each_layer(Fn& fn, std::index_sequence<I...>) const {
    (fn(std::get<I>(layers_), I), ...);
  }
  template <std::size_t... I>
  static void describe_each(std::string& s, std::index_sequence<I...>) {
    ((s += " -> " + std::tuple_element_t<I, layers_type>::describe()), ...);
  }

  detail::layer_passes<layers_type, detail::host_calls, layers_type, tensor, depth> passes() {
    return {layers_, outputs_, grads_, *input_, {}};
  }

  layers_type layers_;
  std::array<tensor, depth> outputs_;
  std::array<tensor, 2> grads_;  // ping-pong: layer I writes its input gradient to grads_[I % 2]
  const tensor* input_ = nullptr;
};

}  // namespace pbnn
