#pragma once
// Binarization schemes: how a binarized layer turns its parameters P into the weights theta it
// multiplies with, how the gradient flows back to P, and (through binary_act) how activations are
// binarized. In evaluation every scheme gives the trained binary network: theta_b = sign(theta),
// with sign(0) = -1 as in the paper.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "pbnn/context.hpp"
#include "pbnn/detail/parallel.hpp"
#include "pbnn/format.hpp"
#include "pbnn/parameter.hpp"
#include "pbnn/quantize.hpp"
#include "pbnn/schedule.hpp"
#include "pbnn/tensor.hpp"

namespace pbnn {

namespace detail {

template <class S>
constexpr S sign_of(S x) noexcept { return x > 0 ? S{1} : S{-1}; }

// Weight values the fixed formats hand to the GEMM for a parameter kept real: P requantized to
// the operand range.
template <class F>
void real_weights(const parameter<F>& p, storage_t<F>* theta, int& theta_exp) {
  const std::size_t n = p.size();
  if constexpr (!is_fixed_v<F>) {
    std::copy(p.value.begin(), p.value.end(), theta);
    theta_exp = 0;
  } else {
    using T = format_traits<F>;
    const int shift = shift_for(static_cast<std::uint64_t>(T::param_max), T::operand_max, 0);
    const auto* w = p.value.data();
    if (shift == 0) {
      std::copy(w, w + n, theta);
    } else {
      parallel_chunks(n, [w, theta, shift](std::size_t begin, std::size_t end) {
        const auto* src = w;  // locals: see detail/parallel.hpp
        auto* dst = theta;
        const int sh = shift;
        for (std::size_t i = begin; i < end; ++i) dst[i] = static_cast<storage_t<F>>(shift_nearest_even(src[i], sh));
      });
    }
    theta_exp = p.exp + shift;
  }
}

template <class F>
void sign_weights(const parameter<F>& p, storage_t<F>* theta, int& theta_exp) {
  // Raw pointers in locals: int8 stores may alias anything, so p's members would be reloaded each time.
  const std::size_t n = p.size();
  const auto* w = p.value.data();
  parallel_chunks(n, [w, theta](std::size_t begin, std::size_t end) {
    const auto* src = w;  // locals: see detail/parallel.hpp
    auto* dst = theta;
    for (std::size_t i = begin; i < end; ++i) dst[i] = sign_of(src[i]);
  });
  theta_exp = 0;
}

template <class F>
void sign_activations(const batch_tensor<F>& x, batch_tensor<F>& y) {
  y.resize(x.rows(), x.cols());
  const auto* in = x.data.data();
  auto* out = y.data.data();
  const std::size_t n = x.size();
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) out[i] = sign_of(in[i]);
  y.exp = 0;
}

// Straight-through gradient of sign: dx = dy where |x| <= 1, else 0.
template <class F>
void straight_through(const batch_tensor<F>& x, const batch_tensor<F>& dy, batch_tensor<F>& dx) {
  dx.resize(dy.rows(), dy.cols());
  const std::size_t n = dy.size();
  const auto* in = x.data.data();
  const auto* g = dy.data.data();
  auto* out = dx.data.data();
  // |x| <= 1 in the input's own units.
  const float limit = std::ldexp(1.0f, -x.exp);
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) out[i] = std::fabs(static_cast<float>(in[i])) <= limit ? g[i] : storage_t<F>{0};
  dx.exp = dy.exp;
}

// +1 with probability clamp((x+1)/2, 0, 1), else -1 (hard sigmoid), from a counter-based stream.
template <class S>
void stochastic_signs(const S* in, int in_exp, std::size_t n, S* out, stream rnd) {
  const float scale = std::ldexp(1.0f, in_exp);
  parallel_chunks(n, [in, out, scale, rnd](std::size_t begin, std::size_t end) {
    const S* src = in;  // locals: see detail/parallel.hpp
    S* dst = out;
    const float sc = scale;
    const std::uint32_t key = rnd.key;
    for (std::size_t i = begin; i < end; ++i) {
      const float p = std::clamp((static_cast<float>(src[i]) * sc + 1.0f) * 0.5f, 0.0f, 1.0f);
      dst[i] = hash_uniform(key, static_cast<std::uint32_t>(i)) < p ? S{1} : S{-1};
    }
  });
}

}  // namespace detail

// No binarization: the real-valued baseline. binary_act refuses it at compile time.
struct real {
  static constexpr bool binarizes = false;
  static constexpr const char* name = "real";
  template <class F>
  static void weights(const parameter<F>& p, storage_t<F>* theta, int& theta_exp, context&) {
    detail::real_weights(p, theta, theta_exp);
  }
  template <class F>
  static void weight_grad(parameter<F>&, const context&) {}
};

// Deterministic: theta = sign(P), gradient straight through where |P| <= 1 (always, since P is
// clipped to [-1, 1] after each update).
struct sign {
  static constexpr bool binarizes = true;
  static constexpr const char* name = "sign";
  template <class F>
  static void weights(const parameter<F>& p, storage_t<F>* theta, int& theta_exp, context&) {
    detail::sign_weights(p, theta, theta_exp);
  }
  template <class F>
  static void weight_grad(parameter<F>&, const context&) {}
  template <class F>
  static void activate(const batch_tensor<F>& x, batch_tensor<F>& y, context&) {
    detail::sign_activations(x, y);
  }
  template <class F>
  static void activate_grad(const batch_tensor<F>& x, const batch_tensor<F>& dy, batch_tensor<F>& dx, context&) {
    detail::straight_through(x, dy, dx);
  }
  static bool saturated(float p, float) noexcept { return std::fabs(p) >= 1.0f; }
};

// Stochastic: theta = +1 with probability hard_sigmoid(P); gradient as for sign.
struct stochastic {
  static constexpr bool binarizes = true;
  static constexpr const char* name = "stochastic";
  template <class F>
  static void weights(const parameter<F>& p, storage_t<F>* theta, int& theta_exp, context& ctx) {
    if (!ctx.training()) return detail::sign_weights(p, theta, theta_exp);
    detail::stochastic_signs(p.value.data(), p.exp, p.size(), theta, ctx.next_stream());
    theta_exp = 0;
  }
  template <class F>
  static void weight_grad(parameter<F>&, const context&) {}
  template <class F>
  static void activate(const batch_tensor<F>& x, batch_tensor<F>& y, context& ctx) {
    if (!ctx.training()) return detail::sign_activations(x, y);
    y.resize(x.rows(), x.cols());
    detail::stochastic_signs(x.data.data(), x.exp, x.size(), y.data.data(), ctx.next_stream());
    y.exp = 0;
  }
  template <class F>
  static void activate_grad(const batch_tensor<F>& x, const batch_tensor<F>& dy, batch_tensor<F>& dx, context&) {
    detail::straight_through(x, dy, dx);
  }
  static bool saturated(float p, float) noexcept { return std::fabs(p) >= 1.0f; }
};

// How a progressive activation clamp(v x, -1, 1) passes the gradient back:
// - straight_through (default): 1 inside |x| <= 1 and 0 outside, the derivative at v = 1 kept
//   throughout, which is BinaryNet's straight-through estimator once the forward pass is sign(x).
// - exact: its derivative, v inside |v x| <= 1 and 0 outside. As v grows the window narrows to
//   nothing and the earlier layers stop learning (Fashion-MNIST MLP, fp32: 86.8 % against 89.6 %
//   for straight_through; bench/RESULTS.md).
// Weights always use the exact derivative: dtheta/dP = v inside |v P| <= 1, 0 outside.
enum class activation_gradient { exact, straight_through };

// Progressive: theta = clamp(v P, -1, 1), dtheta/dP = v inside |v P| <= 1 and 0 outside; v follows
// the schedule, so theta approaches sign(P) as training goes on.
template <v_schedule Schedule = log_schedule, activation_gradient ActGrad = activation_gradient::straight_through>
struct progressive {
  using schedule = Schedule;
  static constexpr activation_gradient act_grad = ActGrad;
  static constexpr bool binarizes = true;
  static constexpr const char* name = "progressive";

  template <class F>
  static void weights(const parameter<F>& p, storage_t<F>* theta, int& theta_exp, context& ctx) {
    if (!ctx.training()) return detail::sign_weights(p, theta, theta_exp);
    clamp_scale(p.value.data(), p.exp, p.size(), ctx.v, theta, theta_exp);
  }
  // Masks the gradient (zero where |v P| > 1) and scales it by v.
  template <class F>
  static void weight_grad(parameter<F>& p, const context& ctx) {
    const std::size_t n = p.size();
    const float limit = std::ldexp(1.0f / ctx.v, -p.exp);  // |P| <= 1/v in storage units
    auto* g = p.grad.data();
    const auto* w = p.value.data();
    detail::parallel_chunks(n, [g, w, limit](std::size_t begin, std::size_t end) {
      auto* grad = g;  // locals: see detail/parallel.hpp
      const auto* val = w;
      const float lim = limit;
      for (std::size_t i = begin; i < end; ++i) grad[i] = std::fabs(static_cast<float>(val[i])) > lim ? 0 : grad[i];
    });
    p.grad_scale *= ctx.v;
  }
  template <class F>
  static void activate(const batch_tensor<F>& x, batch_tensor<F>& y, context& ctx) {
    if (!ctx.training()) return detail::sign_activations(x, y);
    y.resize(x.rows(), x.cols());
    clamp_scale(x.data.data(), x.exp, x.size(), ctx.v, y.data.data(), y.exp);
  }
  template <class F>
  static void activate_grad(const batch_tensor<F>& x, const batch_tensor<F>& dy, batch_tensor<F>& dx, context& ctx) {
    using S = storage_t<F>;  // the gradient of clamp(v x): v inside |v x| <= 1, 0 outside
    if constexpr (ActGrad == activation_gradient::straight_through) return detail::straight_through(x, dy, dx);
    dx.resize(dy.rows(), dy.cols());
    const std::size_t n = dy.size();
    const float lim = std::ldexp(1.0f / ctx.v, -x.exp);  // |v x| <= 1 in x's units
    const S* in = x.data.data();
    const S* g = dy.data.data();
    S* out = dx.data.data();
    if constexpr (!is_fixed_v<F>) {
      const float v = ctx.v;
#pragma omp simd
      for (std::size_t i = 0; i < n; ++i) out[i] = std::fabs(in[i]) <= lim ? v * g[i] : 0.0f;
      dx.exp = 0;
    } else {
      // dx = v * dy, rounded stochastically: pick k with v / 2^k in (1/2, 1] so the result still
      // fits the operand range, and carry 2^k in the exponent.
      const int k = std::max(0, static_cast<int>(std::ceil(std::log2(ctx.v))));
      const float m = std::ldexp(ctx.v, -k);
      const stream rnd = ctx.next_stream();
#pragma omp simd
      for (std::size_t i = 0; i < n; ++i)
        out[i] = std::fabs(static_cast<float>(in[i])) <= lim
                     ? static_cast<S>(std::floor(static_cast<float>(g[i]) * m + rnd.uniform(static_cast<std::uint32_t>(i))))
                     : S{0};
      dx.exp = dy.exp + k;
    }
  }
  static bool saturated(float p, float v) noexcept { return std::fabs(v * p) >= 1.0f; }

 private:
  // out = clamp(v * in, -1, 1); fixed: 1.0 == 2^unit_frac.
  template <class S>
  static void clamp_scale(const S* in, int in_exp, std::size_t n, float v, S* out, int& out_exp) {
    if constexpr (std::is_floating_point_v<S>) {
      detail::parallel_chunks(n, [in, out, v](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) out[i] = std::clamp(v * in[i], -1.0f, 1.0f);
      });
      out_exp = 0;
    } else {
      constexpr int uf = format_traits<fixed<8 * sizeof(S)>>::unit_frac;
      const float m = std::ldexp(v, in_exp + uf), one = static_cast<float>(1 << uf);
      detail::parallel_chunks(n, [in, out, m, one](std::size_t begin, std::size_t end) {
        const S* src = in;  // locals: see detail/parallel.hpp
        S* dst = out;
        const float mm = m, lim = one;
        for (std::size_t i = begin; i < end; ++i)
          dst[i] = static_cast<S>(detail::round_nearest_even(std::clamp(static_cast<float>(src[i]) * mm, -lim, lim)));
      });
      out_exp = -uf;
    }
  }
};

template <class S>
concept binarization_scheme = requires {
  { S::binarizes } -> std::convertible_to<bool>;
  { S::name } -> std::convertible_to<const char*>;
};

}  // namespace pbnn
