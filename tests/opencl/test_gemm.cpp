// The OpenCL GEMMs against the CPU backend's (pbnn/detail/matmul.hpp) on the same operands:
// identical int32 sums for int8 and int16, float within a relative 1e-5 of the largest magnitude
// (the summation order differs). Sizes are not multiples of the tiles, so every edge is exercised.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <vector>

#include <pbnn/detail/matmul.hpp>
#include <pbnn/opencl/gemm.hpp>

#include "opencl/opencl_device.hpp"

namespace {

using namespace pbnn;

template <class T>
std::vector<T> random_values(std::size_t n, std::mt19937& g) {
  std::vector<T> v(n);
  if constexpr (std::is_same_v<T, float>) {
    std::uniform_real_distribution<float> d(-1, 1);
    for (auto& x : v) x = d(g);
  } else {
    std::uniform_int_distribution<int> d(sizeof(T) == 1 ? -127 : -2047, sizeof(T) == 1 ? 127 : 2047);
    for (auto& x : v) x = static_cast<T>(d(g));
  }
  return v;
}

template <class R>
void check_same(const std::vector<R>& gpu, const std::vector<R>& cpu) {
  REQUIRE(gpu.size() == cpu.size());
  if constexpr (std::is_same_v<R, float>) {
    float scale = 0;
    for (const float x : cpu) scale = std::max(scale, std::fabs(x));
    std::size_t bad = 0;
    for (std::size_t i = 0; i < cpu.size(); ++i) bad += std::fabs(gpu[i] - cpu[i]) > 1e-5f * scale;
    CHECK(bad == 0);
  } else {
    const auto diff = std::mismatch(gpu.begin(), gpu.end(), cpu.begin());
    INFO("first difference at " << (diff.first - gpu.begin()));
    CHECK(diff.first == gpu.end());
  }
}

// The three products of a layer with b samples, k inputs and n outputs, on the device and on the CPU.
template <class T>
void check_products(opencl::runtime& rt, std::size_t b, std::size_t n, std::size_t k, const opencl::gemm_tuning& t) {
  INFO("b " << b << ", n " << n << ", k " << k << ", tile " << t.tile << "/" << t.per_item);
  using R = opencl::detail::gemm_result_t<T>;
  std::mt19937 g(static_cast<unsigned>(b * 7 + n * 13 + k));
  const auto x = random_values<T>(b * k, g), w = random_values<T>(n * k, g), dy = random_values<T>(b * n, g);
  opencl::device_buffer<T> X, W, DY;
  X.upload(rt, x);
  W.upload(rt, w);
  DY.upload(rt, dy);
  opencl::device_buffer<R> out;
  std::vector<R> cpu;
  [[maybe_unused]] detail::int_matmul_scratch<T> scratch;  // the integer products' transposes

  cpu.assign(b * n, R{});
  if constexpr (std::is_same_v<T, float>) detail::matmul_xwt(x.data(), w.data(), cpu.data(), b, n, k);
  else detail::matmul_xwt(x.data(), w.data(), cpu.data(), b, n, k, scratch);
  opencl::matmul_xwt(rt, X, W, out, b, n, k, t);
  check_same(out.download(rt), cpu);

  cpu.assign(b * k, R{});
  if constexpr (std::is_same_v<T, float>) detail::matmul_dyw(dy.data(), w.data(), cpu.data(), b, n, k);
  else detail::matmul_dyw(dy.data(), w.data(), cpu.data(), b, n, k, scratch);
  opencl::matmul_dyw(rt, DY, W, out, b, n, k, t);
  check_same(out.download(rt), cpu);

  cpu.assign(n * k, R{});
  if constexpr (std::is_same_v<T, float>) detail::matmul_dytx(dy.data(), x.data(), cpu.data(), b, n, k);
  else detail::matmul_dytx(dy.data(), x.data(), cpu.data(), b, n, k, scratch);
  opencl::matmul_dytx(rt, DY, X, out, b, n, k, t);
  check_same(out.download(rt), cpu);
}

}  // namespace

TEMPLATE_TEST_CASE("OpenCL GEMMs match the CPU backend's products", "[opencl][gemm]", float, std::int8_t, std::int16_t) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  const opencl::gemm_tuning standard{}, small{16, 2}, large{64, 4};
  check_products<TestType>(*rt, 37, 53, 71, standard);
  check_products<TestType>(*rt, 100, 10, 500, standard);  // the MLP's last layer: 500 = 15.6 tiles of k
  check_products<TestType>(*rt, 1, 1, 1, standard);
  check_products<TestType>(*rt, 33, 65, 17, small);
  check_products<TestType>(*rt, 130, 70, 150, large);
  // Long reductions over few outputs: k split over work-groups, the slices summed after.
  REQUIRE(opencl::detail::split_count(1, 3000, 32, opencl::gemm_tuning{}) == 5);
  check_products<TestType>(*rt, 3000, 20, 30, standard);  // dW = dY^T X sums 3000 rows
  check_products<TestType>(*rt, 5, 7, 3000, standard);    // Y = X W^T sums 3000 inputs (float: few-row kernels)
}

// A small batch's float products take the few-row kernels (gemm_few_rows_cl.hpp) where their shape
// allows: the layer's three products against the CPU's, for 1 to 8 rows, outputs that fill part of a
// work-group and several, and onto what C holds.
TEST_CASE("Float products of a few rows match the CPU's, and accumulate", "[opencl][gemm]") {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  opencl::gemm_tuning few;
  REQUIRE(few.few_rows);
  for (const auto& [b, n, k] : {std::array<std::size_t, 3>{8, 1024, 512}, std::array<std::size_t, 3>{3, 10, 1024},
                                std::array<std::size_t, 3>{8, 36, 40}, std::array<std::size_t, 3>{1, 4, 4},
                                std::array<std::size_t, 3>{7, 100, 2000}, std::array<std::size_t, 3>{5, 33, 36}})
    check_products<float>(*rt, b, n, k, few);
  // C += A B for each kernel: Y += X W^T, dX += dY W, dW += dY^T X.
  const std::size_t m = 6, n = 44, k = 20;
  std::mt19937 g(9);
  const auto x = random_values<float>(m * k, g), w = random_values<float>(n * k, g), dy = random_values<float>(m * n, g);
  opencl::device_buffer<float> X, W, DY, out;
  X.upload(*rt, x);
  W.upload(*rt, w);
  DY.upload(*rt, dy);
  const auto twice = [](std::vector<float> v) {
    for (auto& e : v) e += e;
    return v;
  };
  std::vector<float> cpu(m * n);
  detail::matmul_xwt(x.data(), w.data(), cpu.data(), m, n, k);
  opencl::detail::gemm(*rt, m, n, k, X, false, W, false, out, false, few);
  opencl::detail::gemm(*rt, m, n, k, X, false, W, false, out, true, few);
  check_same(out.download(*rt), twice(cpu));
  cpu.assign(m * k, 0);
  detail::matmul_dyw(dy.data(), w.data(), cpu.data(), m, n, k);
  opencl::detail::gemm(*rt, m, k, n, DY, false, W, true, out, false, few);
  opencl::detail::gemm(*rt, m, k, n, DY, false, W, true, out, true, few);
  check_same(out.download(*rt), twice(cpu));
  cpu.assign(n * k, 0);
  detail::matmul_dytx(dy.data(), x.data(), cpu.data(), m, n, k);
  opencl::detail::gemm(*rt, n, k, m, DY, true, X, true, out, false, few);
  opencl::detail::gemm(*rt, n, k, m, DY, true, X, true, out, true, few);
  check_same(out.download(*rt), twice(cpu));
  // Float sums have no largest magnitude to reduce, whichever kernel the shape would take.
  opencl::device_buffer<std::uint32_t> maxima;
  maxima.upload(*rt, std::vector<std::uint32_t>{0});
  CHECK_THROWS_AS(opencl::detail::gemm(*rt, m, n, k, X, false, W, false, out, false, few, {},
                                       opencl::maximum_target{&maxima, 0}),
                  std::logic_error);
}

TEST_CASE("A dense layer's backward products in one launch equal the two products", "[opencl][gemm]") {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  // Batches the one launch takes (1-8 rows, k in words; n not a multiple of 4 rows of dW) and one it
  // leaves to the two products (9 rows); the few-row kernels' sums, so equal bit for bit.
  for (const auto& [b, n, k] : {std::array<std::size_t, 3>{8, 1024, 512}, std::array<std::size_t, 3>{3, 10, 1028},
                                std::array<std::size_t, 3>{1, 37, 4}, std::array<std::size_t, 3>{9, 20, 36}}) {
    CAPTURE(b, n, k);
    std::mt19937 g(5);
    const auto x = random_values<float>(b * k, g), w = random_values<float>(n * k, g), dy = random_values<float>(b * n, g);
    opencl::device_buffer<float> X, W, DY, dW, dX, dW2, dX2;
    X.upload(*rt, x);
    W.upload(*rt, w);
    DY.upload(*rt, dy);
    opencl::matmul_dytx(*rt, DY, X, dW, b, n, k);
    opencl::matmul_dyw(*rt, DY, W, dX, b, n, k);
    opencl::matmul_dense_backward(*rt, DY, X, W, dW2, &dX2, b, n, k);
    CHECK(dW2.download(*rt) == dW.download(*rt));
    CHECK(dX2.download(*rt) == dX.download(*rt));
    opencl::device_buffer<float> dW3;  // no dX: the weight gradient alone
    opencl::matmul_dense_backward(*rt, DY, X, W, dW3, nullptr, b, n, k);
    CHECK(dW3.download(*rt) == dW.download(*rt));
  }
  opencl::device_buffer<float> small, dW, dX;
  small.upload(*rt, std::vector<float>(16, 1.0f));
  CHECK_THROWS_AS(opencl::matmul_dense_backward(*rt, small, small, small, dW, &dX, 4, 8, 8), std::invalid_argument);
}

// A product whose k is split adds its slices into C, or onto what C holds, the same each time it
// runs (the slices share the runtime's scratch).
TEMPLATE_TEST_CASE("Split-k products add their slices into C or onto it, again and again", "[opencl][gemm]", float,
                   std::int8_t, std::int16_t) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  using R = opencl::detail::gemm_result_t<TestType>;
  const std::size_t m = 20, n = 30, k = 3000;
  REQUIRE(opencl::detail::split_count(1, k, 32, opencl::gemm_tuning{}) > 1);
  std::mt19937 g(5);
  const auto a = random_values<TestType>(m * k, g), b = random_values<TestType>(n * k, g);
  std::vector<R> cpu(m * n);
  if constexpr (std::is_same_v<TestType, float>) {
    detail::matmul_xwt(a.data(), b.data(), cpu.data(), m, n, k);
  } else {
    detail::int_matmul_scratch<TestType> scratch;
    detail::matmul_xwt(a.data(), b.data(), cpu.data(), m, n, k, scratch);
  }
  opencl::device_buffer<TestType> A, B;
  A.upload(*rt, a);
  B.upload(*rt, b);
  opencl::device_buffer<R> C;
  for (int round = 0; round < 3; ++round) {
    opencl::detail::gemm(*rt, m, n, k, A, false, B, false, C, false, opencl::gemm_tuning{});
    check_same(C.download(*rt), cpu);
  }
  opencl::detail::gemm(*rt, m, n, k, A, false, B, false, C, true, opencl::gemm_tuning{});
  std::vector<R> twice(cpu);
  for (auto& v : twice) v += v;
  check_same(C.download(*rt), twice);
  if constexpr (std::is_same_v<TestType, float>) {
    // The slices left to the reader (gemm's `unsummed`) add up to the same product, bit for bit.
    opencl::device_buffer<float> summed;
    opencl::detail::gemm(*rt, m, n, k, A, false, B, false, summed, false, opencl::gemm_tuning{});
    opencl::device_tensor<fp32> t;
    t.resize(*rt, m, n);
    opencl::detail::gemm(*rt, m, n, k, A, false, B, false, t.data, false, opencl::gemm_tuning{}, {}, {}, &t.pending);
    CHECK(t.pending.count == opencl::detail::split_count(1, k, 32, opencl::gemm_tuning{}));
    opencl::sum_pending(*rt, t);
    CHECK(t.pending.count == 0);
    CHECK(t.data.download(*rt) == summed.download(*rt));
    // Unsplit products write C as usual; a product added onto C cannot leave its slices.
    opencl::detail::gemm(*rt, m, n, 64, A, false, B, false, t.data, false, opencl::gemm_tuning{}, {}, {}, &t.pending);
    CHECK(t.pending.count == 0);
    CHECK_THROWS_AS(opencl::detail::gemm(*rt, m, n, k, A, false, B, false, t.data, true, opencl::gemm_tuning{}, {}, {},
                                         &t.pending),
                    std::logic_error);
  }
}

// On NVIDIA devices from sm_80 int8 and float products run on tensor cores (gemm_mma_cl.hpp; float
// through 3xTF32, within the same 1e-5 of the CPU's); elsewhere both settings take the portable
// kernel. Word-aligned shapes (multiples of 4 and 16) take the mma kernel's vector loads, the others
// its element loads; 2048 x 2048 outputs its 128-wide tiles.
TEMPLATE_TEST_CASE("OpenCL GEMMs on tensor cores equal the portable kernel's and the CPU's", "[opencl][gemm]",
                   std::int8_t, float) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  INFO("tensor cores: " << opencl::tensor_core_gemms(*rt));
  opencl::gemm_tuning portable;
  portable.tensor_cores = false;
  for (const auto& t : {opencl::gemm_tuning{}, portable}) {
    check_products<TestType>(*rt, 64, 128, 256, t);
    check_products<TestType>(*rt, 37, 53, 71, t);
    check_products<TestType>(*rt, 4000, 36, 28, t);  // dW sums 4000 rows in slices of whole k steps
  }
  check_products<TestType>(*rt, 2048, 2048, 36, opencl::gemm_tuning{});
  // Every tiling shape of the mma kernel: warps of 64 rows or columns, 32-word k tiles, two stages.
  using opencl::mma_tiling;
  for (const mma_tiling tiling : {mma_tiling{64, 64, 32, 16, 1}, mma_tiling{128, 32, 64, 32, 1},
                                  mma_tiling{128, 64, 32, 16, 2}, mma_tiling{64, 32, 32, 32, 2}}) {
    INFO("tiling " << tiling.block << " " << tiling.warp_m << "x" << tiling.warp_n << " " << tiling.k_words << " "
                   << tiling.stages);
    opencl::gemm_tuning t;
    t.mma = tiling;
    check_products<TestType>(*rt, 64, 128, 256, t);
    check_products<TestType>(*rt, 37, 53, 71, t);
    check_products<TestType>(*rt, 300, 160, 200, t);
    check_products<TestType>(*rt, 4000, 160, 200, t);  // dW's k split into slices
  }
}

// Integer products reduce the largest magnitude of the sums they write into a maximum slot (what
// quantization reads), whether k is split or not, on either kernel.
TEMPLATE_TEST_CASE("Integer products reduce the largest magnitude of their sums as they write them", "[opencl][gemm]",
                   std::int8_t, std::int16_t) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  opencl::gemm_tuning portable;
  portable.tensor_cores = false;
  for (const auto& t : {opencl::gemm_tuning{}, portable})
    for (const auto& [m, n, k] : {std::array<std::size_t, 3>{37, 53, 71}, std::array<std::size_t, 3>{20, 30, 3000}}) {
      INFO(m << " x " << n << " x " << k << ", tensor cores allowed: " << t.tensor_cores);
      std::mt19937 g(static_cast<unsigned>(m + n + k));
      const auto a = random_values<TestType>(m * k, g), b = random_values<TestType>(n * k, g);
      std::vector<std::int32_t> cpu(m * n);
      detail::int_matmul_scratch<TestType> scratch;
      detail::matmul_xwt(a.data(), b.data(), cpu.data(), m, n, k, scratch);
      std::uint32_t largest = 0;
      for (const std::int32_t v : cpu) largest = std::max(largest, static_cast<std::uint32_t>(std::abs(v)));
      opencl::device_buffer<TestType> A, B;
      A.upload(*rt, a);
      B.upload(*rt, b);
      opencl::device_buffer<std::int32_t> C;
      opencl::device_buffer<std::uint32_t> maxima;
      maxima.upload(*rt, std::vector<std::uint32_t>{0, 0});
      opencl::matmul_xwt(*rt, A, B, C, m, n, k, t, opencl::maximum_target{&maxima, 1});
      check_same(C.download(*rt), cpu);
      CHECK(maxima.download(*rt) == std::vector<std::uint32_t>{0, largest});
    }
}

// A convolution's products reading the image in place of its im2col equal the products of the
// im2col itself, bit for bit (the same values summed in the same order), including split k and
// padding, strides and a 5 x 5 kernel; a stride-1 layer's dX as a convolution of dY equals dcols and
// col2im (exactly in int8, to rounding in float); float products whose k slices are left unsummed add up
// to the same sums. Devices without tensor-core GEMMs form im2col instead.
TEMPLATE_TEST_CASE("Convolution products read the image in place as they would read its im2col", "[opencl][gemm]",
                   float, std::int8_t) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  const opencl::conv_geometry shapes[] = {
      {3, 10, 10, 16, 3, 1, 1}, {2, 9, 11, 32, 3, 2, 1}, {2, 7, 7, 16, 5, 1, 2}, {40, 8, 8, 16, 3, 1, 1},
      {2, 8, 8, 128, 3, 1, 1}};
  if (!opencl::reads_image_in_place<TestType>(*rt, shapes[0])) {
    WARN("no tensor-core GEMMs on this device: convolutions form im2col");
    CHECK_FALSE(opencl::reads_image_in_place<TestType>(*rt, shapes[1]));
    return;
  }
  CHECK_FALSE(opencl::reads_image_in_place<TestType>(*rt, opencl::conv_geometry{2, 8, 8, 3, 3, 1, 1}));
  using R = opencl::detail::gemm_result_t<TestType>;
  for (const auto& geo : shapes) {
    INFO(geo.batch << "x" << geo.height << "x" << geo.width << "x" << geo.channels << ", kernel " << geo.kernel
                   << ", stride " << geo.stride << ", padding " << geo.pad);
    const std::size_t m = geo.batch * geo.out_height() * geo.out_width(), k = geo.kernel * geo.kernel * geo.channels,
                      n = 32;
    std::mt19937 g(static_cast<unsigned>(m + k));
    opencl::device_buffer<TestType> x, w, dy, cols;
    x.upload(*rt, random_values<TestType>(geo.image_size(), g));
    w.upload(*rt, random_values<TestType>(n * k, g));
    dy.upload(*rt, random_values<TestType>(m * n, g));
    opencl::im2col(*rt, x, geo, cols);
    opencl::device_buffer<R> want, got;
    opencl::matmul_xwt(*rt, cols, w, want, m, n, k);
    opencl::matmul_image_xwt(*rt, x, geo, w, got, n);
    CHECK(got.download(*rt) == want.download(*rt));
    if constexpr (std::is_same_v<TestType, float>) {  // slices left unsummed add up to the same sums
      opencl::device_tensor<fp32> t;
      t.resize(*rt, m, n);
      opencl::matmul_image_xwt(*rt, x, geo, w, t.data, n, {}, {}, &t.pending);
      if (geo.channels == 128) CHECK(t.pending.count > 1);  // k = 1152 is split
      opencl::sum_pending(*rt, t);
      CHECK(t.data.download(*rt) == want.download(*rt));
    }
    if constexpr (!std::is_same_v<TestType, float>) {  // the sums' largest magnitude, reduced as they are written
      opencl::device_buffer<std::uint32_t> maxima;
      maxima.upload(*rt, std::vector<std::uint32_t>{0, 0});
      opencl::matmul_image_xwt(*rt, x, geo, w, got, n, {}, opencl::maximum_target{&maxima, 0});
      std::uint32_t largest = 0;
      for (const std::int32_t v : want.download(*rt))
        largest = std::max(largest, static_cast<std::uint32_t>(std::abs(v)));
      CHECK(maxima.download(*rt) == std::vector<std::uint32_t>{largest, 0});
    }
    opencl::matmul_dytx(*rt, dy, cols, want, m, n, k);  // the 40-image shape's k (pixels) is split
    opencl::matmul_dytx_image(*rt, dy, x, geo, got, n);
    CHECK(got.download(*rt) == want.download(*rt));
    if (geo.stride != 1) {
      CHECK_FALSE(opencl::dx_reads_image_in_place<TestType>(*rt, geo, n));
      continue;
    }
    // dX of a stride-1 layer as a convolution of dY: the products of dcols, summed in another order.
    REQUIRE(opencl::dx_reads_image_in_place<TestType>(*rt, geo, n));
    opencl::device_buffer<R> dcols, dx_want, dx_got;
    opencl::matmul_dyw(*rt, dy, w, dcols, m, n, k);
    opencl::col2im(*rt, dcols, geo, dx_want);
    opencl::matmul_dyw_image(*rt, dy, w, geo, n, dx_got);
    check_same(dx_got.download(*rt), dx_want.download(*rt));
    if constexpr (std::is_same_v<TestType, float>) {
      opencl::device_tensor<fp32> t;
      t.resize(*rt, geo.batch, geo.height * geo.width * geo.channels);
      opencl::matmul_dyw_image(*rt, dy, w, geo, n, t.data, {}, {}, &t.pending);
      opencl::sum_pending(*rt, t);
      CHECK(t.data.download(*rt) == dx_got.download(*rt));
    }
  }
}

TEST_CASE("Tensor-core tilings default by shape, and one the kernel cannot take is refused by name",
          "[opencl][gemm]") {
  using opencl::mma_tiling;
  const auto resolve = [](std::size_t m, std::size_t n, std::size_t k, const mma_tiling& tiling = {}) {
    opencl::gemm_tuning t;
    t.mma = tiling;
    return opencl::detail::resolve_mma_tiling(m, n, k, t);
  };
  const auto small = resolve(100, 100, 100);
  CHECK((small.block == 64 && small.warp_m == 32 && small.warp_n == 32 && small.k_words == 32 && small.stages == 2));
  const auto large = resolve(4096, 8192, 64);
  CHECK((large.block == 128 && large.warp_m == 64 && large.warp_n == 64 && large.k_words == 16 && large.stages == 1));
  const auto chosen = resolve(100, 100, 100, mma_tiling{64, 32, 32, 16, 1});  // given fields stay
  CHECK((chosen.k_words == 16 && chosen.stages == 1));
  CHECK(resolve(128, 1152, 262144).block == 128);  // few tiles, but k split over many work-groups
  CHECK(resolve(128, 1152, 8192).block == 64);
  for (const mma_tiling bad : {mma_tiling{96, 32, 32, 16, 1}, mma_tiling{64, 128, 32, 16, 1},
                               mma_tiling{64, 32, 32, 8, 1}, mma_tiling{64, 32, 32, 16, 3},
                               mma_tiling{128, 32, 32, 32, 2}})  // the last needs 72 KiB of local memory
    CHECK_THROWS_WITH(resolve(100, 100, 100, bad), Catch::Contains("is not one of block 64 or 128"));
}

TEMPLATE_TEST_CASE("OpenCL 64-bit weight gradients sum runs of exact int32 products", "[opencl][gemm]", std::int8_t,
                   std::int16_t) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  constexpr std::size_t b = 1000, n = 13, k = 9;
  std::mt19937 g(17);
  const auto x = random_values<TestType>(b * k, g), dy = random_values<TestType>(b * n, g);
  opencl::device_buffer<TestType> X, DY;
  X.upload(*rt, x);
  DY.upload(*rt, dy);
  std::vector<std::int32_t> cpu(n * k);
  detail::int_matmul_scratch<TestType> scratch;
  detail::matmul_dytx(dy.data(), x.data(), cpu.data(), b, n, k, scratch);
  for (const std::size_t run : {std::size_t{100}, std::size_t{333}, b}) {
    INFO("runs of " << run << " rows");
    opencl::device_buffer<std::int64_t> wide;
    opencl::matmul_dytx_wide(*rt, DY, X, wide, b, n, k, run);
    const auto got = wide.download(*rt);
    REQUIRE(got.size() == cpu.size());
    CHECK(std::equal(got.begin(), got.end(), cpu.begin()));
  }
}

TEST_CASE("OpenCL GEMM rejects impossible tilings and operands too small for the shape", "[opencl][gemm]") {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  opencl::device_buffer<float> a(*rt, 6), b(*rt, 6), c;
  CHECK_THROWS_AS(opencl::matmul_xwt(*rt, a, b, c, 2, 2, 3, {32, 5}), std::invalid_argument);
  CHECK_THROWS_WITH(opencl::matmul_xwt(*rt, a, b, c, 3, 2, 3), Catch::Contains("does not fit"));
  CHECK_NOTHROW(opencl::matmul_xwt(*rt, a, b, c, 2, 2, 3));
}
