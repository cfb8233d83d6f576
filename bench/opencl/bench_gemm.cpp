// The OpenCL GEMM (pbnn/opencl/gemm.hpp) on the default device (PBNN_OPENCL_DEVICE picks another):
// the forward product of Table 1's second convolution, Y[b 1024 x 128] = cols[b 1024 x 1152] W^T,
// at batch 32 and 256, per operand type and tile configuration. Each iteration enqueues one product
// and waits for it, so small shapes include the launch and the wait.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include <pbnn/opencl/gemm.hpp>

namespace {

using namespace pbnn;

opencl::runtime* device() {
  static std::unique_ptr<opencl::runtime> rt = [] {
    try {
      return std::make_unique<opencl::runtime>();
    } catch (const std::exception&) {
      return std::unique_ptr<opencl::runtime>();
    }
  }();
  return rt.get();
}

template <class T>
std::vector<T> random_values(std::size_t n) {
  std::mt19937 g(5);
  std::uniform_int_distribution<int> d(-100, 100);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(d(g));
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

void tilings(benchmark::internal::Benchmark* b) {
  for (const int batch : {32, 256})
    for (const auto& [tile, per_item] : {std::pair{32, 4}, std::pair{64, 4}, std::pair{64, 8}})
      b->Args({batch, tile, per_item});
}

}  // namespace

BENCHMARK_TEMPLATE(BM_opencl_gemm_xwt, float)->Apply(tilings)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_opencl_gemm_xwt, std::int8_t)->Apply(tilings)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_opencl_gemm_xwt, std::int16_t)->Apply(tilings)->Unit(benchmark::kMillisecond)->UseRealTime();
