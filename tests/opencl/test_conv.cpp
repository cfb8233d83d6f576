// The convolution's data movement and max pooling on the device against the definitions and the CPU
// layers: identical values (float sums of col2im added in the CPU's order).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include <pbnn/layers/max_pool.hpp>
#include <pbnn/opencl/conv.hpp>
#include <pbnn/policy.hpp>

#include "opencl/opencl_device.hpp"

namespace {

using namespace pbnn;

template <class T>
std::vector<T> random_values(std::size_t n, std::mt19937& g) {
  std::uniform_int_distribution<int> d(-100, 100);
  std::vector<T> v(n);
  for (auto& x : v) x = std::is_same_v<T, float> ? static_cast<T>(d(g) * 0.013f) : static_cast<T>(d(g));
  return v;
}

template <class T>
void check_im2col_col2im(opencl::runtime& rt, const opencl::conv_geometry& geo) {
  INFO(geo.height << "x" << geo.width << "x" << geo.channels << ", kernel " << geo.kernel << ", stride " << geo.stride
                  << ", padding " << geo.pad);
  std::mt19937 g(static_cast<unsigned>(geo.kernel * 31 + geo.stride * 7 + geo.pad));
  const std::size_t H = geo.height, W = geo.width, C = geo.channels, K = geo.kernel, Ho = geo.out_height(),
                    Wo = geo.out_width(), row_len = K * K * C;
  const auto x = random_values<T>(geo.image_size(), g);
  opencl::device_buffer<T> x_dev, cols, back;
  x_dev.upload(rt, x);
  opencl::im2col(rt, x_dev, geo, cols);
  const auto got = cols.download(rt);
  std::vector<T> want(geo.cols_size());
  for (std::size_t n = 0; n < geo.batch; ++n)
    for (std::size_t oh = 0; oh < Ho; ++oh)
      for (std::size_t ow = 0; ow < Wo; ++ow)
        for (std::size_t kh = 0; kh < K; ++kh)
          for (std::size_t kw = 0; kw < K; ++kw)
            for (std::size_t c = 0; c < C; ++c) {
              const auto ih = static_cast<std::ptrdiff_t>(oh * geo.stride + kh) - static_cast<std::ptrdiff_t>(geo.pad);
              const auto iw = static_cast<std::ptrdiff_t>(ow * geo.stride + kw) - static_cast<std::ptrdiff_t>(geo.pad);
              const bool inside = ih >= 0 && iw >= 0 && ih < static_cast<std::ptrdiff_t>(H) && iw < static_cast<std::ptrdiff_t>(W);
              want[((n * Ho + oh) * Wo + ow) * row_len + (kh * K + kw) * C + c] =
                  inside ? x[((n * H + static_cast<std::size_t>(ih)) * W + static_cast<std::size_t>(iw)) * C + c] : T{0};
            }
  CHECK(got == want);

  // col2im of random dcols, summed in the CPU layer's order: output pixels ascending.
  const auto dcols = random_values<T>(geo.cols_size(), g);
  std::vector<T> dx(geo.image_size(), T{0});
  for (std::size_t n = 0; n < geo.batch; ++n)
    for (std::size_t oh = 0; oh < Ho; ++oh)
      for (std::size_t ow = 0; ow < Wo; ++ow)
        for (std::size_t kh = 0; kh < K; ++kh)
          for (std::size_t kw = 0; kw < K; ++kw) {
            const auto ih = static_cast<std::ptrdiff_t>(oh * geo.stride + kh) - static_cast<std::ptrdiff_t>(geo.pad);
            const auto iw = static_cast<std::ptrdiff_t>(ow * geo.stride + kw) - static_cast<std::ptrdiff_t>(geo.pad);
            if (ih < 0 || iw < 0 || ih >= static_cast<std::ptrdiff_t>(H) || iw >= static_cast<std::ptrdiff_t>(W)) continue;
            for (std::size_t c = 0; c < C; ++c)
              dx[((n * H + static_cast<std::size_t>(ih)) * W + static_cast<std::size_t>(iw)) * C + c] +=
                  dcols[((n * Ho + oh) * Wo + ow) * row_len + (kh * K + kw) * C + c];
          }
  opencl::device_buffer<T> ddcols;
  ddcols.upload(rt, dcols);
  opencl::col2im(rt, ddcols, geo, back);
  CHECK(back.download(rt) == dx);
}

}  // namespace

TEMPLATE_TEST_CASE("OpenCL im2col and col2im equal the definitions", "[opencl][conv]", float, std::int8_t, std::int32_t) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  check_im2col_col2im<TestType>(*rt, {2, 7, 6, 3, 3, 1, 1});
  check_im2col_col2im<TestType>(*rt, {2, 9, 9, 4, 5, 1, 2});
  check_im2col_col2im<TestType>(*rt, {3, 8, 7, 2, 3, 2, 1});
  check_im2col_col2im<TestType>(*rt, {1, 5, 5, 3, 3, 1, 0});
  check_im2col_col2im<TestType>(*rt, {2, 6, 5, 48, 3, 1, 1});  // 16 channels per work-item for int8, 4 for float
  CHECK_THROWS_AS(check_im2col_col2im<TestType>(*rt, {1, 2, 2, 1, 5, 1, 0}), std::invalid_argument);
}

// col2im of int32 sums reduces the largest |dx| into a maximum slot as it writes dx (what the
// requantization of a convolution's dx reads where the device forms dcols), for 1, 2 and 4 channels
// per work-item; the values are those of the untracked col2im; a float dx cannot be tracked.
TEST_CASE("OpenCL col2im of int32 sums reduces their largest magnitude", "[opencl][conv]") {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  for (const opencl::conv_geometry geo : {opencl::conv_geometry{2, 7, 6, 3, 3, 1, 1}, opencl::conv_geometry{2, 6, 5, 6, 3, 2, 1},
                                          opencl::conv_geometry{3, 9, 9, 8, 3, 1, 1}}) {
    INFO(geo.channels << " channels, stride " << geo.stride);
    std::mt19937 g(static_cast<unsigned>(geo.channels));
    opencl::device_buffer<std::int32_t> dcols, plain, tracked;
    dcols.upload(*rt, random_values<std::int32_t>(geo.cols_size(), g));
    opencl::col2im(*rt, dcols, geo, plain);
    opencl::device_buffer<std::uint32_t> maxima;
    maxima.upload(*rt, std::vector<std::uint32_t>{7, 0});
    opencl::col2im(*rt, dcols, geo, tracked, opencl::maximum_target{&maxima, 1});
    const auto dx = plain.download(*rt);
    std::uint32_t largest = 0;
    for (const std::int32_t v : dx) largest = std::max(largest, static_cast<std::uint32_t>(v < 0 ? -v : v));
    CHECK(tracked.download(*rt) == dx);
    CHECK(maxima.download(*rt) == std::vector<std::uint32_t>{7, largest});
  }
  opencl::device_buffer<float> fcols, fdx;
  fcols.upload(*rt, std::vector<float>(9, 1.0f));
  opencl::device_buffer<std::uint32_t> maxima;
  maxima.upload(*rt, std::vector<std::uint32_t>{0});
  CHECK_THROWS_AS(opencl::col2im(*rt, fcols, {1, 3, 3, 1, 1, 1, 0}, fdx, opencl::maximum_target{&maxima, 0}),
                  std::logic_error);
}

TEMPLATE_TEST_CASE("OpenCL max pooling equals the CPU layer, forward and backward", "[opencl][conv]", fp32, fixed<8>,
                   fixed<16>) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  using S = storage_t<TestType>;
  constexpr std::size_t B = 3, C = 5, H = 8, W = 6;
  max_pool_layer<policy<TestType, real>, shape<C, H, W>, 2> pool;
  std::mt19937 g(8);
  batch_tensor<TestType> x, y, dy, dx;
  x.resize(B, H * W * C);
  auto xv = random_values<S>(x.size(), g);
  xv[0] = xv[1 * C];  // a tie inside the first window: the first maximum wins
  std::copy(xv.begin(), xv.end(), x.data.data());
  context ctx;
  pool.forward(x, y, ctx);
  dy.resize(B, y.cols());
  const auto dyv = random_values<S>(dy.size(), g);
  std::copy(dyv.begin(), dyv.end(), dy.data.data());
  pool.backward(x, y, dy, &dx, ctx);

  const opencl::conv_geometry geo{B, H, W, C, 1, 1, 0};
  opencl::device_buffer<S> x_dev, y_dev, ddy, ddx;
  opencl::device_buffer<std::uint8_t> argmax;
  x_dev.upload(*rt, xv);
  opencl::max_pool(*rt, x_dev, geo, 2, y_dev, &argmax);
  CHECK(y_dev.download(*rt) == std::vector<S>(y.data.begin(), y.data.end()));
  ddy.upload(*rt, dyv);
  opencl::max_pool_grad(*rt, ddy, argmax, geo, 2, ddx);
  CHECK(ddx.download(*rt) == std::vector<S>(dx.data.begin(), dx.data.end()));
  CHECK_THROWS_AS(opencl::max_pool(*rt, x_dev, geo, 4, y_dev, nullptr), std::invalid_argument);  // 6 % 4 != 0
}
