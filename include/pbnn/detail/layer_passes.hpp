#pragma once
// The forward and backward passes through a network's layers, the same for every backend (the CPU's
// pbnn::sequential and the OpenCL one): layer I writes outputs[I]; input gradients ping-pong between
// two tensors; a batch_norm followed by binary_act is one threshold comparison (eqs. 4-5) in
// evaluation and calibration, and in training once context::bn_threshold is set.
//
// `Call` runs one layer operation with whatever the backend adds (a device runtime):
//   call.forward(layer, x, y, ctx)     call.backward(layer, x, y, dy, dx_or_null, ctx)
//   call.threshold(batch_norm_layer, x, y, ctx)
// A Call may also train a batch_norm and the activation after it as one operation each way, where
// Call::fuses_batch_norm_with<ActivationLayer>() says so (and the activation is not the last layer;
// a binary_act whose pair is a threshold comparison in this step excepted):
//   call.forward_activated(bn, act, x, bn_output, act_output, ctx)   bn_output: where the
//       normalized values go if Call keeps them (fixed formats), untouched otherwise
//   call.backward_activated(bn, act, x, bn_output, d, with_dx, ctx)   d: the activation's dy in, bn's dx out
// Likewise a max_pool followed by such a pair, where Call::fuses_pool_with<ActivationLayer>() says so:
//   call.forward_pooled(pool, bn, act, x, pool_output, act_output, ctx)
//   call.backward_pooled(pool, bn, act, x, pool_output, d, dx_or_null, ctx)   d: the activation's dy in
//       (then scratch), dx: the pool's
// While a layer writes an output or input gradient that such a fused operation reads next,
// context::read_by_fused_batch_norm is set (the OpenCL backend then leaves a product's k slices to it).
// HostLayers is the CPU layer tuple the network's layers mirror (the folding is decided on it).
#include <array>
#include <cstddef>
#include <tuple>

#include "pbnn/context.hpp"
#include "pbnn/layers/activation.hpp"
#include "pbnn/layers/batch_norm.hpp"
#include "pbnn/layers/max_pool.hpp"

namespace pbnn::detail {

template <class L>
inline constexpr bool is_batch_norm_v = false;
template <class P, class In, std::size_t N>
inline constexpr bool is_batch_norm_v<batch_norm_layer<P, In, N>> = true;
template <class L>
inline constexpr bool is_max_pool_v = false;
template <class P, class In, std::size_t Size>
inline constexpr bool is_max_pool_v<max_pool_layer<P, In, Size>> = true;
template <class L>
inline constexpr bool is_binary_act_v = false;
template <class P, class In>
inline constexpr bool is_binary_act_v<binary_act_layer<P, In>> = true;

template <class HostLayers, class Call, class Layers, class Tensor, std::size_t Depth>
class layer_passes {
 public:
  layer_passes(Layers& layers, std::array<Tensor, Depth>& outputs, std::array<Tensor, 2>& grads, const Tensor& input,
               Call call)
      : layers_(layers), outputs_(outputs), grads_(grads), input_(input), call_(call) {}

  const Tensor& forward(context& ctx) {
    forward_from<0>(input_, ctx);
    return outputs_[Depth - 1];
  }
  void backward(const Tensor& dy, context& ctx) { backward_from<Depth - 1>(dy, ctx); }

 private:
  template <std::size_t I>
  using host_layer_t = std::tuple_element_t<I, HostLayers>;

  template <std::size_t I>
  static constexpr bool folds_into_threshold() {
    if constexpr (I == 0 || I >= Depth) return false;
    else return is_batch_norm_v<host_layer_t<I - 1>> && is_binary_act_v<host_layer_t<I>>;
  }

  // Layers I, I + 1 are a batch_norm and an activation that Call can train as one; the activation's
  // dy is then grads_[(I + 2) % 2], free to become the normalization's dx in place.
  template <std::size_t I>
  static constexpr bool trains_fused() {
    if constexpr (I + 2 >= Depth || I >= Depth) {  // I >= Depth: backward_from<0> asks for I = 0 - 1
      return false;
    } else if constexpr (!is_batch_norm_v<host_layer_t<I>>) {
      return false;
    } else {
      using activation = std::tuple_element_t<I + 1, Layers>;
      if constexpr (requires { Call::template fuses_batch_norm_with<activation>(); })
        return Call::template fuses_batch_norm_with<activation>();
      else
        return false;
    }
  }
  // Layers I, I + 1, I + 2 are a max_pool and a pair that trains_fused, which Call can train as one.
  template <std::size_t I>
  static constexpr bool trains_pooled() {
    if constexpr (I + 3 >= Depth || I >= Depth) {
      return false;
    } else if constexpr (!is_max_pool_v<host_layer_t<I>> || !trains_fused<I + 1>()) {
      return false;
    } else {
      using activation = std::tuple_element_t<I + 2, Layers>;
      if constexpr (requires { Call::template fuses_pool_with<activation>(); })
        return Call::template fuses_pool_with<activation>();
      else
        return false;
    }
  }
  // Whether this training step fuses the pair at I, I + 1 (a threshold comparison replaces it instead).
  template <std::size_t I>
  static bool fused_now(const context& ctx) {
    return ctx.training() && !(folds_into_threshold<I + 1>() && ctx.bn_threshold);
  }

  // Whether forward_from<I> / backward_from<I> start with a fused operation in this step.
  template <std::size_t I>
  static bool forward_fused_at(const context& ctx) {
    if constexpr (trains_pooled<I>())
      if (fused_now<I + 1>(ctx)) return true;
    if constexpr (trains_fused<I>())
      if (fused_now<I>(ctx)) return true;
    return false;
  }
  template <std::size_t I>
  static bool backward_fused_at(const context& ctx) {
    if constexpr (I >= 2 && trains_pooled<I - 2>())
      if (fused_now<I - 1>(ctx)) return true;
    if constexpr (I >= 1 && trains_fused<I - 1>())
      if (fused_now<I - 1>(ctx)) return true;
    return false;
  }
  // Runs op with context::read_by_fused_batch_norm telling whether its result goes to a fused operation.
  template <class Op>
  static void noting_reader(context& ctx, bool fused_reader, Op&& op) {
    ctx.read_by_fused_batch_norm = fused_reader;
    op();
    ctx.read_by_fused_batch_norm = false;
  }

  template <std::size_t J>
  const Tensor& input_of() const noexcept {
    if constexpr (J == 0) return input_;
    else return outputs_[J - 1];
  }

  template <std::size_t I>
  void forward_from(const Tensor& x, context& ctx) {
    if constexpr (I < Depth) {
      if constexpr (trains_pooled<I>()) {
        if (fused_now<I + 1>(ctx)) {
          call_.forward_pooled(std::get<I>(layers_), std::get<I + 1>(layers_), std::get<I + 2>(layers_), x, outputs_[I],
                               outputs_[I + 2], ctx);
          return forward_from<I + 3>(outputs_[I + 2], ctx);
        }
      }
      if constexpr (trains_fused<I>()) {
        if (fused_now<I>(ctx)) {
          call_.forward_activated(std::get<I>(layers_), std::get<I + 1>(layers_), x, outputs_[I], outputs_[I + 1], ctx);
          return forward_from<I + 2>(outputs_[I + 1], ctx);
        }
      }
      if constexpr (folds_into_threshold<I>()) {
        if (!ctx.training() || ctx.bn_threshold) {
          call_.threshold(std::get<I - 1>(layers_), input_of<I - 1>(), outputs_[I], ctx);
          return forward_from<I + 1>(outputs_[I], ctx);
        }
      }
      if constexpr (I + 1 < Depth && folds_into_threshold<I + 1>()) {
        if (!ctx.training()) return forward_from<I + 1>(x, ctx);  // the threshold replaces the normalization
      }
      noting_reader(ctx, forward_fused_at<I + 1>(ctx),
                    [&] { call_.forward(std::get<I>(layers_), x, outputs_[I], ctx); });
      forward_from<I + 1>(outputs_[I], ctx);
    }
  }

  template <std::size_t I>
  void backward_from(const Tensor& dy, context& ctx) {
    if constexpr (I >= 2 && trains_pooled<I - 2>()) {
      if (fused_now<I - 1>(ctx)) {  // the forward pass was fused too
        Tensor& d = grads_[(I + 1) % 2];  // written by layer I + 1: dy itself
        Tensor& dx = grads_[I % 2];       // the pool's, as layer I - 2 writes it
        call_.backward_pooled(std::get<I - 2>(layers_), std::get<I - 1>(layers_), std::get<I>(layers_),
                              input_of<I - 2>(), outputs_[I - 2], d, I > 2 ? &dx : nullptr, ctx);
        if constexpr (I > 2) backward_from<I - 3>(dx, ctx);
        return;
      }
    }
    if constexpr (I >= 1 && trains_fused<I - 1>()) {
      if (fused_now<I - 1>(ctx)) {  // the forward pass was fused too
        Tensor& d = grads_[(I + 1) % 2];  // written by layer I + 1: dy itself
        call_.backward_activated(std::get<I - 1>(layers_), std::get<I>(layers_), input_of<I - 1>(), outputs_[I - 1], d,
                                 I > 1, ctx);
        if constexpr (I > 1) backward_from<I - 2>(d, ctx);
        return;
      }
    }
    const Tensor& x = input_of<I>();
    if constexpr (I == 0) {
      call_.backward(std::get<0>(layers_), x, outputs_[0], dy, nullptr, ctx);
    } else {
      Tensor& dx = grads_[I % 2];
      noting_reader(ctx, backward_fused_at<I - 1>(ctx),
                    [&] { call_.backward(std::get<I>(layers_), x, outputs_[I], dy, &dx, ctx); });
      backward_from<I - 1>(dx, ctx);
    }
  }

  Layers& layers_;
  std::array<Tensor, Depth>& outputs_;
  std::array<Tensor, 2>& grads_;
  const Tensor& input_;
  Call call_;
};

}  // namespace pbnn::detail
