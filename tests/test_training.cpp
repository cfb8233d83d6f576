// Whole-network behaviour on synthetic data made here: learning in every format, reproducibility
// from a seed, and the export round trip of the trained binary network.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include <pbnn/pbnn.hpp>

#include "temp_dir.hpp"

using namespace pbnn;

namespace {

// Ten classes around random +-1 prototypes in 64 dimensions, with Gaussian-ish noise (sum of uniforms).
dataset synthetic(std::size_t n, std::uint64_t seed) {
  rng proto_gen(2024);  // the same prototypes for train and test
  std::vector<float> proto(10 * 64);
  for (auto& p : proto) p = proto_gen.uniform() < 0.5f ? -1.0f : 1.0f;
  rng g(seed);
  dataset d;
  d.count = n;
  d.features = 64;
  d.x.resize(n * 64);
  d.label.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<std::uint8_t>(g.below(10));
    d.label[i] = c;
    for (std::size_t j = 0; j < 64; ++j) {
      const float noise = (g.uniform() + g.uniform() + g.uniform() - 1.5f) * 2.0f;  // sd 1
      d.x[i * 64 + j] = 0.5f + 0.25f * (proto[c * 64 + j] + noise);
    }
  }
  return d;
}

template <class F, class S, class Act>
using small_net = sequential<policy<F, S>, input<64>, dense<128>, batch_norm<>, Act, dense<64>, batch_norm<>, Act,
                             dense<10, real, true>>;

template <class Net>
double train_and_test(Net& net, int epochs, std::uint64_t seed = 1, float lr = 1e-3f) {
  const dataset tr = synthetic(2000, 11), te = synthetic(500, 12);
  train_options o;
  o.epochs = epochs;
  o.batch = 50;
  o.seed = seed;
  o.lr = lr;
  trainer<Net> t(net, o);
  epoch_stats st;
  for (int e = 0; e < epochs; ++e) st = t.run_epoch(tr, &te, e);
  return st.test_accuracy;
}

template <class Net>
std::vector<std::vector<double>> parameter_values(Net& net) {
  std::vector<std::vector<double>> out;
  net.for_each_parameter([&](auto& p) {
    out.emplace_back();
    for (std::size_t i = 0; i < p.size(); ++i) out.back().push_back(p.real(i));
  });
  return out;
}

}  // namespace

// Chance is 10 %; the noise leaves a Bayes accuracy near 100 %. 80 % after 4 epochs is a clear pass
// for every network below and far out of reach of one that does not learn.
TEMPLATE_TEST_CASE("every format learns with progressive binarization", "[training]", fp32, fixed<16>, fixed<8>) {
  auto net = std::make_unique<small_net<TestType, progressive<>, binary_act>>();
  CHECK(train_and_test(*net, 4) > 0.8);
}

// Stochastic weights move from their initial P(+1) ~ 1/2 only as P grows: a larger learning rate
// and more epochs let this short run get there.
TEMPLATE_TEST_CASE("every scheme learns in fixed<8>", "[training]", real, sign, stochastic) {
  auto net = std::make_unique<small_net<fixed<8>, TestType, relu>>();
  constexpr bool stoch = std::is_same_v<TestType, stochastic>;
  CHECK(train_and_test(*net, stoch ? 8 : 4, 1, stoch ? 1e-2f : 1e-3f) > 0.8);
}

TEST_CASE("binary weights and activations learn in fp32", "[training]") {
  auto net = std::make_unique<small_net<fp32, sign, binary_act>>();
  CHECK(train_and_test(*net, 4) > 0.8);
}

TEMPLATE_TEST_CASE("a run is reproducible from its seed", "[training][seed]", fp32, fixed<8>) {
  using Net = small_net<TestType, stochastic, binary_act>;  // shuffling, init and stochastic draws all seeded
  auto a = std::make_unique<Net>(), b = std::make_unique<Net>(), c = std::make_unique<Net>();
  train_and_test(*a, 2, 5);
  train_and_test(*b, 2, 5);
  train_and_test(*c, 2, 6);
  CHECK(parameter_values(*a) == parameter_values(*b));
  CHECK(parameter_values(*a) != parameter_values(*c));
}

TEMPLATE_TEST_CASE("the exported binary network reloads and classifies exactly as trained", "[export]", fp32,
                   fixed<8>) {
  using Net = small_net<TestType, progressive<>, binary_act>;
  auto net = std::make_unique<Net>();
  train_and_test(*net, 2);
  const pbnn_test::temp_dir dir("pbnn_test_export_");  // unique: ctest runs the formats in parallel
  const auto file = dir / "net.safetensors";
  save_binary_network(*net, file);

  const io::safetensors st = io::read_safetensors(file);
  CHECK(st.metadata.at("network") == Net::describe());
  CHECK(st.metadata.at("scheme") == "progressive");
  CHECK(st.at("0.dense.weight_sign").type == io::dtype::I8);
  for (const auto s : st.at("0.dense.weight_sign").to_vector<std::int8_t>()) REQUIRE((s == 1 || s == -1));
  CHECK(st.at("1.batch_norm.threshold").type == io::dtype::F32);
  CHECK(st.at("6.dense.weight").type == io::dtype::F32);

  auto reloaded = std::make_unique<Net>();
  load_binary_network(*reloaded, file);
  const dataset te = synthetic(500, 12);
  context ctx;
  ctx.mode = mode::eval;
  batch_tensor<TestType> x;
  std::vector<std::uint8_t> labels;
  std::vector<float> scratch;
  std::vector<std::size_t> idx(te.count);
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  gather_batch(te, idx.data(), te.count, x, labels, scratch);
  const auto a = net->forward(x, ctx);
  const auto b = reloaded->forward(x, ctx);
  for (std::size_t r = 0; r < te.count; ++r) REQUIRE(predicted_class(a, r) == predicted_class(b, r));
  CHECK(a.exp == b.exp);
  CHECK(std::equal(a.data.begin(), a.data.end(), b.data.begin()));

  // Another network, or a damaged file, is refused with the file's name in the message.
  auto other = std::make_unique<small_net<TestType, sign, binary_act>>();
  CHECK_THROWS_WITH(load_binary_network(*other, file), Catch::Contains(file.string()) && Catch::Contains("expected"));
  std::filesystem::resize_file(file, std::filesystem::file_size(file) - 100);
  CHECK_THROWS_WITH(load_binary_network(*reloaded, file), Catch::Contains(file.string()));
}

TEST_CASE("the learning rate of binarized parameters can be scaled on its own", "[training]") {
  using Net = small_net<fp32, sign, relu>;
  auto a = std::make_unique<Net>(), b = std::make_unique<Net>();
  const dataset tr = synthetic(200, 11);
  train_options o;
  o.epochs = 1;
  o.batch = 200;  // one step: Adam's first update moves every element by lr (times the scale)
  trainer<Net> ta(*a, o);
  o.binarized_lr_scale = 3.0f;
  trainer<Net> tb(*b, o);
  const auto before = parameter_values(*a);
  ta.run_epoch(tr, nullptr, 0);
  tb.run_epoch(tr, nullptr, 0);
  const auto pa = parameter_values(*a), pb = parameter_values(*b);
  const double step_a = std::fabs(pa[0][0] - before[0][0]), step_b = std::fabs(pb[0][0] - before[0][0]);
  CHECK(step_a == Approx(1e-3).epsilon(0.01));
  CHECK(step_b == Approx(3e-3).epsilon(0.01));
  const auto last = pa.size() - 2;  // the real output layer's weight: not scaled
  CHECK(std::fabs(pb[last][0] - before[last][0]) == Approx(1e-3).epsilon(0.01));
}

TEST_CASE("standardization uses the training set's moments", "[dataset]") {
  dataset tr = synthetic(300, 1), te = synthetic(100, 2);
  const moments m = global_moments(tr);
  CHECK(m.mean == Approx(0.5).margin(0.02));
  standardize(tr, m);
  standardize(te, m);
  const moments after = global_moments(tr);
  CHECK(after.mean == Approx(0.0).margin(1e-4));
  CHECK(after.stddev == Approx(1.0).epsilon(1e-4));
  CHECK(global_moments(te).stddev == Approx(1.0).epsilon(0.1));  // the same transform, other data
}

// Calibration forwards the binary network batch by batch, every batch norm normalizing with the
// batch's own statistics; each one's running statistics become the mean over batches of its input's
// batch mean and unbiased variance.
TEST_CASE("batch-norm calibration averages the binary network's batch statistics", "[training][calibration]") {
  using Net = small_net<fp32, stochastic, binary_act>;
  auto net = std::make_unique<Net>();
  rng g(3);
  net->init(g);
  const dataset d = synthetic(200, 13);
  calibrate_batch_norm(*net, d, 200, 100);
  const auto mean1 = net->layer<1>().running_mean(), var1 = net->layer<1>().running_var();
  const auto mean4 = net->layer<4>().running_mean(), var4 = net->layer<4>().running_var();

  // The inputs both batch norms saw: calibration passes never read the running statistics.
  context ctx;
  ctx.mode = mode::calibrate;
  batch_tensor<fp32> x;
  std::vector<std::uint8_t> labels;
  std::vector<float> scratch;
  std::vector<std::size_t> idx(d.count);
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  std::vector<batch_tensor<fp32>> in1, in4;
  for (std::size_t b0 : {std::size_t{0}, std::size_t{100}}) {
    gather_batch(d, idx.data() + b0, 100, x, labels, scratch);
    net->forward(x, ctx);
    in1.push_back(net->output(0));
    in4.push_back(net->output(3));
  }

  const auto check = [](const std::vector<float>& mean, const std::vector<float>& var,
                        const std::vector<batch_tensor<fp32>>& in) {
    const std::size_t C = in[0].cols();
    REQUIRE(mean.size() == C);
    for (std::size_t c = 0; c < C; ++c) {
      double mean_sum = 0, var_sum = 0;
      for (const auto& t : in) {
        double s = 0, s2 = 0;
        for (std::size_t r = 0; r < 100; ++r) s += t.value(r * C + c);
        const double m = s / 100;
        for (std::size_t r = 0; r < 100; ++r) s2 += (t.value(r * C + c) - m) * (t.value(r * C + c) - m);
        mean_sum += m;
        var_sum += s2 / 99;
      }
      INFO("channel " << c);
      CHECK(mean[c] == Approx(mean_sum / 2).margin(1e-4));
      CHECK(var[c] == Approx(var_sum / 2).epsilon(1e-4));
    }
  };
  check(mean1, var1, in1);
  check(mean4, var4, in4);
  CHECK_FALSE(std::equal(in1[0].data.begin(), in1[0].data.end(), in1[1].data.begin()));  // two batches differ
}
