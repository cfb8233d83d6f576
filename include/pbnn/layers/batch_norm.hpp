#pragma once
// Batch normalization over features (flat inputs) or channels (C x H x W inputs, stored channels-last
// as conv2d writes them; statistics over the batch and the H x W positions): y = gamma (x - mu) / sigma + beta, sigma = sqrt(var + eps).
// Statistics and the normalization are computed in fp32 from the (possibly integer) input; the
// output is stored in the format. Running statistics for evaluation are fp32 state.
//
// sign_by_threshold() gives sign(y) without normalizing (eqs. 4-5 of the paper):
//   gamma > 0: +1 iff x > T,   gamma < 0: +1 iff x < T,   T = mu - sigma beta / gamma;
//   gamma == 0: y = beta everywhere, so +1 iff beta > 0.     (sign(0) = -1 throughout.)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "pbnn/layers/layer_spec.hpp"

namespace pbnn {

namespace detail {
template <class In>
struct channel_layout {
  static constexpr std::size_t channels = In::size, spatial = 1;
};
template <std::size_t C, std::size_t H, std::size_t W>
struct channel_layout<shape<C, H, W>> {
  static constexpr std::size_t channels = C, spatial = H * W;
};

// Reals into a fixed-format gradient: int32 with one power-of-two scale (30 magnitude bits).
template <class F>
void store_float_grads(parameter<F>& p, const std::vector<float>& g) {
  if constexpr (!is_fixed_v<F>) {
    std::copy(g.begin(), g.end(), p.grad.begin());
    p.grad_scale = 1.0f;
  } else {
    float maxabs = 0;
    for (float v : g) maxabs = std::max(maxabs, std::fabs(v));
    const int e = exponent_for(maxabs, (1 << 30) - 1);
    for (std::size_t i = 0; i < g.size(); ++i)
      p.grad[i] = static_cast<std::int32_t>(std::nearbyint(std::ldexp(static_cast<double>(g[i]), -e)));
    p.grad_scale = std::ldexp(1.0f, e);
  }
}
}  // namespace detail

template <class Policy, class In, std::size_t Expected>
class batch_norm_layer {
 public:
  using format = typename Policy::format;
  using in_shape = In;
  using out_shape = In;
  static constexpr std::size_t C = detail::channel_layout<In>::channels, S = detail::channel_layout<In>::spatial;
  static_assert(Expected == 0 || Expected == C,
                "pbnn::batch_norm<N>: N differs from the number of features (channels) of its input");
  static constexpr float eps = 1e-5f, momentum = 0.1f;

  batch_norm_layer()
      : gamma_("gamma", param_role::norm, {C}), beta_("beta", param_role::norm, {C}),
        running_mean_(C, 0.0f), running_var_(C, 1.0f), mean_(C), invstd_(C) {}

  static std::string describe() { return fmt::format("batch_norm({})", C); }

  void init(rng&) {
    saturation_counter unused;
    for (std::size_t c = 0; c < C; ++c) {
      gamma_.store(c, 1.0f, 0.0f, unused);
      beta_.store(c, 0.0f, 0.0f, unused);
    }
    std::fill(running_mean_.begin(), running_mean_.end(), 0.0f);
    std::fill(running_var_.begin(), running_var_.end(), 1.0f);
  }

  void forward(const batch_tensor<format>& x, batch_tensor<format>& y, context& ctx) {
    const std::size_t b = x.rows();
    y.resize(b, C * S);
    statistics(x, ctx);
    const float xs = std::ldexp(1.0f, x.exp);
    y_real_.resize(x.size());
    for (std::size_t c = 0; c < C; ++c) {
      scale_[c] = gamma_.real(c) * invstd_[c] * xs;
      shift_[c] = beta_.real(c) - gamma_.real(c) * invstd_[c] * mean_[c];
    }
    const auto* in = x.data.data();
    float* out = y_real_.data();
    for_channel_blocks(b, [&](std::size_t r, std::size_t c0, std::size_t c1) {
      for (std::size_t s = 0; s < S; ++s)
        for (std::size_t c = c0; c < c1; ++c) {
          const std::size_t i = (r * S + s) * C + c;
          out[i] = scale_[c] * static_cast<float>(in[i]) + shift_[c];
        }
    });
    store(y_real_, y, rounding::nearest_even, ctx);
  }

  void backward(const batch_tensor<format>& x, const batch_tensor<format>&, const batch_tensor<format>& dy,
                batch_tensor<format>* dx, context& ctx) {
    const std::size_t b = x.rows(), n = b * S;
    const float xs = std::ldexp(1.0f, x.exp), gs = std::ldexp(1.0f, dy.exp);
    std::vector<float> dgamma(C, 0.0f), dbeta(C, 0.0f);
    const auto* in = x.data.data();
    const auto* gin = dy.data.data();
    // xhat = (x xs - mean) invstd = x * a + c0, recomputed rather than kept in fp32 between passes.
    for (std::size_t c = 0; c < C; ++c) {
      scale_[c] = xs * invstd_[c];
      shift_[c] = -mean_[c] * invstd_[c];
    }
    for_channel_blocks(b, [&](std::size_t r, std::size_t c0, std::size_t c1) {
      for (std::size_t s = 0; s < S; ++s)
        for (std::size_t c = c0; c < c1; ++c) {
          const std::size_t i = (r * S + s) * C + c;
          const float xhat = static_cast<float>(in[i]) * scale_[c] + shift_[c];
          const float g = static_cast<float>(gin[i]) * gs;
          dgamma[c] += g * xhat;
          dbeta[c] += g;
        }
    });
    if (dx) {
      y_real_.resize(x.size());
      float* out = y_real_.data();
      const float inv_n = 1.0f / static_cast<float>(n);
      for_channel_blocks(b, [&](std::size_t r, std::size_t c0, std::size_t c1) {
        for (std::size_t c = c0; c < c1; ++c) {
          const float k = gamma_.real(c) * invstd_[c];
          for (std::size_t s = 0; s < S; ++s) {
            const std::size_t i = (r * S + s) * C + c;
            const float xhat = static_cast<float>(in[i]) * scale_[c] + shift_[c];
            const float g = static_cast<float>(gin[i]) * gs;
            out[i] = k * (g - (dbeta[c] + xhat * dgamma[c]) * inv_n);
          }
        }
      });
    }
    detail::store_float_grads(gamma_, dgamma);
    detail::store_float_grads(beta_, dbeta);
    if (dx) {
      dx->resize(b, C * S);
      store(y_real_, *dx, error_rounding(), ctx);
    }
  }

  // sign(BN(x)) by comparison against the thresholds, with the statistics of the last forward pass
  // in training, the running ones in evaluation and this batch's in calibration. Output +-1 (exponent 0).
  void sign_by_threshold(const batch_tensor<format>& x, batch_tensor<format>& out, context& ctx) {
    if (!ctx.training()) statistics(x, ctx);
    const std::size_t b = x.rows();
    out.resize(b, C * S);
    out.exp = 0;
    const float xs = std::ldexp(1.0f, x.exp);
    using V = storage_t<format>;
    // Per channel: +1 iff a x > b, with (a, b) = (1, T) for gamma > 0, (-1, -T) for gamma < 0, and
    // (0, -+1) for gamma == 0, where the output is the constant sign(beta).
    for (std::size_t c = 0; c < C; ++c) {
      const float g = gamma_.real(c), be = beta_.real(c);
      const float t = g != 0.0f ? mean_[c] - be / (g * invstd_[c]) : 0.0f;
      scale_[c] = g > 0 ? xs : g < 0 ? -xs : 0.0f;
      shift_[c] = g > 0 ? t : g < 0 ? -t : (be > 0 ? -1.0f : 1.0f);
    }
    const auto* in = x.data.data();
    V* o = out.data.data();
    for_channel_blocks(b, [&](std::size_t r, std::size_t c0, std::size_t c1) {
      for (std::size_t s = 0; s < S; ++s)
        for (std::size_t c = c0; c < c1; ++c) {
          const std::size_t i = (r * S + s) * C + c;
          o[i] = scale_[c] * static_cast<float>(in[i]) > shift_[c] ? V{1} : V{-1};
        }
    });
  }
  // The thresholds T and directions (+1: output +1 above T; -1: below T; 0: constant sign(beta))
  // of the evaluation network, for export.
  void thresholds(std::vector<float>& t, std::vector<std::int8_t>& dir) const {
    t.resize(C);
    dir.resize(C);
    for (std::size_t c = 0; c < C; ++c) {
      const float g = gamma_.real(c), be = beta_.real(c), sigma = std::sqrt(running_var_[c] + eps);
      t[c] = g != 0.0f ? running_mean_[c] - sigma * be / g : 0.0f;
      dir[c] = g > 0 ? 1 : g < 0 ? -1 : 0;
    }
  }

  template <class Fn>
  void for_each_parameter(Fn&& fn) {
    fn(gamma_);
    fn(beta_);
  }
  template <class Fn>
  void for_each_state(Fn&& fn) {
    fn("running_mean", running_mean_);
    fn("running_var", running_var_);
  }

  void save(io::safetensors& out, const std::string& prefix) const {
    const std::vector<std::int64_t> dims{static_cast<std::int64_t>(C)};
    std::vector<float> g(C), be(C), t;
    std::vector<std::int8_t> dir;
    for (std::size_t c = 0; c < C; ++c) {
      g[c] = gamma_.real(c);
      be[c] = beta_.real(c);
    }
    thresholds(t, dir);
    out.tensors[prefix + "weight"] = io::tensor_blob::from(dims, g);
    out.tensors[prefix + "bias"] = io::tensor_blob::from(dims, be);
    out.tensors[prefix + "running_mean"] = io::tensor_blob::from(dims, running_mean_);
    out.tensors[prefix + "running_var"] = io::tensor_blob::from(dims, running_var_);
    out.tensors[prefix + "threshold"] = io::tensor_blob::from(dims, t);
    out.tensors[prefix + "threshold_direction"] = io::tensor_blob::from(dims, dir);
  }
  void load(const io::safetensors& in, const std::string& prefix) {
    const std::vector<std::int64_t> dims{static_cast<std::int64_t>(C)};
    const auto g = in.get<float>(prefix + "weight", dims), be = in.get<float>(prefix + "bias", dims);
    saturation_counter unused;
    for (std::size_t c = 0; c < C; ++c) {
      gamma_.store(c, g[c], 0.5f, unused);
      beta_.store(c, be[c], 0.5f, unused);
    }
    running_mean_ = in.get<float>(prefix + "running_mean", dims);
    running_var_ = in.get<float>(prefix + "running_var", dims);
  }

  // Forward passes in mode::calibrate after this replace the running statistics by their average.
  void begin_calibration() noexcept { calibration_batches_ = 0; }
  const std::vector<float>& running_mean() const noexcept { return running_mean_; }
  const std::vector<float>& running_var() const noexcept { return running_var_; }

  parameter<format>& gamma() noexcept { return gamma_; }
  parameter<format>& beta() noexcept { return beta_; }

 private:
  static constexpr rounding error_rounding() {
    if constexpr (is_fixed_v<format>) return format_traits<format>::error_rounding;
    else return rounding::nearest_even;
  }

  // Batch statistics (training: also updates the running ones; calibration: averages them into the
  // running ones) or the running ones (evaluation).
  void statistics(const batch_tensor<format>& x, const context& ctx) {
    if (ctx.mode == mode::eval) {
      for (std::size_t c = 0; c < C; ++c) {
        mean_[c] = running_mean_[c];
        invstd_[c] = 1.0f / std::sqrt(running_var_[c] + eps);
      }
      return;
    }
    const std::size_t b = x.rows(), n = b * S;
    const double xs = std::ldexp(1.0, x.exp);
    std::vector<double> s1(C, 0.0), s2(C, 0.0);
    const auto* in = x.data.data();
    for_channel_blocks(b, [&](std::size_t r, std::size_t c0, std::size_t c1) {
      for (std::size_t s = 0; s < S; ++s)
        for (std::size_t c = c0; c < c1; ++c) {
          const double v = static_cast<double>(in[(r * S + s) * C + c]);
          s1[c] += v;
          s2[c] += v * v;
        }
    });
    for (std::size_t c = 0; c < C; ++c) {
      const double mean = s1[c] / n, var = std::max(0.0, s2[c] / n - mean * mean);
      mean_[c] = static_cast<float>(mean * xs);
      const double var_real = var * xs * xs;
      invstd_[c] = static_cast<float>(1.0 / std::sqrt(var_real + eps));
      const double unbiased = n > 1 ? var_real * n / (n - 1) : var_real;
      // Calibration: the mean over the batches seen since begin_calibration().
      const double m = ctx.mode == mode::calibrate ? 1.0 / static_cast<double>(calibration_batches_ + 1) : momentum;
      running_mean_[c] = static_cast<float>((1 - m) * running_mean_[c] + m * mean_[c]);
      running_var_[c] = static_cast<float>((1 - m) * running_var_[c] + m * unbiased);
    }
    if (ctx.mode == mode::calibrate) ++calibration_batches_;
  }

  // fn(r, c0, c1) for every row r and block [c0, c1) of channels; blocks run on parallel threads and
  // each channel belongs to one block, so per-channel sums are race-free and deterministic.
  template <class Fn>
  static void for_channel_blocks(std::size_t rows, Fn&& fn) {
    constexpr std::size_t blk = S == 1 ? 256 : 16;
    const std::size_t blocks = (C + blk - 1) / blk;
#pragma omp parallel for schedule(static) if (rows * C * S > 32768 && blocks > 1)
    for (std::size_t bi = 0; bi < blocks; ++bi) {
      const std::size_t c0 = bi * blk, c1 = std::min(C, c0 + blk);
      for (std::size_t r = 0; r < rows; ++r) fn(r, c0, c1);
    }
  }

  // Float results into the format (fixed: per-tensor exponent from the largest magnitude).
  void store(const std::vector<float>& src, batch_tensor<format>& dst, rounding mode, context& ctx) {
    if constexpr (!is_fixed_v<format>) {
      std::copy(src.begin(), src.end(), dst.data.data());
      dst.exp = 0;
    } else {
      dst.exp = quantize_dynamic(src.data(), src.size(), dst.data.data(), format_traits<format>::operand_max, mode,
                                 mode == rounding::stochastic ? ctx.next_stream() : stream{});
    }
  }

  parameter<format> gamma_, beta_;
  std::vector<float> running_mean_, running_var_;
  std::size_t calibration_batches_ = 0;
  std::vector<float> mean_, invstd_;  // of the current step
  std::vector<float> y_real_;         // scratch
  std::vector<float> scale_ = std::vector<float>(C), shift_ = std::vector<float>(C);  // per-channel affine
};

// Spec: batch_norm<> (features inferred), batch_norm<1000> (checked against the input at compile time).
template <std::size_t Features = 0>
struct batch_norm {
  template <class Policy, class In>
  using layer = batch_norm_layer<Policy, In, Features>;
};

}  // namespace pbnn
