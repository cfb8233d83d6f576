// Checkpoint and resume: a run stopped after an epoch and resumed from its checkpoint by a fresh
// network and trainer ends bit for bit where the uninterrupted run does; writing is atomic; damaged
// or foreign files are refused with the file's name and leave the destination as it was.
#include <catch2/catch.hpp>

#include <bit>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <pbnn/pbnn.hpp>

#include "temp_dir.hpp"

using namespace pbnn;

namespace {

// Ten classes around random +-1 prototypes in 64 dimensions with noise (as in test_training.cpp).
dataset synthetic(std::size_t n, std::uint64_t seed) {
  rng proto_gen(2024);
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
      const float noise = (g.uniform() + g.uniform() + g.uniform() - 1.5f) * 2.0f;
      d.x[i * 64 + j] = 0.5f + 0.25f * (proto[c * 64 + j] + noise);
    }
  }
  return d;
}

const dataset& train_set() {
  static const dataset d = synthetic(1000, 21);
  return d;
}
const dataset& test_set() {
  static const dataset d = synthetic(300, 22);
  return d;
}

template <class F, class S, std::size_t Hidden = 32>
using small_net = sequential<policy<F, S>, input<64>, dense<Hidden>, batch_norm<>, binary_act, dense<32>,
                             batch_norm<>, binary_act, dense<10, real, true>, batch_norm<>>;
using fp32_progressive = small_net<fp32, progressive<>>;
// Stochastic rounding and stochastic binarization both draw from the trainer's generator.
using fixed8_stochastic = small_net<fixed<8>, stochastic>;

train_options options(std::uint64_t seed = 7) {
  train_options o;
  o.epochs = 3;
  o.batch = 50;
  o.seed = seed;
  o.lr = 1e-2f;
  o.calibration_images = 500;
  return o;
}

// Bit patterns of every parameter value and every layer state: equal means identical.
template <class Net>
std::vector<std::vector<std::uint32_t>> snapshot(Net& net) {
  std::vector<std::vector<std::uint32_t>> out;
  net.for_each_parameter([&](auto& p) {
    out.emplace_back();
    for (std::size_t i = 0; i < p.size(); ++i) out.back().push_back(std::bit_cast<std::uint32_t>(p.real(i)));
  });
  net.for_each_layer([&](auto& layer, std::size_t) {
    layer.for_each_state([&](std::string_view, const std::vector<float>& values) {
      out.emplace_back();
      for (const float v : values) out.back().push_back(std::bit_cast<std::uint32_t>(v));
    });
  });
  return out;
}

struct run_result {
  std::vector<std::vector<std::uint32_t>> state;
  double test_accuracy = 0;
};

template <class Net, class Optimizer>
run_result uninterrupted(const train_options& o, Optimizer optimizer) {
  auto net = std::make_unique<Net>();
  trainer<Net, Optimizer> t(*net, o, optimizer);
  epoch_stats st;
  for (int e = 0; e < o.epochs; ++e) st = t.run_epoch(train_set(), &test_set(), e);
  return {snapshot(*net), st.test_accuracy};
}

// Stops after `stop` epochs with a checkpoint; a fresh network and trainer resume from it.
template <class Net, class Optimizer>
run_result resumed(const train_options& o, Optimizer optimizer, const std::filesystem::path& file, int stop) {
  std::vector<std::vector<std::uint32_t>> saved;
  {
    auto net = std::make_unique<Net>();
    trainer<Net, Optimizer> t(*net, o, optimizer);
    for (int e = 0; e < stop; ++e) t.run_epoch(train_set(), &test_set(), e);
    t.save_checkpoint(file, stop);
    saved = snapshot(*net);
  }
  auto net = std::make_unique<Net>();
  trainer<Net, Optimizer> t(*net, o, optimizer);  // initializes the network: the checkpoint overwrites it
  const int start = t.load_checkpoint(file);
  REQUIRE(start == stop);
  REQUIRE(snapshot(*net) == saved);
  epoch_stats st;
  for (int e = start; e < o.epochs; ++e) st = t.run_epoch(train_set(), &test_set(), e);
  return {snapshot(*net), st.test_accuracy};
}

std::vector<char> read_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const std::filesystem::path& file, const std::vector<char>& bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

TEMPLATE_TEST_CASE("a run resumed from a checkpoint ends exactly as an uninterrupted one", "[checkpoint]",
                   fp32_progressive, fixed8_stochastic) {
  const pbnn_test::temp_dir dir("pbnn_test_checkpoint_");  // unique: ctest runs the types in parallel
  const train_options o = options();
  const run_result straight = uninterrupted<TestType>(o, adam{});
  REQUIRE(straight.test_accuracy > 0.5);  // the run learns: the comparison is between real runs
  for (const int stop : {0, 1, 2}) {  // 0: before the optimizer has any state
    INFO("stopped after " << stop << " epochs");
    const run_result split = resumed<TestType>(o, adam{}, dir / "run.ckpt", stop);
    CHECK(split.state == straight.state);
    CHECK(split.test_accuracy == straight.test_accuracy);
  }
}

TEST_CASE("a run with SGD resumes exactly too", "[checkpoint]") {
  using Net = small_net<fixed<8>, progressive<>>;
  const pbnn_test::temp_dir dir("pbnn_test_checkpoint_");
  const train_options o = options();
  const run_result straight = uninterrupted<Net>(o, sgd{});
  const run_result split = resumed<Net>(o, sgd{}, dir / "run.ckpt", 1);
  CHECK(split.state == straight.state);
  CHECK(split.test_accuracy == straight.test_accuracy);
}

TEST_CASE("writing a checkpoint is atomic and replaces the previous one", "[checkpoint]") {
  using Net = fixed8_stochastic;
  const pbnn_test::temp_dir dir("pbnn_test_checkpoint_");
  const auto file = dir / "run.ckpt";
  auto net = std::make_unique<Net>();
  trainer<Net> t(*net, options());
  t.run_epoch(train_set(), nullptr, 0);
  t.save_checkpoint(file, 1);
  CHECK(dir.entries() == std::vector<std::string>{"run.ckpt"});  // no temporary file left next to it
  const auto first = read_bytes(file);
  t.run_epoch(train_set(), nullptr, 1);
  t.save_checkpoint(file, 2);
  CHECK(dir.entries() == std::vector<std::string>{"run.ckpt"});
  CHECK(read_bytes(file) != first);
  auto fresh = std::make_unique<Net>();
  trainer<Net> resumed(*fresh, options());
  CHECK(resumed.load_checkpoint(file) == 2);
  CHECK(snapshot(*fresh) == snapshot(*net));

  // A write that fails (here: the target is a non-empty directory) throws and leaves no temporary file.
  const auto blocked = dir / "blocked";
  std::filesystem::create_directory(blocked);
  write_bytes(blocked / "keep", {'x'});
  CHECK_THROWS_WITH(t.save_checkpoint(blocked, 2), Catch::Contains(blocked.string()));
  CHECK_FALSE(std::filesystem::exists(dir / "blocked.tmp"));
  CHECK(std::filesystem::is_directory(blocked));
}

TEST_CASE("damaged, foreign or mismatched checkpoints are refused and change nothing", "[checkpoint]") {
  using Net = fixed8_stochastic;
  const pbnn_test::temp_dir dir("pbnn_test_checkpoint_");
  const auto good = dir / "good.ckpt";
  {
    auto net = std::make_unique<Net>();
    trainer<Net> t(*net, options());
    t.run_epoch(train_set(), nullptr, 0);
    t.save_checkpoint(good, 1);
  }
  const auto bytes = read_bytes(good);
  REQUIRE(bytes.size() > 100);

  // The destination has trained one epoch with another seed (so it has optimizer state of its own); a
  // control network trains alike and is never offered a checkpoint.
  auto dest = std::make_unique<Net>(), control = std::make_unique<Net>();
  trainer<Net> t(*dest, options(99)), tc(*control, options(99));
  t.run_epoch(train_set(), nullptr, 0);
  tc.run_epoch(train_set(), nullptr, 0);
  const auto before = snapshot(*dest);

  const auto refused = [&](const std::filesystem::path& file, const std::string& reason) {
    INFO(file.filename().string());
    CHECK_THROWS_AS(t.load_checkpoint(file), file_error);
    CHECK_THROWS_WITH(t.load_checkpoint(file), Catch::Contains(file.string()) && Catch::Contains(reason));
    CHECK(snapshot(*dest) == before);
  };

  const auto truncated = dir / "truncated.ckpt";
  write_bytes(truncated, bytes);
  std::filesystem::resize_file(truncated, bytes.size() - 7);
  refused(truncated, "truncated");
  std::filesystem::resize_file(truncated, 12);  // inside the header
  refused(truncated, "truncated");

  const auto flipped = dir / "flipped.ckpt";
  auto damaged = bytes;
  damaged[bytes.size() / 2] = static_cast<char>(damaged[bytes.size() / 2] ^ 0x10);
  write_bytes(flipped, damaged);
  refused(flipped, "checksum");

  const auto version = dir / "version.ckpt";
  damaged = bytes;
  damaged[8] = 2;  // the version field follows the 8-byte magic
  write_bytes(version, damaged);
  refused(version, "version");

  const auto not_checkpoint = dir / "notes.txt";
  write_bytes(not_checkpoint, {'h', 'e', 'l', 'l', 'o', ',', ' ', 'w', 'o', 'r', 'l', 'd', '\n'});
  refused(not_checkpoint, "not a pbnn checkpoint");
  const auto exported = dir / "net.safetensors";
  save_binary_network(*dest, exported);
  refused(exported, "not a pbnn checkpoint");
  refused(dir / "missing.ckpt", "no such file");

  const auto other_layers = dir / "other_layers.ckpt";
  {
    using Other = small_net<fixed<8>, stochastic, 48>;
    auto net = std::make_unique<Other>();
    trainer<Other> o(*net, options());
    o.save_checkpoint(other_layers, 0);
  }
  refused(other_layers, "a checkpoint of another network");
  const auto other_format = dir / "other_format.ckpt";
  {
    using Other = small_net<fp32, stochastic>;  // the same description, another number format
    auto net = std::make_unique<Other>();
    trainer<Other> o(*net, options());
    o.save_checkpoint(other_format, 0);
  }
  refused(other_format, "number format");
  const auto other_optimizer = dir / "other_optimizer.ckpt";
  {
    auto net = std::make_unique<Net>();
    trainer<Net, sgd> o(*net, options());
    o.save_checkpoint(other_optimizer, 0);
  }
  refused(other_optimizer, "optimizer");

  // A valid checkpoint of a run with another seed or batch size: an options mismatch.
  CHECK_THROWS_AS(t.load_checkpoint(good), std::invalid_argument);  // dest runs seed 99, good has 7
  CHECK_THROWS_WITH(t.load_checkpoint(good), Catch::Contains(good.string()) && Catch::Contains("seed"));
  CHECK(snapshot(*dest) == before);
  {
    auto net = std::make_unique<Net>();
    train_options o = options();
    o.batch = 25;
    trainer<Net> other_batch(*net, o);
    CHECK_THROWS_WITH(other_batch.load_checkpoint(good), Catch::Contains("batch size"));
  }

  // Nothing of the destination changed, its optimizer and generator included: it goes on exactly as
  // the control does.
  t.run_epoch(train_set(), nullptr, 1);
  tc.run_epoch(train_set(), nullptr, 1);
  CHECK(snapshot(*dest) == snapshot(*control));

  // The intact file still loads.
  auto fresh = std::make_unique<Net>();
  trainer<Net> tf(*fresh, options());
  CHECK(tf.load_checkpoint(good) == 1);
}
