// Trains the MLP 784-1000-500-10 (seed 001's network, with batch norm) on Fashion-MNIST or MNIST in
// any scheme and number format, logs each epoch to CSV and exports the trained binary network.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <pbnn/pbnn.hpp>

#include "progress.hpp"

namespace {

struct options {
  std::string scheme = "prog", format = "fixed8", data_dir = "/usr/share/datasets/fashion-mnist";
  std::string csv = "train_mlp.csv", out = "mlp.safetensors", optimizer = "adam";
  pbnn::train_options train;
  std::string act_grad = "ste";
  std::size_t train_limit = 0;
  bool quiet = false, standardize = false;
};

// The hidden layers are binarized per the policy; the output layer stays real (BinaryConnect style)
// and is batch-normalized (better than a bias by 0.2-0.3 points for float and det, bench/RESULTS.md).
template <class Policy, class Activation>
using mlp = pbnn::sequential<Policy, pbnn::input<784>,
                             pbnn::dense<1000>, pbnn::batch_norm<>, Activation,
                             pbnn::dense<500>, pbnn::batch_norm<>, Activation,
                             pbnn::dense<10, pbnn::real>, pbnn::batch_norm<>>;

template <class Net, class Optimizer>
int train(const options& o, Optimizer optimizer, const pbnn::dataset& train_set, const pbnn::dataset& test_set) {
  auto net = std::make_unique<Net>();
  pbnn::trainer<Net, Optimizer> t(*net, o.train, optimizer);
  std::ofstream csv(o.csv);
  if (!csv) throw std::runtime_error(fmt::format("{}: cannot open for writing", o.csv));
  csv << "epoch,v,lr,loss,train_accuracy,test_accuracy,train_seconds,eval_seconds,saturated_fraction,"
         "saturation_events\n";
  fmt::print("network: {}\nformat {}, scheme {}, {} training / {} test images, batch {}, {} epochs, lr {} "
             "(x{} for binarized layers, /10 every {} epochs), seed {}\n",
             Net::describe(), o.format, o.scheme, train_set.count, test_set.count, o.train.batch, o.train.epochs,
             o.train.lr, o.train.binarized_lr_scale, o.train.lr_step, o.train.seed);
  double train_time = 0;
  pbnn::epoch_stats st;
  for (int e = 0; e < o.train.epochs; ++e) {
    examples::progress_bar bar(fmt::format("epoch {:>2}/{}", e + 1, o.train.epochs), o.quiet);
    st = t.run_epoch(train_set, &test_set, e, [&](std::size_t done, std::size_t total, double loss) {
      bar.update(done, total, fmt::format("loss {:.4f}", loss));
    });
    bar.finish(fmt::format("v {:7.2f}  loss {:.4f}  train {:.2f}%  test {:.2f}%  {:.2f}s (+{:.2f}s eval)  "
                           "saturated {:.1f}%  sat.events {}",
                           st.v, st.loss, 100 * st.train_accuracy, 100 * st.test_accuracy, st.train_seconds,
                           st.eval_seconds, 100 * st.saturated_fraction, st.saturation_events));
    train_time += st.train_seconds;
    csv << fmt::format("{},{},{},{:.6f},{:.6f},{:.6f},{:.3f},{:.3f},{:.6f},{}\n", st.epoch + 1, st.v, st.lr, st.loss,
                       st.train_accuracy, st.test_accuracy, st.train_seconds, st.eval_seconds,
                       st.saturated_fraction, st.saturation_events);
    csv.flush();
  }
  pbnn::save_binary_network(*net, o.out,
                            {{"seed", std::to_string(o.train.seed)},
                             {"test_accuracy", fmt::format("{:.4f}", st.test_accuracy)}});
  fmt::print("binary network test accuracy: {:.2f}%  (training time {:.1f}s, {:.2f}s per epoch)\n",
             100 * st.test_accuracy, train_time, train_time / o.train.epochs);
  fmt::print("exported: {}\nlog: {}\n", o.out, o.csv);
  return 0;
}

template <class Policy, class Activation>
int with_optimizer(const options& o, const pbnn::dataset& tr, const pbnn::dataset& te) {
  using Net = mlp<Policy, Activation>;
  if (o.optimizer == "sgd") return train<Net>(o, pbnn::sgd{}, tr, te);  // the trainer sets the learning rate
  return train<Net>(o, pbnn::adam{}, tr, te);
}

template <class Format>
int with_scheme(const options& o, const pbnn::dataset& tr, const pbnn::dataset& te) {
  using namespace pbnn;
  if (o.scheme == "float") return with_optimizer<policy<Format, real>, relu>(o, tr, te);
  if (o.scheme == "det") return with_optimizer<policy<Format, sign>, relu>(o, tr, te);
  if (o.scheme == "stoch") return with_optimizer<policy<Format, stochastic>, relu>(o, tr, te);
  if (o.scheme == "bnn") return with_optimizer<policy<Format, sign>, binary_act>(o, tr, te);
  if (o.act_grad == "exact")
    return with_optimizer<policy<Format, progressive<log_schedule, activation_gradient::exact>>, binary_act>(o, tr, te);
  return with_optimizer<policy<Format, progressive<log_schedule>>, binary_act>(o, tr, te);
}

pbnn::dataset limit(pbnn::dataset d, std::size_t n) {
  if (n == 0 || n >= d.count) return d;
  d.count = n;
  d.x.resize(n * d.features);
  d.label.resize(n);
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  o.train.lr_step = 12;
  CLI::App app{"Train the MLP 784-1000-500-10 with pbnn on Fashion-MNIST (or MNIST) and export the binary network"};
  app.add_option("--scheme", o.scheme,
                 "float: real weights, ReLU | det: sign weights, ReLU | stoch: stochastic weights, ReLU | "
                 "bnn: sign weights and activations | prog: progressive weights and activations")
      ->check(CLI::IsMember({"float", "det", "stoch", "bnn", "prog"}))
      ->capture_default_str();
  app.add_option("--format", o.format, "number format")
      ->check(CLI::IsMember({"fp32", "fixed8", "fixed16"}))
      ->capture_default_str();
  app.add_option("--epochs", o.train.epochs, "training epochs")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--batch", o.train.batch, "minibatch size")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--lr", o.train.lr, "initial learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--lr-step", o.train.lr_step, "divide the learning rate by 10 every this many epochs")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  float bin_lr_scale = 0;
  app.add_option("--bin-lr-scale", bin_lr_scale,
                 "learning-rate multiplier for the parameters of binarized layers (default: 3 for prog, 30 for "
                 "stoch, 1 otherwise; the best of those tried on Fashion-MNIST, bench/RESULTS.md)")
      ->check(CLI::PositiveNumber);
  app.add_option("--optimizer", o.optimizer, "adam or sgd (momentum 0.9)")
      ->check(CLI::IsMember({"adam", "sgd"}))
      ->capture_default_str();
  app.add_option("--act-grad", o.act_grad,
                 "prog: gradient of the progressive activation, exact (v inside |v x| <= 1) or ste (1 inside |x| <= 1)")
      ->check(CLI::IsMember({"exact", "ste"}))
      ->capture_default_str();
  app.add_option("--threshold-v", o.train.threshold_v, "prog: batch norm as a threshold from this v on")
      ->capture_default_str();
  app.add_option("--bn-calibration", o.train.calibration_images,
                 "after each epoch, re-measure batch-norm statistics through the binary network on this many "
                 "training images (0: keep those gathered in training)")
      ->capture_default_str();
  app.add_option("--seed", o.train.seed, "random seed (initialization, shuffling, stochastic rounding)")
      ->capture_default_str();
  app.add_option("--data", o.data_dir, "directory with the IDX files (train-*/t10k-*, raw or .gz)")
      ->capture_default_str();
  app.add_option("--train-limit", o.train_limit, "use only the first N training images (0: all)")
      ->capture_default_str();
  app.add_option("--csv", o.csv, "per-epoch log")->capture_default_str();
  app.add_option("--out", o.out, "exported binary network (safetensors)")->capture_default_str();
  app.add_flag("--standardize", o.standardize, "subtract the training set's mean, divide by its standard deviation");
  app.add_flag("--quiet", o.quiet, "no progress bar");
  CLI11_PARSE(app, argc, argv);
  o.train.binarized_lr_scale = bin_lr_scale > 0 ? bin_lr_scale : o.scheme == "prog" ? 3.0f : o.scheme == "stoch" ? 30.0f : 1.0f;

  try {
    auto train_set = limit(pbnn::to_dataset(pbnn::data::load_mnist_dir(o.data_dir, pbnn::data::split::train)),
                                 o.train_limit);
    auto test_set = pbnn::to_dataset(pbnn::data::load_mnist_dir(o.data_dir, pbnn::data::split::test));
    if (o.standardize) {
      const auto m = pbnn::global_moments(train_set);
      pbnn::standardize(train_set, m);
      pbnn::standardize(test_set, m);
    }
    if (o.format == "fp32") return with_scheme<pbnn::fp32>(o, train_set, test_set);
    if (o.format == "fixed16") return with_scheme<pbnn::fixed<16>>(o, train_set, test_set);
    return with_scheme<pbnn::fixed<8>>(o, train_set, test_set);
  } catch (const std::exception& e) {
    fmt::print(stderr, "train_mlp: {}\n", e.what());
    return 1;
  }
}
