#pragma once
// Max pooling over Size x Size windows with stride Size on channels-last images; the gradient goes
// to the arg-max of each window (the first one on ties). Fixed formats compare the stored integers
// (one exponent per tensor), so the output keeps the input's exponent and no rounding happens.
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "pbnn/layers/activation.hpp"
#include "pbnn/layers/conv2d.hpp"

namespace pbnn {

template <class Policy, class In, std::size_t Size>
class max_pool_layer : public stateless_layer {
  static_assert(detail::is_image_shape_v<In>,
                "pbnn::max_pool: the input must be an image, shape<C, H, W> (put it before the dense layers)");
  static constexpr std::size_t C = detail::image_dims<In>::C, H = detail::image_dims<In>::H,
                               W = detail::image_dims<In>::W;
  static_assert(H % Size == 0 && W % Size == 0, "pbnn::max_pool<Size>: the image height and width must be multiples of Size");

 public:
  using format = typename Policy::format;
  using in_shape = In;
  static constexpr std::size_t Ho = H / Size, Wo = W / Size;
  using out_shape = shape<C, Ho, Wo>;

  static std::string describe() { return fmt::format("max_pool({}x{}x{}, {}x{})", C, H, W, Size, Size); }

  void forward(const batch_tensor<format>& x, batch_tensor<format>& y, context& ctx) {
    const std::size_t b = x.rows();
    y.resize(b, Ho * Wo * C);
    y.exp = x.exp;
    const bool keep_argmax = ctx.training();
    if (keep_argmax) argmax_.resize(b * Ho * Wo * C);
    const value_type* in = x.data.data();
    value_type* out = y.data.data();
    const auto rows = static_cast<std::ptrdiff_t>(b * Ho);
#pragma omp parallel for schedule(static) if (b * H * W * C > 65536)
    for (std::ptrdiff_t nh = 0; nh < rows; ++nh) {
      const std::size_t n = static_cast<std::size_t>(nh) / Ho, oh = static_cast<std::size_t>(nh) % Ho;
      for (std::size_t ow = 0; ow < Wo; ++ow) {
        const std::size_t o = ((n * Ho + oh) * Wo + ow) * C;
        const value_type* first = in + ((n * H + oh * Size) * W + ow * Size) * C;
        for (std::size_t c = 0; c < C; ++c) {
          out[o + c] = first[c];
          if (keep_argmax) argmax_[o + c] = 0;
        }
        for (std::size_t k = 1; k < Size * Size; ++k) {
          const value_type* src = first + ((k / Size) * W + k % Size) * C;
          for (std::size_t c = 0; c < C; ++c)
            if (src[c] > out[o + c]) {
              out[o + c] = src[c];
              if (keep_argmax) argmax_[o + c] = static_cast<std::uint8_t>(k);
            }
        }
      }
    }
  }

  void backward(const batch_tensor<format>& x, const batch_tensor<format>&, const batch_tensor<format>& dy,
                batch_tensor<format>* dx, context&) {
    if (!dx) return;
    const std::size_t b = x.rows();
    dx->resize(b, H * W * C);
    dx->exp = dy.exp;
    value_type* d = dx->data.data();
    std::fill_n(d, dx->size(), value_type{0});
    const value_type* g = dy.data.data();
    const auto rows = static_cast<std::ptrdiff_t>(b * Ho);
#pragma omp parallel for schedule(static) if (b * H * W * C > 65536)
    for (std::ptrdiff_t nh = 0; nh < rows; ++nh) {
      const std::size_t n = static_cast<std::size_t>(nh) / Ho, oh = static_cast<std::size_t>(nh) % Ho;
      for (std::size_t ow = 0; ow < Wo; ++ow) {
        const std::size_t o = ((n * Ho + oh) * Wo + ow) * C;
        value_type* first = d + ((n * H + oh * Size) * W + ow * Size) * C;
        for (std::size_t c = 0; c < C; ++c) {
          const std::size_t k = argmax_[o + c];
          first[((k / Size) * W + k % Size) * C + c] = g[o + c];
        }
      }
    }
  }

 private:
  using value_type = storage_t<format>;
  std::vector<std::uint8_t> argmax_;  // window position of each output's maximum, from the last training forward
};

// Spec: max_pool<> (2x2, stride 2), max_pool<3> (3x3, stride 3).
template <std::size_t Size = 2>
struct max_pool {
  static_assert(Size >= 1 && Size <= 15, "pbnn::max_pool<Size>: Size must be in [1, 15]");
  template <class Policy, class In>
  using layer = max_pool_layer<Policy, In, Size>;
};

}  // namespace pbnn
