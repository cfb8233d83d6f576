// The Table 1 network (examples/vgg_networks.hpp): each convolution's forward and backward pass at
// batch 32 per format, the whole training step (forward, loss, backward, Adam) at batch 8 and 32 per
// format and scheme, and an Eigen SGEMM of the size of the largest convolution's GEMM for scale.
// GFLOP/s counts 2 flops per multiply-add of the layers' products (3x the forward's for a step).
#include <benchmark/benchmark.h>

#include <memory>

#include <Eigen/Core>
#include <pbnn/pbnn.hpp>

#include "vgg_networks.hpp"

namespace {

using namespace pbnn;

template <class F>
batch_tensor<F> random_batch(std::size_t rows, std::size_t cols, rng& g) {
  std::vector<float> real(rows * cols);
  for (auto& v : real) v = g.uniform(-1, 1);
  batch_tensor<F> t;
  t.resize(rows, cols);
  if constexpr (is_fixed_v<F>)
    t.exp = quantize_dynamic(real.data(), real.size(), t.data.data(), format_traits<F>::operand_max,
                             rounding::nearest_even, stream{});
  else
    std::copy(real.begin(), real.end(), t.data.data());
  return t;
}

benchmark::Counter gflops(double flops_per_iteration, benchmark::State& state) {
  return benchmark::Counter(flops_per_iteration * static_cast<double>(state.iterations()) * 1e-9,
                            benchmark::Counter::kIsRate);
}

constexpr std::size_t layer_batch = 32;

// One 3x3 convolution of Table 1 with progressive weights.
template <class F, std::size_t C, std::size_t H, std::size_t Cout>
void BM_conv_forward(benchmark::State& state) {
  rng g(1);
  auto layer = std::make_unique<conv2d_layer<policy<F, progressive<>>, shape<C, H, H>, Cout, 3, 1, 1>>();
  layer->init(g);
  const auto x = random_batch<F>(layer_batch, H * H * C, g);
  batch_tensor<F> y;
  context ctx;
  for (auto _ : state) {
    layer->forward(x, y, ctx);
    benchmark::DoNotOptimize(y.data.data());
  }
  state.counters["GFLOP/s"] = gflops(2.0 * layer_batch * H * H * Cout * 9 * C, state);
}

template <class F, std::size_t C, std::size_t H, std::size_t Cout>
void BM_conv_backward(benchmark::State& state) {
  rng g(1);
  auto layer = std::make_unique<conv2d_layer<policy<F, progressive<>>, shape<C, H, H>, Cout, 3, 1, 1>>();
  layer->init(g);
  const auto x = random_batch<F>(layer_batch, H * H * C, g);
  const auto dy = random_batch<F>(layer_batch, H * H * Cout, g);
  batch_tensor<F> y, dx;
  context ctx;
  ctx.gen = &g;
  layer->forward(x, y, ctx);
  for (auto _ : state) {
    layer->backward(x, y, dy, C > 3 ? &dx : nullptr, ctx);  // the first layer needs no input gradient
    benchmark::DoNotOptimize(dx.data.data());
  }
  state.counters["GFLOP/s"] = gflops((C > 3 ? 4.0 : 2.0) * layer_batch * H * H * Cout * 9 * C, state);
}

// One training step of the Table 1 network at batch state.range(0); items/s = images/s.
template <class Net>
void BM_vgg_step(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  dataset d;
  d.count = 2 * batch;
  d.features = 32 * 32 * 3;
  rng g(3);
  d.x.resize(d.count * d.features);
  for (auto& v : d.x) v = g.uniform(-1, 1);
  d.label.resize(d.count);
  for (auto& l : d.label) l = static_cast<std::uint8_t>(g.below(10));
  auto net = std::make_unique<Net>();
  train_options o;
  o.epochs = 50;
  o.batch = batch;
  trainer<Net> t(*net, o);
  t.train_batches(d, 1, 10);  // untimed: the first step allocates and first-touches every buffer
  for (auto _ : state) t.train_batches(d, 1, 10);  // v at epoch 10 of 50
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
  state.counters["GFLOP/s"] = gflops(3 * 2 * examples::table1_forward_macs * static_cast<double>(batch), state);
}

// Eigen SGEMM of the second convolution's forward GEMM at batch 32: [32768 x 1152] x [1152 x 128].
void BM_eigen_sgemm(benchmark::State& state) {
  const Eigen::Index m = 32768, k = 1152, n = 128;
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> a =
      Eigen::MatrixXf::Random(m, k), b = Eigen::MatrixXf::Random(n, k), c(m, n);
  for (auto _ : state) {
    c.noalias() = a * b.transpose();
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] = gflops(2.0 * static_cast<double>(m * k * n), state);
}

}  // namespace

BENCHMARK(BM_eigen_sgemm)->Unit(benchmark::kMillisecond)->UseRealTime();

#define PBNN_CONV_BENCH(F, C, H, Cout)                                                              \
  BENCHMARK_TEMPLATE(BM_conv_forward, F, C, H, Cout)->Unit(benchmark::kMillisecond)->UseRealTime(); \
  BENCHMARK_TEMPLATE(BM_conv_backward, F, C, H, Cout)->Unit(benchmark::kMillisecond)->UseRealTime()
#define PBNN_TABLE1_CONVS(F)          \
  PBNN_CONV_BENCH(F, 3, 32, 128);     \
  PBNN_CONV_BENCH(F, 128, 32, 128);   \
  PBNN_CONV_BENCH(F, 128, 16, 128);   \
  PBNN_CONV_BENCH(F, 128, 16, 256);   \
  PBNN_CONV_BENCH(F, 256, 8, 256);    \
  PBNN_CONV_BENCH(F, 256, 8, 512)
PBNN_TABLE1_CONVS(fp32);
PBNN_TABLE1_CONVS(fixed<16>);
PBNN_TABLE1_CONVS(fixed<8>);

#define PBNN_VGG_BENCH(F, S, A, label)                                                         \
  BENCHMARK_TEMPLATE(BM_vgg_step, examples::table1<policy<F, S>, A>)                          \
      ->Name("BM_vgg_step/" label)->Arg(8)->Arg(32)->Unit(benchmark::kMillisecond)->UseRealTime()
PBNN_VGG_BENCH(fp32, real, relu, "fp32/float");
PBNN_VGG_BENCH(fp32, sign, relu, "fp32/det");
PBNN_VGG_BENCH(fp32, stochastic, relu, "fp32/stoch");
PBNN_VGG_BENCH(fp32, sign, binary_act, "fp32/bnn");
PBNN_VGG_BENCH(fp32, progressive<>, binary_act, "fp32/prog");
PBNN_VGG_BENCH(fixed<16>, progressive<>, binary_act, "fixed16/prog");
PBNN_VGG_BENCH(fixed<8>, real, relu, "fixed8/float");
PBNN_VGG_BENCH(fixed<8>, sign, binary_act, "fixed8/bnn");
PBNN_VGG_BENCH(fixed<8>, progressive<>, binary_act, "fixed8/prog");
