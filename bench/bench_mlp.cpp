// Dense layer forward/backward per format, and one whole MLP 784-1000-500-10 training step
// (forward, loss, backward, Adam) per format and scheme, at batch 100 on random data.
#include <benchmark/benchmark.h>

#include <memory>

#include <pbnn/pbnn.hpp>

namespace {

using namespace pbnn;

template <class F>
batch_tensor<F> random_batch(std::size_t rows, std::size_t cols, rng& g) {
  std::vector<float> real(rows * cols);
  for (auto& v : real) v = g.uniform();
  batch_tensor<F> t;
  t.resize(rows, cols);
  if constexpr (is_fixed_v<F>)
    t.exp = quantize_dynamic(real.data(), real.size(), t.data.data(), format_traits<F>::operand_max,
                             rounding::nearest_even, stream{});
  else
    std::copy(real.begin(), real.end(), t.data.data());
  return t;
}

// Dense 1000 -> 500 (the MLP's middle layer), progressive weights.
template <class F>
void BM_dense_forward(benchmark::State& state) {
  rng g(1);
  dense_layer<policy<F, progressive<>>, shape<1000>, 500, false> layer;
  layer.init(g);
  const auto x = random_batch<F>(100, 1000, g);
  batch_tensor<F> y;
  context ctx;
  for (auto _ : state) {
    layer.forward(x, y, ctx);
    benchmark::DoNotOptimize(y.data.data());
  }
  state.counters["GMAC/s"] = benchmark::Counter(100.0 * 1000 * 500 * state.iterations(), benchmark::Counter::kIsRate,
                                                benchmark::Counter::kIs1000);
}

template <class F>
void BM_dense_backward(benchmark::State& state) {
  rng g(1);
  dense_layer<policy<F, progressive<>>, shape<1000>, 500, false> layer;
  layer.init(g);
  const auto x = random_batch<F>(100, 1000, g);
  const auto dy = random_batch<F>(100, 500, g);
  batch_tensor<F> y, dx;
  context ctx;
  ctx.gen = &g;
  layer.forward(x, y, ctx);
  for (auto _ : state) {
    layer.backward(x, y, dy, &dx, ctx);
    benchmark::DoNotOptimize(dx.data.data());
  }
  state.counters["GMAC/s"] = benchmark::Counter(2 * 100.0 * 1000 * 500 * state.iterations(),
                                                benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

template <class F, class S, class Act>
using mlp = sequential<policy<F, S>, input<784>, dense<1000>, batch_norm<>, Act, dense<500>, batch_norm<>, Act,
                       dense<10, real, true>>;

// One training step of the MLP at batch 100; items/s = images/s, so 60 000 / (items/s) is the
// training time of one Fashion-MNIST epoch.
template <class Net>
void BM_mlp_step(benchmark::State& state) {
  dataset d;
  d.count = 1000;
  d.features = 784;
  rng g(3);
  d.x.resize(d.count * d.features);
  for (auto& v : d.x) v = g.uniform();
  d.label.resize(d.count);
  for (auto& l : d.label) l = static_cast<std::uint8_t>(g.below(10));
  auto net = std::make_unique<Net>();
  train_options o;
  o.epochs = 30;
  trainer<Net> t(*net, o);
  for (auto _ : state) t.train_batches(d, 10, 5);  // v at epoch 5 of 30
  state.SetItemsProcessed(state.iterations() * 10 * 100);
  state.counters["s/epoch"] = benchmark::Counter(static_cast<double>(state.iterations()) / 60.0,
                                                 benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

}  // namespace

BENCHMARK_TEMPLATE(BM_dense_forward, fp32)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_dense_forward, fixed<16>)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_dense_forward, fixed<8>)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_dense_backward, fp32)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_dense_backward, fixed<16>)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_dense_backward, fixed<8>)->Unit(benchmark::kMicrosecond);

#define PBNN_MLP_BENCH(F, S, A, label) \
  BENCHMARK_TEMPLATE(BM_mlp_step, mlp<F, S, A>)->Name("BM_mlp_step/" label)->Unit(benchmark::kMillisecond)
PBNN_MLP_BENCH(fp32, real, relu, "fp32/float");
PBNN_MLP_BENCH(fp32, sign, relu, "fp32/det");
PBNN_MLP_BENCH(fp32, stochastic, relu, "fp32/stoch");
PBNN_MLP_BENCH(fp32, sign, binary_act, "fp32/bnn");
PBNN_MLP_BENCH(fp32, progressive<>, binary_act, "fp32/prog");
PBNN_MLP_BENCH(fixed<16>, progressive<>, binary_act, "fixed16/prog");
PBNN_MLP_BENCH(fixed<8>, real, relu, "fixed8/float");
PBNN_MLP_BENCH(fixed<8>, sign, relu, "fixed8/det");
PBNN_MLP_BENCH(fixed<8>, stochastic, relu, "fixed8/stoch");
PBNN_MLP_BENCH(fixed<8>, sign, binary_act, "fixed8/bnn");
PBNN_MLP_BENCH(fixed<8>, progressive<>, binary_act, "fixed8/prog");
