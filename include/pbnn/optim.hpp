#pragma once
// Optimizers over a network's parameters: Adam (the paper's) and SGD with momentum. Their state
// (moments, velocity) is fp32, one entry per parameter element; the update is computed in fp32 from
// the parameter's real value and gradient, then stored back in the format, where fixed formats round
// stochastically so that updates smaller than one step survive in expectation.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

#include <Eigen/Core>

#if defined(__SSE__) || defined(_M_X64)
#include <xmmintrin.h>
#endif


#include "pbnn/context.hpp"
#include "pbnn/detail/parallel.hpp"
#include "pbnn/parameter.hpp"

namespace pbnn {

namespace detail {
// Flush-to-zero and denormals-are-zero for the calling thread while in scope. The Adam moments of a
// parameter whose gradient is masked (a saturated progressive weight) decay geometrically into the
// denormal range, where x86 arithmetic is some hundred times slower: without this, late epochs of a
// progressive run took three times as long as early ones.
class denormals_flushed {
 public:
#if defined(__SSE__) || defined(_M_X64)
  denormals_flushed() noexcept : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }  // FTZ | DAZ
  ~denormals_flushed() { _mm_setcsr(saved_); }
#endif
  denormals_flushed(const denormals_flushed&) = delete;
  denormals_flushed& operator=(const denormals_flushed&) = delete;

 private:
#if defined(__SSE__) || defined(_M_X64)
  unsigned saved_;
#endif
};


// Eigen array expressions: explicitly vectorized, including the square root (std::sqrt in a plain
// loop keeps GCC from vectorizing because of errno).
template <class G>
void adam_kernel(float* w, float* m, float* v, const G* grad, std::size_t n, float gs, float b1, float b2,
                 float step_size, float rc2, float eps, float bound) {
  using arr = Eigen::Map<Eigen::ArrayXf>;
  const auto len = static_cast<Eigen::Index>(n);
  arr W(w, len), M(m, len), V(v, len);
  const auto g = Eigen::Map<const Eigen::Array<G, Eigen::Dynamic, 1>>(grad, len).template cast<float>() * gs;
  M = b1 * M + (1 - b1) * g;
  V = b2 * V + (1 - b2) * g.square();
  W = (W - step_size * M / (V.sqrt() * rc2 + eps)).min(bound).max(-bound);
}
}  // namespace detail

// Runs update(w, begin, end) over [0, n) in threads, with w the parameter's real values: the values
// themselves in fp32, a float copy in fixed formats, stored back with stochastic rounding
// (parameter::store_range: binarized P clipped to [-1, 1], saturation counted) when done.
template <class F, class Update>
void update_real_values(parameter<F>& p, Update update, saturation_counter& sat, stream rnd) {
  const std::size_t n = p.size();
  float* w = nullptr;
  if constexpr (!is_fixed_v<F>) {
    w = p.value.data();
  } else {
    static thread_local aligned_vector<float> real;  // scratch, reused across steps
    real.resize(n);
    w = real.data();
  }
  std::uint64_t events = 0;
  detail::parallel_chunks(n, [&](std::size_t begin, std::size_t end) {
    const detail::denormals_flushed ftz;
    if constexpr (is_fixed_v<F>) {
      const float sc = std::ldexp(1.0f, p.exp);
      for (std::size_t i = begin; i < end; ++i) w[i] = static_cast<float>(p.value[i]) * sc;
    }
    update(w, begin, end);
    if constexpr (is_fixed_v<F>) {
      saturation_counter local;
      p.store_range(w, begin, end, rnd, local);
#pragma omp atomic
      events += local.events;
    }
  });
  sat.events += events;
}

// An optimizer provides name (recorded in checkpoints), a per-parameter state whose buffers
// for_each_buffer lists (fn(name, aligned_vector<float>&), saved and restored by checkpoints; empty
// until the first update) and update().
struct adam {
  static constexpr const char* name = "adam";
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float binarized_lr_scale = 1.0f;  // learning-rate multiplier for the P of binarized layers

  struct state {
    aligned_vector<float> m, v;
    template <class Fn>
    void for_each_buffer(Fn&& fn) {
      fn("m", m);
      fn("v", v);
    }
    template <class Fn>
    void for_each_buffer(Fn&& fn) const {
      fn("m", m);
      fn("v", v);
    }
  };
  // The step's bias-corrected step size and 1 / sqrt(1 - beta2^step), for a parameter of this role.
  struct step_coefficients {
    float step_size, rc2;
  };
  step_coefficients coefficients(param_role role, long step) const {
    const float c1 = 1.0f - std::pow(beta1, static_cast<float>(step));
    const float c2 = 1.0f - std::pow(beta2, static_cast<float>(step));
    return {rate(role) / c1, 1.0f / std::sqrt(c2)};
  }
  float rate(param_role role) const { return role == param_role::binarized ? lr * binarized_lr_scale : lr; }

  template <class F>
  void update(parameter<F>& p, state& s, long step, saturation_counter& sat, stream rnd) const {
    const std::size_t n = p.size();
    if (s.m.size() != n) {
      s.m.assign(n, 0.0f);
      s.v.assign(n, 0.0f);
    }
    const auto [step_size, rc2] = coefficients(p.role, step);
    const float b1 = beta1, b2 = beta2, e = eps;
    float* __restrict m = s.m.data();
    float* __restrict v = s.v.data();
    const float bound = update_bound(p.role);
    const float gs = p.grad_scale;
    const auto* grad = p.grad.data();
    // A plain kernel per thread, so that it vectorizes.
    update_real_values(
        p,
        [=](float* w, std::size_t begin, std::size_t end) {
          detail::adam_kernel(w + begin, m + begin, v + begin, grad + begin, end - begin, gs, b1, b2, step_size, rc2,
                              e, bound);
        },
        sat, rnd);
  }
};

struct sgd {
  static constexpr const char* name = "sgd";
  float lr = 0.01f, momentum = 0.9f;
  float binarized_lr_scale = 1.0f;  // learning-rate multiplier for the P of binarized layers

  float rate(param_role role) const { return role == param_role::binarized ? lr * binarized_lr_scale : lr; }

  struct state {
    aligned_vector<float> velocity;
    template <class Fn>
    void for_each_buffer(Fn&& fn) {
      fn("velocity", velocity);
    }
    template <class Fn>
    void for_each_buffer(Fn&& fn) const {
      fn("velocity", velocity);
    }
  };
  template <class F>
  void update(parameter<F>& p, state& s, long, saturation_counter& sat, stream rnd) const {
    const std::size_t n = p.size();
    if (s.velocity.size() != n) s.velocity.assign(n, 0.0f);
    float* vel = s.velocity.data();
    const auto* grad = p.grad.data();
    const float gs = p.grad_scale, mom = momentum, step = rate(p.role);
    const float bound = update_bound(p.role);
    update_real_values(
        p,
        [=](float* w, std::size_t begin, std::size_t end) {
          for (std::size_t i = begin; i < end; ++i) {
            vel[i] = mom * vel[i] + static_cast<float>(grad[i]) * gs;
            w[i] = std::clamp(w[i] - step * vel[i], -bound, bound);
          }
        },
        sat, rnd);
  }
};

// One optimizer state per parameter tensor, in the network's parameter order.
template <class Optimizer>
class optimizer_states {
 public:
  using state = typename Optimizer::state;

  explicit optimizer_states(Optimizer opt = {}) : opt_(opt) {}
  Optimizer& options() noexcept { return opt_; }

  // For checkpoints: the steps taken (Adam's bias correction depends on it) and the per-parameter
  // states (none before the first step).
  long steps() const noexcept { return step_; }
  const std::vector<state>& states() const noexcept { return states_; }
  void restore(long steps, std::vector<state> states) noexcept {
    step_ = steps;
    states_ = std::move(states);
  }

  template <class Net>
  void step(Net& net, context& ctx) {
    ++step_;
    std::size_t i = 0;
    net.for_each_parameter([&](auto& p) {
      if (states_.size() <= i) states_.emplace_back();
      opt_.update(p, states_[i++], step_, ctx.saturation, ctx.next_stream());
    });
  }

 private:
  Optimizer opt_;
  std::vector<state> states_;
  long step_ = 0;
};

}  // namespace pbnn
