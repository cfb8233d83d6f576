// The OpenCL GEMM (pbnn/opencl/gemm.hpp) on the default device (PBNN_OPENCL_DEVICE picks another):
// the forward product of Table 1's second convolution, Y[b 1024 x 128] = cols[b 1024 x 1152] W^T,
// at batch 32 and 256, per operand type and tile configuration. Each iteration enqueues one product
// and waits for it, so small shapes include the launch and the wait. BM_opencl_conv_products: the
// layer's three products on tensor cores and on the portable kernel.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <iterator>
#include <map>
#include <random>
#include <vector>

#include <fmt/format.h>

#include <pbnn/opencl/gemm.hpp>

#include "bench_device.hpp"

namespace {

using namespace pbnn;

using pbnn_bench::device;

// Kept per size: the batch-256 operands take seconds to draw, and every benchmark uses them.
template <class T>
const std::vector<T>& random_values(std::size_t n) {
  static std::map<std::size_t, std::vector<T>> drawn;
  auto& v = drawn[n];
  if (v.size() != n) {
    std::mt19937 g(5);
    std::uniform_int_distribution<int> d(-100, 100);
    v.resize(n);
    for (auto& x : v) x = static_cast<T>(d(g));
  }
  return v;
}

// range(0): batch; range(1), range(2): tile and outputs per work-item.
template <class T>
void BM_opencl_gemm_xwt(benchmark::State& state) {
  auto* rt = device();
  if (!rt) {
    state.SkipWithError("no OpenCL device");
    return;
  }
  const std::size_t m = static_cast<std::size_t>(state.range(0)) * 1024, n = 128, k = 1152;
  const opencl::gemm_tuning t{static_cast<int>(state.range(1)), static_cast<int>(state.range(2))};
  opencl::device_buffer<T> x, w;
  x.upload(*rt, random_values<T>(m * k));
  w.upload(*rt, random_values<T>(n * k));
  opencl::device_buffer<opencl::detail::gemm_result_t<T>> y;
  opencl::matmul_xwt(*rt, x, w, y, m, n, k, t);  // builds the program
  rt->finish();
  for (auto _ : state) {
    opencl::matmul_xwt(*rt, x, w, y, m, n, k, t);
    rt->finish();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(m * n * k) * static_cast<double>(state.iterations()) * 1e-9,
                                                 benchmark::Counter::kIsRate);
  state.SetLabel(rt->device().device_name);
}

// Times one of a convolution's three products with m = batch x pixels, n output channels and k inputs
// per pixel (product 0: Y = cols W^T, 1: dcols = dY W, 2: dW = dY^T cols), each iteration waiting for it.
template <class T>
void time_conv_product(benchmark::State& state, opencl::runtime& rt, std::size_t m, std::size_t n, std::size_t k,
                       std::int64_t product_index, const opencl::gemm_tuning& t) {
  opencl::device_buffer<T> cols, w, dy;
  cols.upload(rt, random_values<T>(m * k));
  w.upload(rt, random_values<T>(n * k));
  dy.upload(rt, random_values<T>(m * n));
  opencl::device_buffer<opencl::detail::gemm_result_t<T>> out;
  const auto product = [&] {
    switch (product_index) {
      case 0: return opencl::matmul_xwt(rt, cols, w, out, m, n, k, t);
      case 1: return opencl::matmul_dyw(rt, dy, w, out, m, n, k, t);
      default: return opencl::matmul_dytx(rt, dy, cols, out, m, n, k, t);
    }
  };
  product();  // builds the programs
  rt.finish();
  for (auto _ : state) {
    product();
    rt.finish();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(m * n * k) * static_cast<double>(state.iterations()) * 1e-9,
                                                 benchmark::Counter::kIsRate);
}

// The three products of Table 1's second convolution at batch range(0), with the default tuning:
// range(1) 0: Y = cols W^T, 1: dcols = dY W, 2: dW = dY^T cols; range(2) 1: int8 and float on tensor
// cores where the device has them (gemm.hpp), 0: the portable kernel.
template <class T>
void BM_opencl_conv_products(benchmark::State& state) {
  auto* rt = device();
  if (!rt) {
    state.SkipWithError("no OpenCL device");
    return;
  }
  const std::size_t m = static_cast<std::size_t>(state.range(0)) * 1024, n = 128, k = 1152;
  opencl::gemm_tuning t;
  t.tensor_cores = state.range(2) != 0;
  time_conv_product<T>(state, *rt, m, n, k, state.range(1), t);
  state.SetLabel(fmt::format("{}{}", rt->device().device_name,
                             t.tensor_cores && opencl::tensor_core_gemms(*rt) && sizeof(T) != 2 ? ", tensor cores" : ""));
}

// Tensor-core tilings to choose gemm_tuning::mma's defaults from: block, warp_m, warp_n, k_words, stages.
constexpr opencl::mma_tiling mma_tilings[] = {
    {0, 0, 0, 0, 0},       {128, 64, 32, 16, 1}, {128, 32, 64, 16, 1}, {128, 64, 64, 16, 1},
    {128, 64, 32, 32, 1},  {128, 64, 32, 16, 2}, {128, 64, 64, 16, 2}, {128, 32, 32, 16, 2},
    {64, 32, 32, 32, 2},   {64, 64, 32, 32, 2},  {128, 64, 64, 32, 1}, {64, 32, 32, 16, 1},
    {128, 32, 32, 16, 1},
};

// The products of Table 1's convolution range(0) (2: 32 x 32 pixels, 128 -> 128 channels; 6: 8 x 8,
// 256 -> 512) at batch range(3) on tensor cores: range(1) the product as in BM_opencl_conv_products,
// range(2) an index into mma_tilings.
template <class T>
void BM_opencl_mma_tilings(benchmark::State& state) {
  auto* rt = device();
  if (!rt || !opencl::tensor_core_gemms(*rt)) {
    state.SkipWithError("no OpenCL device with tensor-core GEMMs");
    return;
  }
  const bool second = state.range(0) == 2;
  const auto batch = static_cast<std::size_t>(state.range(3));
  const std::size_t m = batch * (second ? 1024 : 64), n = second ? 128 : 512, k = second ? 1152 : 2304;
  opencl::gemm_tuning t;
  t.mma = mma_tilings[state.range(2)];
  time_conv_product<T>(state, *rt, m, n, k, state.range(1), t);
  const auto& c = mma_tilings[state.range(2)];
  state.SetLabel(fmt::format("block {} warp {}x{} k_words {} stages {}", c.block, c.warp_m, c.warp_n, c.k_words, c.stages));
}

void tiling_sweep(benchmark::internal::Benchmark* b) {
  for (const int batch : {256, 8})
    for (const int conv : {2, 6})
      for (const int product : {0, 1, 2})
        for (int i = 0; i < static_cast<int>(std::size(mma_tilings)); ++i) b->Args({conv, product, i, batch});
}

void products(benchmark::internal::Benchmark* b) {
  for (const int batch : {8, 256})
    for (const int product : {0, 1, 2})
      for (const int tensor_cores : {1, 0}) b->Args({batch, product, tensor_cores});
}

void tilings(benchmark::internal::Benchmark* b) {
  for (const int batch : {32, 256})
    for (const auto& [tile, per_item] : {std::pair{32, 4}, std::pair{64, 4}, std::pair{64, 8}})
      b->Args({batch, tile, per_item});
}

}  // namespace

BENCHMARK_TEMPLATE(BM_opencl_gemm_xwt, float)->Apply(tilings)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_opencl_gemm_xwt, std::int8_t)->Apply(tilings)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_opencl_gemm_xwt, std::int16_t)->Apply(tilings)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_opencl_conv_products, float)->Apply(products)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_opencl_conv_products, std::int8_t)->Apply(products)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_opencl_mma_tilings, float)->Apply(tiling_sweep)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_opencl_mma_tilings, std::int8_t)->Apply(tiling_sweep)->Unit(benchmark::kMillisecond)->UseRealTime();
