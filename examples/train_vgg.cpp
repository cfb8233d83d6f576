// Trains the VGG-like CIFAR-10 network of the PBNN paper's Table 1 (or seed 001's VGG) in any scheme
// and number format, on CIFAR-10 in its official binary format, logs each epoch to CSV and exports
// the trained binary network. Defaults are the paper's recipe: 50 epochs, batch 8, Adam 1e-3 divided
// by 10 every 20 epochs, v logarithmic 1 -> 1000, batch norm as a threshold from v >= 500.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <pbnn/pbnn.hpp>

#include "trainer_cli.hpp"
#include "vgg_networks.hpp"

namespace {

// Files named on the command line: "1-4" for data_batch_1..4.bin, "test" for test_batch.bin.
std::vector<std::filesystem::path> batch_files(const std::filesystem::path& dir, const std::string& spec) {
  if (spec == "test") return {dir / "test_batch.bin"};
  std::vector<std::filesystem::path> files;
  const auto dash = spec.find('-');
  const int first = std::stoi(spec.substr(0, dash)), last = dash == std::string::npos ? first : std::stoi(spec.substr(dash + 1));
  if (first < 1 || last > 5 || first > last)
    throw std::invalid_argument(fmt::format("batches '{}': expected N or N-M with 1 <= N <= M <= 5, or 'test'", spec));
  for (int i = first; i <= last; ++i) files.push_back(dir / fmt::format("data_batch_{}.bin", i));
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  examples::run_options o;
  o.csv = "train_vgg.csv";
  o.out = "vgg.safetensors";
  o.train.epochs = 50;
  o.train.batch = 8;
  o.train.lr_step = 20;
  o.test_name = "validation";
  o.network = "table1";
  std::string data_dir = "cifar-10-batches-bin", train_batches = "1-5", val_batches = "test";
  bool augment = true, flip = true;
  int crop_padding = 4;

  CLI::App app{"Train the PBNN paper's Table 1 network (or seed 001's VGG) on CIFAR-10 with pbnn and export the "
               "binary network"};
  examples::add_common_options(app, o);
  app.add_option("--network", o.network, "table1: 128,128,P,128,256,P,256,512,P,1024,1024,10 | seed001: "
                                       "128,128,P,256,256,P,512,512,P,1024,1024,10")
      ->check(CLI::IsMember({"table1", "seed001"}))
      ->capture_default_str();
  app.add_option("--data", data_dir, "directory with CIFAR-10's binary files (data_batch_1..5.bin, test_batch.bin)")
      ->capture_default_str();
  app.add_option("--train-batches", train_batches, "training files: N or N-M for data_batch_N..M.bin")
      ->capture_default_str();
  app.add_option("--val-batches", val_batches, "validation files: 'test' (test_batch.bin), N or N-M")
      ->capture_default_str();
  app.add_flag("--augment,!--no-augment", augment,
               "random crops (--crop-padding) and horizontal flips (--flip) of the training images (default: on)");
  app.add_option("--crop-padding", crop_padding, "largest shift of a random crop, in pixels (0: none)")
      ->check(CLI::Range(0, 16))
      ->capture_default_str();
  app.add_flag("--flip,!--no-flip", flip, "mirror a random half of the training images (default: on)");
  CLI11_PARSE(app, argc, argv);
  examples::apply_defaults(o);

  try {
    examples::check_run_options(o);
    auto train_set = pbnn::to_dataset(pbnn::data::read_cifar10_files(batch_files(data_dir, train_batches)));
    auto val_set = pbnn::to_dataset(pbnn::data::read_cifar10_files(batch_files(data_dir, val_batches)));
    const auto moments = pbnn::per_channel_moments(train_set, 3);  // the training set's, applied to both
    pbnn::standardize(train_set, moments);
    pbnn::standardize(val_set, moments);
    if (augment) o.train.augment = pbnn::crop_flip{32, 32, 3, crop_padding, flip};
    if (o.backend == "opencl") return examples::train_on_opencl(o, train_set, val_set);
    if (o.network == "seed001") return examples::with_format<examples::seed001_vgg, pbnn::cpu>(o, train_set, val_set);
    return examples::with_format<examples::table1, pbnn::cpu>(o, train_set, val_set);
  } catch (const std::exception& e) {
    fmt::print(stderr, "train_vgg: {}\n", e.what());
    return 1;
  }
}
