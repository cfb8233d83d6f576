// Trains the MLP 784-1000-500-10 (seed 001's network, with batch norm) on Fashion-MNIST or MNIST in
// any scheme and number format, logs each epoch to CSV and exports the trained binary network.
// With --checkpoint it saves the run after every epoch, and --resume continues it from there.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <pbnn/pbnn.hpp>

#include "mlp_network.hpp"
#include "trainer_cli.hpp"

namespace {

pbnn::dataset limit(pbnn::dataset d, std::size_t n) {
  if (n == 0 || n >= d.count) return d;
  d.count = n;
  d.x.resize(n * d.features);
  d.label.resize(n);
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  examples::run_options o;
  o.csv = "train_mlp.csv";
  o.out = "mlp.safetensors";
  o.train.lr_step = 12;
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::size_t train_limit = 0;
  bool standardize = false;
  CLI::App app{"Train the MLP 784-1000-500-10 with pbnn on Fashion-MNIST (or MNIST) and export the binary network"};
  examples::add_common_options(app, o);
  app.add_option("--data", data_dir, "directory with the IDX files (train-*/t10k-*, raw or .gz)")
      ->capture_default_str();
  app.add_option("--train-limit", train_limit, "use only the first N training images (0: all)")
      ->capture_default_str();
  app.add_flag("--standardize", standardize, "subtract the training set's mean, divide by its standard deviation");
  CLI11_PARSE(app, argc, argv);
  examples::apply_defaults(o);

  try {
    examples::check_run_options(o);
    auto train_set = limit(pbnn::to_dataset(pbnn::data::load_mnist_dir(data_dir, pbnn::data::split::train)),
                           train_limit);
    auto test_set = pbnn::to_dataset(pbnn::data::load_mnist_dir(data_dir, pbnn::data::split::test));
    if (standardize) {
      const auto m = pbnn::global_moments(train_set);
      pbnn::standardize(train_set, m);
      pbnn::standardize(test_set, m);
    }
    if (o.backend == "opencl") return examples::train_on_opencl(o, train_set, test_set);
    return examples::with_format<examples::mlp, pbnn::cpu>(o, train_set, test_set);
  } catch (const std::exception& e) {
    fmt::print(stderr, "train_mlp: {}\n", e.what());
    return 1;
  }
}
