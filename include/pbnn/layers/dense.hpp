#pragma once
// Fully connected layer: y = x theta(P)^T (+ b). theta is the binarized weight of the layer's scheme
// (P itself for pbnn::real). W is [out x in], PyTorch's layout.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "pbnn/detail/matmul.hpp"
#include "pbnn/layers/layer_spec.hpp"

namespace pbnn {

template <class Policy, class In, std::size_t Out, bool Bias>
class dense_layer {
 public:
  using format = typename Policy::format;
  using scheme = typename Policy::scheme;
  using in_shape = In;
  using out_shape = shape<Out>;
  static constexpr std::size_t in_size = In::size, out_size = Out;
  static constexpr bool binarized = scheme::binarizes;
  // fp32 layers kept real multiply with P itself; every other case with a separate theta.
  static constexpr bool theta_is_p = !binarized && !is_fixed_v<format>;

  dense_layer()
      : weight_("weight", binarized ? param_role::binarized : param_role::real, {Out, in_size}),
        bias_("bias", param_role::real, {Bias ? Out : 0}),
        theta_(theta_is_p ? 0 : Out * in_size) {}

  static std::string describe() {
    return fmt::format("dense({}->{}, {}{})", in_size, Out, scheme::name, Bias ? ", bias" : "");
  }

  // PyTorch's Linear default, U(-1/sqrt(in), 1/sqrt(in)), for the weights and the bias alike.
  void init(rng& g) {
    const float a = 1.0f / std::sqrt(static_cast<float>(in_size));
    saturation_counter unused;
    for (std::size_t i = 0; i < weight_.size(); ++i) weight_.store(i, g.uniform(-a, a), g.uniform(), unused);
    for (std::size_t i = 0; i < bias_.size(); ++i) bias_.store(i, g.uniform(-a, a), g.uniform(), unused);
  }

  void forward(const batch_tensor<format>& x, batch_tensor<format>& y, context& ctx) {
    const std::size_t b = x.rows();
    y.resize(b, Out);
    if constexpr (!theta_is_p) scheme::weights(weight_, theta_.data(), theta_exp_, ctx);
    if constexpr (!is_fixed_v<format>) {
      detail::matmul_xwt(x.data.data(), theta(), y.data.data(), b, Out, in_size);
      if constexpr (Bias) {
        float* out = y.data.data();
        for (std::size_t r = 0; r < b; ++r)
          for (std::size_t j = 0; j < Out; ++j) out[r * Out + j] += bias_.value[j];
      }
      y.exp = 0;
    } else {
      acc_.resize(b * Out);
      detail::matmul_xwt(x.data.data(), theta_.data(), acc_.data(), b, Out, in_size, scratch_);
      const int acc_exp = x.exp + theta_exp_;
      if constexpr (Bias) {
        for (std::size_t j = 0; j < Out; ++j) {
          const auto bq = static_cast<std::int32_t>(
              detail::round_shift(bias_.value[j], acc_exp - bias_.exp, rounding::nearest_even, 0));
          for (std::size_t r = 0; r < b; ++r) acc_[r * Out + j] += bq;
        }
      }
      y.exp = requantize_dynamic(acc_.data(), acc_.size(), acc_exp, y.data.data(),
                                 format_traits<format>::operand_max, rounding::nearest_even, stream{});
    }
  }

  void backward(const batch_tensor<format>& x, const batch_tensor<format>&, const batch_tensor<format>& dy,
                batch_tensor<format>* dx, context& ctx) {
    const std::size_t b = x.rows();
    if constexpr (!is_fixed_v<format>) {
      detail::matmul_dytx(dy.data.data(), x.data.data(), weight_.grad.data(), b, Out, in_size);
      weight_.grad_scale = 1.0f;
      if (dx) {
        dx->resize(b, in_size);
        detail::matmul_dyw(dy.data.data(), theta(), dx->data.data(), b, Out, in_size);
        dx->exp = 0;
      }
    } else {
      detail::matmul_dytx(dy.data.data(), x.data.data(), weight_.grad.data(), b, Out, in_size, scratch_);
      weight_.grad_scale = std::ldexp(1.0f, dy.exp + x.exp);
      if (dx) {
        dx->resize(b, in_size);
        acc_.resize(b * in_size);
        detail::matmul_dyw(dy.data.data(), theta_.data(), acc_.data(), b, Out, in_size, scratch_);
        dx->exp = requantize_dynamic(acc_.data(), acc_.size(), dy.exp + theta_exp_, dx->data.data(),
                                     format_traits<format>::operand_max,
                                     format_traits<format>::error_rounding, ctx.next_stream());
      }
    }
    scheme::weight_grad(weight_, ctx);
    if constexpr (Bias) {
      const auto* g = dy.data.data();
      for (std::size_t j = 0; j < Out; ++j) {
        typename parameter<format>::grad_type s{0};
        for (std::size_t r = 0; r < b; ++r) s += g[r * Out + j];
        bias_.grad[j] = s;
      }
      bias_.grad_scale = std::ldexp(1.0f, dy.exp);
    }
  }

  template <class Fn>
  void for_each_parameter(Fn&& fn) {
    fn(weight_);
    if constexpr (Bias) fn(bias_);
  }
  template <class Fn>
  void for_each_state(Fn&&) {}

  // Binarized weights are exported as their signs (int8 +-1): the trained binary network. Real ones as F32.
  void save(io::safetensors& out, const std::string& prefix) const {
    const std::vector<std::int64_t> dims{static_cast<std::int64_t>(Out), static_cast<std::int64_t>(in_size)};
    if constexpr (binarized) {
      std::vector<std::int8_t> signs(weight_.size());
      for (std::size_t i = 0; i < signs.size(); ++i) signs[i] = weight_.value[i] > 0 ? 1 : -1;
      out.tensors[prefix + "weight_sign"] = io::tensor_blob::from(dims, signs);
    } else {
      out.tensors[prefix + "weight"] = io::tensor_blob::from(dims, reals(weight_));
    }
    if constexpr (Bias) out.tensors[prefix + "bias"] = io::tensor_blob::from({static_cast<std::int64_t>(Out)}, reals(bias_));
  }
  void load(const io::safetensors& in, const std::string& prefix) {
    const std::vector<std::int64_t> dims{static_cast<std::int64_t>(Out), static_cast<std::int64_t>(in_size)};
    saturation_counter unused;
    if constexpr (binarized) {
      // Only the sign of P matters to the binary network; +-1 stores as the largest magnitude.
      const auto signs = in.get<std::int8_t>(prefix + "weight_sign", dims);
      for (std::size_t i = 0; i < signs.size(); ++i) weight_.store(i, signs[i] > 0 ? 1.0f : -1.0f, 0.0f, unused);
    } else {
      set_reals(weight_, in.get<float>(prefix + "weight", dims));
    }
    if constexpr (Bias) set_reals(bias_, in.get<float>(prefix + "bias", {static_cast<std::int64_t>(Out)}));
  }

  parameter<format>& weight() noexcept { return weight_; }
  parameter<format>& bias() noexcept { return bias_; }

 private:
  const storage_t<format>* theta() const noexcept { return theta_is_p ? weight_.value.data() : theta_.data(); }

  static std::vector<float> reals(const parameter<format>& p) {
    std::vector<float> r(p.size());
    for (std::size_t i = 0; i < r.size(); ++i) r[i] = p.real(i);
    return r;
  }
  static void set_reals(parameter<format>& p, const std::vector<float>& r) {
    saturation_counter unused;
    for (std::size_t i = 0; i < r.size(); ++i) p.store(i, r[i], 0.5f, unused);  // values written by save are exact
  }

  parameter<format> weight_, bias_;
  aligned_vector<storage_t<format>> theta_;
  int theta_exp_ = 0;
  std::vector<std::int32_t> acc_;  // fixed formats: int32 products before requantization
  [[no_unique_address]] std::conditional_t<is_fixed_v<format>, detail::int_matmul_scratch<storage_t<format>>,
                                           detail::empty> scratch_;
};

// Spec: dense<1000> (binarized per the policy), dense<10, real> (kept real), dense<10, real, true> (with bias).
template <std::size_t Out, class Scheme = inherit, bool Bias = false>
struct dense {
  static_assert(Out > 0, "pbnn::dense<Out>: Out must be positive");
  template <class Policy, class In>
  using layer = dense_layer<with_scheme<Policy, Scheme>, In, Out, Bias>;
};

}  // namespace pbnn
