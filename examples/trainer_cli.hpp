#pragma once
// What train_mlp and train_vgg share: the options common to both, the choice of format, scheme and
// optimizer from the command line, and the epoch loop (progress display, CSV log, checkpoints,
// export of the trained binary network).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <pbnn/pbnn.hpp>

#include "progress.hpp"

namespace examples {

struct run_options {
  std::string scheme = "prog", format = "fixed8", optimizer = "adam", act_grad = "ste";
  std::string backend = "cpu", device;  // device: an OpenCL device spec (pbnn/opencl/device.hpp)
  std::string network;                  // for trainers of more than one network
  std::string csv, out;
  pbnn::train_options train;
  float bin_lr_scale = 0;  // 0: the scheme's default (see add_common_options)
  bool quiet = false;
  std::string checkpoint;  // empty: no checkpoints
  bool resume = false;
  int stop_after = 0;  // 0: run to --epochs
  std::string test_name = "test";  // what the held-out set is called in the output
};

// The options every trainer takes; defaults are those already in o.
inline void add_common_options(CLI::App& app, run_options& o) {
  app.add_option("--scheme", o.scheme,
                 "float: real weights, ReLU | det: sign weights, ReLU | stoch: stochastic weights, ReLU | "
                 "bnn: sign weights and activations | prog: progressive weights and activations")
      ->check(CLI::IsMember({"float", "det", "stoch", "bnn", "prog"}))
      ->capture_default_str();
  app.add_option("--format", o.format, "number format")
      ->check(CLI::IsMember({"fp32", "fixed8", "fixed16"}))
      ->capture_default_str();
  app.add_option("--backend", o.backend, "cpu, or opencl (the device of --device)")
      ->check(CLI::IsMember({"cpu", "opencl"}))
      ->capture_default_str();
  app.add_option("--device", o.device,
                 "opencl: the device, as P:D (platform and device index), gpu, cpu or part of its name; default: "
                 "$PBNN_OPENCL_DEVICE, else the first GPU, else the first device");
  app.add_option("--epochs", o.train.epochs, "training epochs")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--batch", o.train.batch, "minibatch size")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--lr", o.train.lr, "initial learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--lr-step", o.train.lr_step, "divide the learning rate by 10 every this many epochs")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--bin-lr-scale", o.bin_lr_scale,
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
  app.add_option("--seed", o.train.seed, "random seed (initialization, shuffling, augmentation, stochastic rounding)")
      ->capture_default_str();
  app.add_option("--csv", o.csv, "per-epoch log")->capture_default_str();
  app.add_option("--out", o.out, "exported binary network (safetensors)")->capture_default_str();
  auto* checkpoint = app.add_option("--checkpoint", o.checkpoint,
                                    "save the run to this file after every epoch (atomically: the file always holds "
                                    "a complete checkpoint); default: none");
  app.add_flag("--resume", o.resume,
               "continue the run saved at --checkpoint, appending to --csv; --seed and --batch must be the "
               "run's, and the other options should be, for the result of an uninterrupted run")
      ->needs(checkpoint);
  app.add_option("--stop-after", o.stop_after,
                 "stop after this epoch (counted from 1, of --epochs) and export; with --checkpoint, --resume "
                 "continues later: a long run split into parts ends as it would in one")
      ->check(CLI::PositiveNumber);
  app.add_flag("--quiet", o.quiet, "no progress bar");
}

// The scheme's default learning-rate multiplier where --bin-lr-scale was not given.
inline void apply_defaults(run_options& o) {
  o.train.binarized_lr_scale =
      o.bin_lr_scale > 0 ? o.bin_lr_scale : o.scheme == "prog" ? 3.0f : o.scheme == "stoch" ? 30.0f : 1.0f;
}

template <class Net, class Optimizer>
int run(const run_options& o, Optimizer optimizer, const pbnn::dataset& train_set, const pbnn::dataset& test_set) {
  auto net = std::make_unique<Net>();
  pbnn::trainer<Net, Optimizer> t(*net, o.train, optimizer);
  const int start = o.resume ? t.load_checkpoint(o.checkpoint) : 0;
  const int end = o.stop_after > 0 ? std::min(o.stop_after, o.train.epochs) : o.train.epochs;
  // A resumed run appends to the log of the epochs before it.
  const bool append = o.resume && std::filesystem::exists(o.csv) && std::filesystem::file_size(o.csv) > 0;
  std::ofstream csv(o.csv, append ? std::ios::app : std::ios::trunc);
  if (!csv) throw std::runtime_error(fmt::format("{}: cannot open for writing", o.csv));
  if (!append)
    csv << fmt::format("epoch,v,lr,loss,train_accuracy,{}_accuracy,train_seconds,eval_seconds,saturated_fraction,"
                       "saturation_events\n", o.test_name);
  if constexpr (requires { net->runtime(); }) fmt::print("OpenCL device: {}\n", net->runtime().device().label());
  fmt::print("network: {}\nformat {}, scheme {}, {} training / {} {} images, batch {}, {} epochs, lr {} "
             "(x{} for binarized layers, /10 every {} epochs), seed {}\n",
             Net::describe(), o.format, o.scheme, train_set.count, test_set.count, o.test_name, o.train.batch,
             o.train.epochs, o.train.lr, o.train.binarized_lr_scale, o.train.lr_step, o.train.seed);
  if (o.resume) fmt::print("resumed from {} after epoch {}\n", o.checkpoint, start);
  double train_time = 0;
  pbnn::epoch_stats st;
  for (int e = start; e < end; ++e) {
    progress_bar bar(fmt::format("epoch {:>2}/{}", e + 1, o.train.epochs), o.quiet);
    st = t.run_epoch(train_set, &test_set, e, [&](std::size_t done, std::size_t total, double loss) {
      bar.update(done, total, fmt::format("loss {:.4f}", loss));
    });
    bar.finish(fmt::format("v {:7.2f}  loss {:.4f}  train {:.2f}%  {} {:.2f}%  {:.2f}s (+{:.2f}s eval)  "
                           "saturated {:.1f}%  sat.events {}",
                           st.v, st.loss, 100 * st.train_accuracy, o.test_name, 100 * st.test_accuracy,
                           st.train_seconds, st.eval_seconds, 100 * st.saturated_fraction, st.saturation_events));
    train_time += st.train_seconds;
    csv << fmt::format("{},{},{},{:.6f},{:.6f},{:.6f},{:.3f},{:.3f},{:.6f},{}\n", st.epoch + 1, st.v, st.lr, st.loss,
                       st.train_accuracy, st.test_accuracy, st.train_seconds, st.eval_seconds,
                       st.saturated_fraction, st.saturation_events);
    csv.flush();
    if (!o.checkpoint.empty()) t.save_checkpoint(o.checkpoint, e + 1);
  }
  const int ran = std::max(0, end - start);
  if (ran == 0) st.test_accuracy = pbnn::evaluate(*net, test_set);  // a finished run, resumed
  pbnn::save_binary_network(*net, o.out,
                            {{"seed", std::to_string(o.train.seed)},
                             {o.test_name + "_accuracy", fmt::format("{:.4f}", st.test_accuracy)}});
  if (end < o.train.epochs)
    fmt::print("stopped after epoch {} of {}: continue with --resume --checkpoint {}\n", end, o.train.epochs,
               o.checkpoint.empty() ? std::string("PATH (none was written: no --checkpoint)") : o.checkpoint);
  fmt::print("binary network {} accuracy: {:.2f}%  (training time {:.1f}s, {:.2f}s per epoch)\n", o.test_name,
             100 * st.test_accuracy, train_time, ran ? train_time / ran : 0.0);
  fmt::print("exported: {}\nlog: {}\n", o.out, o.csv);
  return 0;
}

// Runs Network<Policy, Activation> for the format, scheme and optimizer named in o.
template <template <class, class> class Network, class Policy, class Activation>
int with_optimizer(const run_options& o, const pbnn::dataset& tr, const pbnn::dataset& te) {
  using Net = Network<Policy, Activation>;
  if (o.optimizer == "sgd") return run<Net>(o, pbnn::sgd{}, tr, te);  // the trainer sets the learning rate
  return run<Net>(o, pbnn::adam{}, tr, te);
}

template <template <class, class> class Network, class Format, class Backend>
int with_scheme(const run_options& o, const pbnn::dataset& tr, const pbnn::dataset& te) {
  using namespace pbnn;
  if (o.scheme == "float") return with_optimizer<Network, policy<Format, real, Backend>, relu>(o, tr, te);
  if (o.scheme == "det") return with_optimizer<Network, policy<Format, sign, Backend>, relu>(o, tr, te);
  if (o.scheme == "stoch") return with_optimizer<Network, policy<Format, stochastic, Backend>, relu>(o, tr, te);
  if (o.scheme == "bnn") return with_optimizer<Network, policy<Format, sign, Backend>, binary_act>(o, tr, te);
  if (o.act_grad == "exact")
    return with_optimizer<Network, policy<Format, progressive<log_schedule, activation_gradient::exact>, Backend>,
                          binary_act>(o, tr, te);
  return with_optimizer<Network, policy<Format, progressive<log_schedule>, Backend>, binary_act>(o, tr, te);
}

template <template <class, class> class Network, class Backend>
int with_format(const run_options& o, const pbnn::dataset& tr, const pbnn::dataset& te) {
  if (o.format == "fp32") return with_scheme<Network, pbnn::fp32, Backend>(o, tr, te);
  if (o.format == "fixed16") return with_scheme<Network, pbnn::fixed<16>, Backend>(o, tr, te);
  return with_scheme<Network, pbnn::fixed<8>, Backend>(o, tr, te);
}

// Trains the program's network on OpenCL (o.backend == "opencl"): defined in the trainer's own
// <trainer>_opencl.cpp, a translation unit of its own so that the device networks compile beside the
// CPU ones.
int train_on_opencl(const run_options& o, const pbnn::dataset& tr, const pbnn::dataset& te);

#if !defined(PBNN_EXAMPLES_WITH_OPENCL)
inline int train_on_opencl(const run_options&, const pbnn::dataset&, const pbnn::dataset&) {
  throw std::invalid_argument(
      "--backend opencl: this program was built without OpenCL (Debian: apt-get install ocl-icd-opencl-dev "
      "opencl-clhpp-headers, then build again)");
}
#endif

// Fails before the data is read, so that no training is lost: an OpenCL device named without the OpenCL
// backend, or an output (--csv, --out, --checkpoint) in a folder that does not exist.
inline void check_run_options(const run_options& o) {
  if (o.backend != "opencl" && !o.device.empty())
    throw std::invalid_argument("--device names an OpenCL device: it needs --backend opencl");
  const std::pair<const std::string&, const char*> outputs[] = {{o.csv, "--csv"}, {o.out, "--out"},
                                                                {o.checkpoint, "--checkpoint"}};
  for (const auto& [path, option] : outputs) {
    const std::filesystem::path folder = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!path.empty() && !folder.empty() && !std::filesystem::is_directory(folder, ec))
      throw std::invalid_argument(
          fmt::format("{} {}: cannot write there: {} is not an existing folder", option, path, folder.string()));
  }
}

}  // namespace examples
