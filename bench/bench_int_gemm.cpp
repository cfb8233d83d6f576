// Integer GEMM throughput against Eigen's float GEMM on the training shapes.
// items/s and the GMAC/s counter both count multiply-adds (m * n * k per call).
#include <benchmark/benchmark.h>

// Eigen's AVX-512 kernels trip GCC 12's -Wmaybe-uninitialized false positive (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <Eigen/Core>
#include <cstdint>
#include <random>
#include <vector>

#include "pbnn/detail/int_gemm.hpp"

namespace {

template <class T>
std::vector<T> random_values(std::size_t count, int lim) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> d(-lim, lim);
  std::vector<T> v(count);
  for (auto& x : v) x = static_cast<T>(d(rng));
  return v;
}

void report(benchmark::State& state, std::size_t m, std::size_t n, std::size_t k) {
  const auto macs = static_cast<std::int64_t>(m * n * k);
  state.SetItemsProcessed(macs * static_cast<std::int64_t>(state.iterations()));
  state.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(macs) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

template <class T, bool Portable>
void BM_gemm_int(benchmark::State& state, int lim) {
  const auto m = static_cast<std::size_t>(state.range(0)), n = static_cast<std::size_t>(state.range(1)),
             k = static_cast<std::size_t>(state.range(2));
  const auto A = random_values<T>(m * k, lim), B = random_values<T>(n * k, lim);
  std::vector<std::int32_t> C(m * n);
  for (auto _ : state) {
    if constexpr (Portable)
      pbnn::detail::gemm_nt_portable(m, n, k, A.data(), k, B.data(), k, C.data(), n);
    else
      pbnn::detail::gemm_nt(m, n, k, A.data(), k, B.data(), k, C.data(), n);
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  report(state, m, n, k);
}

void BM_gemm_int8(benchmark::State& state) { BM_gemm_int<std::int8_t, false>(state, 127); }
void BM_gemm_int16(benchmark::State& state) { BM_gemm_int<std::int16_t, false>(state, 2047); }
void BM_gemm_int8_portable(benchmark::State& state) { BM_gemm_int<std::int8_t, true>(state, 127); }
void BM_gemm_int16_portable(benchmark::State& state) { BM_gemm_int<std::int16_t, true>(state, 2047); }

// The float baseline the integer kernels replace: the same A * B^T on row-major maps.
void BM_gemm_f32_eigen(benchmark::State& state) {
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const auto m = state.range(0), n = state.range(1), k = state.range(2);
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> a(static_cast<std::size_t>(m * k)), b(static_cast<std::size_t>(n * k)), c(static_cast<std::size_t>(m * n));
  for (auto& x : a) x = d(rng);
  for (auto& x : b) x = d(rng);
  Eigen::Map<const Mat> A(a.data(), m, k), B(b.data(), n, k);
  Eigen::Map<Mat> C(c.data(), m, n);
  for (auto _ : state) {
    C.noalias() = A * B.transpose();
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  report(state, static_cast<std::size_t>(m), static_cast<std::size_t>(n), static_cast<std::size_t>(k));
}

// (m, n, k): MLP 784-1000-500-10 at batch 100 (forward, backward, weight gradients) and a conv layer.
void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "n", "k"});
  b->Args({100, 1000, 784});
  b->Args({100, 500, 1000});
  b->Args({100, 10, 500});
  b->Args({100, 784, 1000});
  b->Args({1000, 784, 100});
  b->Args({500, 1000, 100});
  b->Args({1024, 128, 1152});
  b->Args({8192, 256, 1152});
  b->UseRealTime();
}

}  // namespace

BENCHMARK(BM_gemm_int8)->Apply(shapes);
BENCHMARK(BM_gemm_int16)->Apply(shapes);
BENCHMARK(BM_gemm_f32_eigen)->Apply(shapes);
BENCHMARK(BM_gemm_int8_portable)->Apply(shapes);
BENCHMARK(BM_gemm_int16_portable)->Apply(shapes);
