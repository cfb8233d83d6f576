#pragma once
// 2-D convolution without bias (a batch norm follows it in binarized networks) as im2col + GEMM:
//   cols[(n, oh, ow), (kh, kw, c)] = x[n, oh S - P + kh, ow S - P + kw, c]   (0 outside the image)
//   y = cols theta(P)^T,  dW = dy^T cols,  dx = col2im(dy theta)
// Images are channels-last (H x W x C per sample, so every im2col row is K runs of K*C contiguous
// values); the shape is still written shape<C, H, W>. The weight is [Cout x (K K C)] in (kh, kw, c)
// order inside, exported in PyTorch's [Cout, C, K, K]. Fixed formats run the three products in
// pbnn's integer GEMM (int8/int16 operands, int32 sums; AVX-512 VNNI where available).
// fixed<8> with stride 1 computes dx as the convolution of dy (padded by K - 1 - P) with the flipped
// kernel, one GEMM whose int32 result is dx itself: no int32 dcols (b H W x K K C, 151 MB for Table 1's
// second layer at batch 32) and no col2im. Its reduction, K K Cout, stays exact in int8's int32 sums
// but not in int16's (exact to 512), so fixed<16> keeps the dcols path, whose reduction is Cout; so do
// layers that widen (Cout > C), where the narrow product (C columns over K K Cout) measured slower.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "pbnn/detail/matmul.hpp"
#include "pbnn/layers/layer_spec.hpp"

namespace pbnn {

namespace detail {
template <class In>
inline constexpr bool is_image_shape_v = false;
template <std::size_t C, std::size_t H, std::size_t W>
inline constexpr bool is_image_shape_v<shape<C, H, W>> = true;

template <class In>
struct image_dims {
  static constexpr std::size_t C = 1, H = 1, W = 1;
};
template <std::size_t Ch, std::size_t Hh, std::size_t Ww>
struct image_dims<shape<Ch, Hh, Ww>> {
  static constexpr std::size_t C = Ch, H = Hh, W = Ww;
};

// The largest reduction the integer GEMM sums exactly in int32 (int_gemm.hpp's contract).
template <class S>
inline constexpr std::size_t exact_int_reduction = sizeof(S) == 1 ? 65000 : 512;
}  // namespace detail

template <class Policy, class In, std::size_t Cout, std::size_t K, std::size_t Stride, std::size_t Pad>
class conv2d_layer {
  static_assert(detail::is_image_shape_v<In>,
                "pbnn::conv2d: the input must be an image, shape<C, H, W> (use input<C, H, W>)");
  static constexpr std::size_t C = detail::image_dims<In>::C, H = detail::image_dims<In>::H,
                               W = detail::image_dims<In>::W;
  static_assert(H + 2 * Pad >= K && W + 2 * Pad >= K, "pbnn::conv2d: the kernel is larger than the padded input");

 public:
  using format = typename Policy::format;
  using scheme = typename Policy::scheme;
  using in_shape = In;
  static constexpr std::size_t Ho = (H + 2 * Pad - K) / Stride + 1, Wo = (W + 2 * Pad - K) / Stride + 1;
  using out_shape = shape<Cout, Ho, Wo>;
  static constexpr std::size_t patch = K * K * C;  // GEMM reduction length of the forward pass
  static constexpr bool binarized = scheme::binarizes;
  static constexpr bool theta_is_p = !binarized && !is_fixed_v<format>;
  // dx as a transposed convolution (see the header comment).
  static constexpr bool dx_by_flipped_kernel =
      is_fixed_v<format> && sizeof(storage_t<format>) == 1 && Stride == 1 && Pad < K && Cout <= C;

  conv2d_layer()
      : weight_("weight", binarized ? param_role::binarized : param_role::real, {Cout, patch}),
        theta_(theta_is_p ? 0 : Cout * patch) {}

  static std::string describe() {
    return fmt::format("conv2d({}x{}x{}->{}x{}x{}, k{} s{} p{}, {})", C, H, W, Cout, Ho, Wo, K, Stride, Pad,
                       scheme::name);
  }

  // PyTorch's Conv2d default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C K K.
  void init(rng& g) {
    const float a = 1.0f / std::sqrt(static_cast<float>(patch));
    saturation_counter unused;
    for (std::size_t i = 0; i < weight_.size(); ++i) weight_.store(i, g.uniform(-a, a), g.uniform(), unused);
  }

  void forward(const batch_tensor<format>& x, batch_tensor<format>& y, context& ctx) {
    const std::size_t b = x.rows(), m = b * Ho * Wo;
    y.resize(b, Ho * Wo * Cout);
    if constexpr (!theta_is_p) scheme::weights(weight_, theta_.data(), theta_exp_, ctx);
    cols_.resize(m * patch);
    im2col<H, W, C, Stride, Pad>(x.data.data(), b, cols_.data());
    if constexpr (!is_fixed_v<format>) {
      detail::matmul_xwt(cols_.data(), theta(), y.data.data(), m, Cout, patch);
      y.exp = 0;
    } else {
      acc_.resize(m * Cout);
      detail::matmul_xwt(cols_.data(), theta_.data(), acc_.data(), m, Cout, patch, scratch_);
      y.exp = requantize_dynamic(acc_.data(), acc_.size(), x.exp + theta_exp_, y.data.data(),
                                 format_traits<format>::operand_max, rounding::nearest_even, stream{});
    }
  }

  // cols_ still holds the im2col of x from forward().
  void backward(const batch_tensor<format>& x, const batch_tensor<format>&, const batch_tensor<format>& dy,
                batch_tensor<format>* dx, context& ctx) {
    const std::size_t b = x.rows(), m = b * Ho * Wo;
    if constexpr (!is_fixed_v<format>) {
      detail::matmul_dytx(dy.data.data(), cols_.data(), weight_.grad.data(), m, Cout, patch);
      weight_.grad_scale = 1.0f;
      if (dx) {
        dcols_.resize(m * patch);
        detail::matmul_dyw(dy.data.data(), theta(), dcols_.data(), m, Cout, patch);
        dx->resize(b, H * W * C);
        col2im(dcols_.data(), dx->data.data(), b);
        dx->exp = 0;
      }
    } else {
      weight_gradient_int(dy, x.exp, m);
      if (dx) {
        acc_.resize(b * H * W * C);
        if constexpr (dx_by_flipped_kernel) {
          constexpr std::size_t taps = K * K * Cout;
          flip_kernel();
          dycols_.resize(b * H * W * taps);
          im2col<Ho, Wo, Cout, 1, K - 1 - Pad>(dy.data.data(), b, dycols_.data());
          detail::gemm_nt(b * H * W, C, taps, dycols_.data(), taps, flipped_.data(), taps, acc_.data(), C);
        } else {
          dcols_.resize(m * patch);
          detail::matmul_dyw(dy.data.data(), theta_.data(), dcols_.data(), m, Cout, patch, scratch_);
          col2im(dcols_.data(), acc_.data(), b);
        }
        dx->resize(b, H * W * C);
        dx->exp = requantize_dynamic(acc_.data(), acc_.size(), dy.exp + theta_exp_, dx->data.data(),
                                     format_traits<format>::operand_max, format_traits<format>::error_rounding,
                                     ctx.next_stream());
      }
    }
    scheme::weight_grad(weight_, ctx);
  }

  template <class Fn>
  void for_each_parameter(Fn&& fn) {
    fn(weight_);
  }
  template <class Fn>
  void for_each_state(Fn&&) {}

  // Binarized weights as their signs (int8 +-1), real ones as F32; both [Cout, C, K, K].
  void save(io::safetensors& out, const std::string& prefix) const {
    const std::vector<std::int64_t> dims{static_cast<std::int64_t>(Cout), static_cast<std::int64_t>(C),
                                         static_cast<std::int64_t>(K), static_cast<std::int64_t>(K)};
    if constexpr (binarized) {
      std::vector<std::int8_t> signs(weight_.size());
      for (std::size_t i = 0; i < signs.size(); ++i) signs[torch_index(i)] = weight_.value[i] > 0 ? 1 : -1;
      out.tensors[prefix + "weight_sign"] = io::tensor_blob::from(dims, signs);
    } else {
      std::vector<float> r(weight_.size());
      for (std::size_t i = 0; i < r.size(); ++i) r[torch_index(i)] = weight_.real(i);
      out.tensors[prefix + "weight"] = io::tensor_blob::from(dims, r);
    }
  }
  void load(const io::safetensors& in, const std::string& prefix) {
    const std::vector<std::int64_t> dims{static_cast<std::int64_t>(Cout), static_cast<std::int64_t>(C),
                                         static_cast<std::int64_t>(K), static_cast<std::int64_t>(K)};
    saturation_counter unused;
    if constexpr (binarized) {
      const auto signs = in.get<std::int8_t>(prefix + "weight_sign", dims);
      for (std::size_t i = 0; i < weight_.size(); ++i)
        weight_.store(i, signs[torch_index(i)] > 0 ? 1.0f : -1.0f, 0.0f, unused);
    } else {
      const auto r = in.get<float>(prefix + "weight", dims);
      for (std::size_t i = 0; i < weight_.size(); ++i) weight_.store(i, r[torch_index(i)], 0.5f, unused);
    }
  }

  parameter<format>& weight() noexcept { return weight_; }

 private:
  using value_type = storage_t<format>;
  const value_type* theta() const noexcept { return theta_is_p ? weight_.value.data() : theta_.data(); }

  // Index in [Cout, C, K, K] of the internal element i of [Cout, (kh, kw, c)].
  static constexpr std::size_t torch_index(std::size_t i) noexcept {
    const std::size_t o = i / patch, r = i % patch, kh = r / (K * C), kw = (r / C) % K, c = r % C;
    return ((o * C + c) * K + kh) * K + kw;
  }

  // One im2col row per output pixel of an IH x IW x IC image convolved with this layer's K x K
  // kernel at stride S, padding Pd: the forward input (H, W, C, Stride, Pad) or, for the flipped-
  // kernel dx, dy (Ho, Wo, Cout, 1, K - 1 - Pad). Rows are independent, so threads split them.
  template <std::size_t IH, std::size_t IW, std::size_t IC, std::size_t S, std::size_t Pd>
  static void im2col(const value_type* x, std::size_t b, value_type* cols) {
    constexpr std::size_t OH = (IH + 2 * Pd - K) / S + 1, OW = (IW + 2 * Pd - K) / S + 1, row_len = K * K * IC;
    const auto rows = static_cast<std::ptrdiff_t>(b * OH);
#pragma omp parallel for schedule(static) if (b * OH * OW * row_len > 65536)
    for (std::ptrdiff_t nh = 0; nh < rows; ++nh) {
      const std::size_t n = static_cast<std::size_t>(nh) / OH, oh = static_cast<std::size_t>(nh) % OH;
      const value_type* img = x + n * IH * IW * IC;
      for (std::size_t ow = 0; ow < OW; ++ow) {
        value_type* dst = cols + ((n * OH + oh) * OW + ow) * row_len;
        for (std::size_t kh = 0; kh < K; ++kh) {
          const std::ptrdiff_t ih = static_cast<std::ptrdiff_t>(oh * S + kh) - static_cast<std::ptrdiff_t>(Pd);
          value_type* row = dst + kh * K * IC;
          if (ih < 0 || ih >= static_cast<std::ptrdiff_t>(IH)) {
            std::fill_n(row, K * IC, value_type{0});
            continue;
          }
          const std::ptrdiff_t iw0 = static_cast<std::ptrdiff_t>(ow * S) - static_cast<std::ptrdiff_t>(Pd);
          // Columns [lo, hi) of the kernel row fall inside the image: one contiguous copy.
          const std::size_t lo = static_cast<std::size_t>(std::max<std::ptrdiff_t>(0, -iw0));
          const std::size_t hi = static_cast<std::size_t>(
              std::clamp<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(IW) - iw0, 0, static_cast<std::ptrdiff_t>(K)));
          std::fill_n(row, lo * IC, value_type{0});
          if (hi > lo) {
            const auto first = static_cast<std::size_t>(iw0 + static_cast<std::ptrdiff_t>(lo));
            std::memcpy(row + lo * IC, img + (static_cast<std::size_t>(ih) * IW + first) * IC,
                        (hi - lo) * IC * sizeof(value_type));
          }
          std::fill_n(row + std::max(hi, lo) * IC, (K - std::max(hi, lo)) * IC, value_type{0});
        }
      }
    }
  }

  // flipped_[c, (kh, kw, o)] = theta[o, (K-1-kh, K-1-kw, c)]: the kernel of the transposed convolution.
  void flip_kernel() {
    flipped_.resize(C * K * K * Cout);
    const value_type* t = theta();
    for (std::size_t o = 0; o < Cout; ++o)
      for (std::size_t kh = 0; kh < K; ++kh)
        for (std::size_t kw = 0; kw < K; ++kw)
          for (std::size_t c = 0; c < C; ++c)
            flipped_[c * K * K * Cout + ((K - 1 - kh) * K + (K - 1 - kw)) * Cout + o] = t[o * patch + (kh * K + kw) * C + c];
  }

  // dx[n, ih, iw, c] = sum of the dcols entries that im2col copied from there. Samples are
  // independent, so threads split them and each sums in a fixed order.
  template <class T>
  static void col2im(const T* dcols, T* dx, std::size_t b) {
    std::fill_n(dx, b * H * W * C, T{0});
    const auto samples = static_cast<std::ptrdiff_t>(b);
#pragma omp parallel for schedule(static) if (b > 1 && b * Ho * Wo * patch > 65536)
    for (std::ptrdiff_t ns = 0; ns < samples; ++ns) {
      const auto n = static_cast<std::size_t>(ns);
      T* img = dx + n * H * W * C;
      for (std::size_t oh = 0; oh < Ho; ++oh)
        for (std::size_t ow = 0; ow < Wo; ++ow) {
          const T* src = dcols + ((n * Ho + oh) * Wo + ow) * patch;
          for (std::size_t kh = 0; kh < K; ++kh) {
            const std::ptrdiff_t ih = static_cast<std::ptrdiff_t>(oh * Stride + kh) - static_cast<std::ptrdiff_t>(Pad);
            if (ih < 0 || ih >= static_cast<std::ptrdiff_t>(H)) continue;
            for (std::size_t kw = 0; kw < K; ++kw) {
              const std::ptrdiff_t iw = static_cast<std::ptrdiff_t>(ow * Stride + kw) - static_cast<std::ptrdiff_t>(Pad);
              if (iw < 0 || iw >= static_cast<std::ptrdiff_t>(W)) continue;
              T* d = img + (static_cast<std::size_t>(ih) * W + static_cast<std::size_t>(iw)) * C;
              const T* s = src + (kh * K + kw) * C;
#pragma omp simd
              for (std::size_t c = 0; c < C; ++c) d[c] += s[c];
            }
          }
        }
    }
  }

  // dW = dy^T cols over m = b Ho Wo rows, a reduction far longer than the integer GEMM sums exactly
  // in int32: it runs in chunks summed in int64, then narrows to int32 with one power-of-two scale.
  void weight_gradient_int(const batch_tensor<format>& dy, int x_exp, std::size_t m) {
    constexpr std::size_t chunk = detail::exact_int_reduction<value_type>;
    const std::size_t n = Cout * patch;
    int shift = 0;
    if (m <= chunk) {
      detail::matmul_dytx(dy.data.data(), cols_.data(), weight_.grad.data(), m, Cout, patch, scratch_);
    } else {
      wide_.assign(n, 0);
      partial_.resize(n);
      for (std::size_t r0 = 0; r0 < m; r0 += chunk) {
        const std::size_t rows = std::min(chunk, m - r0);
        detail::matmul_dytx(dy.data.data() + r0 * Cout, cols_.data() + r0 * patch, partial_.data(), rows, Cout,
                            patch, scratch_);
        for (std::size_t i = 0; i < n; ++i) wide_[i] += partial_[i];
      }
      std::int64_t maxabs = 0;
      for (const auto v : wide_) maxabs = std::max(maxabs, v < 0 ? -v : v);
      while ((maxabs >> shift) > std::numeric_limits<std::int32_t>::max() - 1) ++shift;
      for (std::size_t i = 0; i < n; ++i)
        weight_.grad[i] = static_cast<std::int32_t>(shift ? detail::shift_nearest_even(wide_[i], shift) : wide_[i]);
    }
    weight_.grad_scale = std::ldexp(1.0f, dy.exp + x_exp + shift);
  }

  parameter<format> weight_;
  aligned_vector<value_type> theta_;
  int theta_exp_ = 0;
  aligned_vector<value_type> cols_;  // im2col of the last forward input
  aligned_vector<value_type> dycols_, flipped_;  // fixed<8>'s dx: im2col of dy, flipped kernel
  using grad_value = std::conditional_t<is_fixed_v<format>, std::int32_t, float>;
  aligned_vector<grad_value> dcols_;
  std::vector<std::int32_t> acc_;  // fixed formats: int32 sums before requantization
  std::vector<std::int64_t> wide_;
  std::vector<std::int32_t> partial_;
  [[no_unique_address]] std::conditional_t<is_fixed_v<format>, detail::int_matmul_scratch<value_type>,
                                           detail::empty> scratch_;
};

// Spec: conv2d<128> (3x3, stride 1, padding 1: the size-preserving case), conv2d<64, 5, 1, 2>,
// conv2d<10, 3, 1, 1, real> (kept real).
template <std::size_t Cout, std::size_t K = 3, std::size_t Stride = 1, std::size_t Pad = 1, class Scheme = inherit>
struct conv2d {
  static_assert(Cout > 0 && K > 0 && Stride > 0, "pbnn::conv2d<Cout, K, Stride, Pad>: Cout, K and Stride must be positive");
  template <class Policy, class In>
  using layer = conv2d_layer<with_scheme<Policy, Scheme>, In, Cout, K, Stride, Pad>;
};

}  // namespace pbnn
