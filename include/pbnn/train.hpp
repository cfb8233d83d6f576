#pragma once
// The training loop: shuffled minibatches from a seeded generator, the optimizer, step learning-rate
// decay and the v schedule per epoch, and per-epoch metrics of the *binary* network (evaluation mode).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "pbnn/checkpoint.hpp"
#include "pbnn/dataset.hpp"
#include "pbnn/loss.hpp"
#include "pbnn/optim.hpp"
#include "pbnn/policy.hpp"

namespace pbnn {

struct train_options {
  int epochs = 30;
  std::size_t batch = 100;
  float lr = 1e-3f;
  int lr_step = 20;          // the learning rate is multiplied by lr_decay every lr_step epochs
  float lr_decay = 0.1f;
  // Multiplies the learning rate of binarized layers' P (BinaryConnect scales it up, since P spans
  // [-1, 1] while real weights are of order 1/sqrt(fan_in)).
  float binarized_lr_scale = 1.0f;
  float threshold_v = 500;   // progressive schemes: batch norm as a threshold from this v on
  // After each epoch, the running statistics of every batch norm are re-measured on this many
  // training images through the binary network (see calibrate_batch_norm); 0 keeps the ones
  // gathered during training.
  std::size_t calibration_images = 10000;
  std::uint64_t seed = 1;
  std::function<float(int epoch, int epochs)> v_schedule;  // empty: the scheme's own schedule
  // Edits each training minibatch's n samples (real values, n x features) in place before they are
  // quantized, drawing from the trainer's generator (e.g. pbnn::crop_flip); never applied to
  // evaluation or calibration. Empty: no augmentation.
  std::function<void(float* samples, std::size_t n, rng& g)> augment;
};

struct epoch_stats {
  int epoch = 0;
  float v = 1, lr = 0;
  double loss = 0;              // mean training loss (training-mode network)
  double train_accuracy = 0;    // binary network, evaluation mode
  double test_accuracy = 0;     // binary network, evaluation mode
  double train_seconds = 0, eval_seconds = 0;
  double saturated_fraction = 0;  // binarized parameters with |theta| = 1
  std::uint64_t saturation_events = 0;  // fixed formats: values clamped to the format's range, this epoch
};

// Up to 1000 samples per evaluation batch, fewer for wide networks, so that the widest tensor (and a
// 3x3 convolution's im2col, 9 times larger) stays within about 256 MB of fp32.
template <class Net>
constexpr std::size_t default_eval_batch() {
  return std::clamp<std::size_t>((std::size_t{1} << 26) / (9 * Net::widest), 1, 1000);
}

// Classification accuracy of the network in evaluation mode (the binary network).
template <class Net>
double evaluate(Net& net, const dataset& d, std::size_t batch = default_eval_batch<Net>()) {
  if constexpr (requires { net.evaluate(d, batch); }) {
    return net.evaluate(d, batch);  // a device network's own
  } else {
    context ctx;
    ctx.mode = mode::eval;
    batch_tensor<typename Net::format> x;
    std::vector<std::uint8_t> labels;
    std::vector<float> scratch;
    std::vector<std::size_t> idx(d.count);
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    std::size_t correct = 0;
    for (std::size_t s = 0; s < d.count; s += batch) {
      const std::size_t n = std::min(batch, d.count - s);
      gather_batch(d, idx.data() + s, n, x, labels, scratch);
      const auto& out = net.forward(x, ctx);
      for (std::size_t r = 0; r < n; ++r) correct += predicted_class(out, r) == labels[r];
    }
    return d.count ? static_cast<double>(correct) / static_cast<double>(d.count) : 0.0;
  }
}

// Re-measures the running statistics of every batch norm through the binary network (sign weights
// and activations) on the first `images` of `d`, each the average over batches of `batch`.
// Training gathers them from theta, which differs from sign(theta) until every binarized parameter
// saturates (stochastic weights never do), so the evaluation network would otherwise normalize with
// statistics of another network.
template <class Net>
void calibrate_batch_norm(Net& net, const dataset& d, std::size_t images, std::size_t batch = default_eval_batch<Net>()) {
  if constexpr (requires { net.calibrate(d, images, batch); }) {
    net.calibrate(d, images, batch);  // a device network's own
  } else {
    net.for_each_layer([](auto& l, std::size_t) {
      if constexpr (requires { l.begin_calibration(); }) l.begin_calibration();
    });
    context ctx;
    ctx.mode = mode::calibrate;
    batch_tensor<typename Net::format> x;
    std::vector<std::uint8_t> labels;
    std::vector<float> scratch;
    images = std::min(images, d.count);
    std::vector<std::size_t> idx(images);
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    for (std::size_t s = 0; s < images; s += batch) {
      gather_batch(d, idx.data() + s, std::min(batch, images - s), x, labels, scratch);
      net.forward(x, ctx);
    }
  }
}

using progress_fn = std::function<void(std::size_t done, std::size_t total, double mean_loss)>;

struct pass_result {
  double loss_sum = 0;
  std::size_t samples = 0;
  std::uint64_t saturation_events = 0;
};

namespace detail {

// Fraction of the binarized parameters of a (host) network whose theta already equals +-1.
template <class Scheme, class Net>
double saturated_fraction(Net& net, float v) {
  std::size_t total = 0, sat = 0;
  net.for_each_parameter([&](auto& p) {
    if (p.role != param_role::binarized) return;
    total += p.size();
    const float limit = p.max_real();
    for (std::size_t i = 0; i < p.size(); ++i) {
      const float a = std::fabs(p.real(i));
      if constexpr (is_progressive_v<Scheme>) sat += v * a >= 1.0f;
      else sat += a >= limit;
    }
  });
  return total ? static_cast<double>(sat) / static_cast<double>(total) : 0.0;
}

// What the trainers of every backend share: the validated options (the scheme's v schedule by
// default), the generator everything random is drawn from, the per-epoch settings and the shuffle.
template <class Scheme>
class training_plan {
 public:
  explicit training_plan(train_options opt) : opt_(std::move(opt)), gen_(opt_.seed) {
    if (!opt_.v_schedule) {
      if constexpr (is_progressive_v<Scheme>) opt_.v_schedule = typename Scheme::schedule{};
      else opt_.v_schedule = [](int, int) { return 1.0f; };
    }
    if (opt_.batch == 0) throw std::invalid_argument("pbnn::trainer: batch size must be positive");
    if (opt_.lr_step <= 0) throw std::invalid_argument("pbnn::trainer: lr_step must be positive");
    if (opt_.epochs <= 0) throw std::invalid_argument("pbnn::trainer: epochs must be positive");
  }

  float v_at(int epoch) const { return opt_.v_schedule(epoch, opt_.epochs); }
  float lr_at(int epoch) const {
    return opt_.lr * std::pow(opt_.lr_decay, static_cast<float>(epoch / opt_.lr_step));
  }
  const train_options& options() const noexcept { return opt_; }

 protected:
  // The step context of an epoch's training pass.
  context training_context(int epoch) {
    context ctx;
    ctx.v = v_at(epoch);
    ctx.bn_threshold = is_progressive_v<Scheme> && ctx.v >= opt_.threshold_v;
    ctx.gen = &gen_;
    return ctx;
  }
  // A new shuffle of [0, count) in order_ (pbnn::rng: same seed, same order); returns how many of
  // `batches` whole minibatches it holds.
  std::size_t shuffle(std::size_t count, std::size_t batches) {
    order_.resize(count);
    std::iota(order_.begin(), order_.end(), std::size_t{0});
    std::shuffle(order_.begin(), order_.end(), gen_);
    return std::min(batches, count / opt_.batch);
  }
  // The options' augmentation as a batch transform drawing from gen_ (the run stays reproducible
  // from its seed); empty without one.
  batch_transform augmentation() {
    if (!opt_.augment) return {};
    return [this](float* rows, std::size_t n) { opt_.augment(rows, n, gen_); };
  }

  // A checkpoint's run continues only with this trainer's seed and batch size.
  void check_resumable(const std::filesystem::path& file, const checkpoint_run& run) const {
    if (run.seed != opt_.seed || run.batch != opt_.batch)
      throw std::invalid_argument(fmt::format(
          "{}: the checkpoint's run has seed {} and batch size {}; resuming it needs the same, not seed {} and batch "
          "size {}", file.string(), run.seed, run.batch, opt_.seed, opt_.batch));
  }

  train_options opt_;
  rng gen_;
  std::vector<std::size_t> order_;
};

// One epoch of t's training of net, then the batch-norm calibration and the evaluation of the binary
// network on both sets (eval_seconds covers both).
template <class Trainer, class Net>
epoch_stats run_epoch(Trainer& t, Net& net, const dataset& train, const dataset* test, int epoch,
                      const progress_fn& progress) {
  const train_options& opt = t.options();
  epoch_stats st;
  st.epoch = epoch;
  st.v = t.v_at(epoch);
  st.lr = t.lr_at(epoch);
  const auto t0 = std::chrono::steady_clock::now();
  const pass_result pass = t.train_batches(train, train.count / opt.batch, epoch, progress);
  const auto t1 = std::chrono::steady_clock::now();
  st.loss = pass.samples ? pass.loss_sum / static_cast<double>(pass.samples) : 0.0;
  st.saturation_events = pass.saturation_events;
  st.saturated_fraction = t.saturated_fraction(st.v);
  if (opt.calibration_images) calibrate_batch_norm(net, train, opt.calibration_images);
  st.train_accuracy = evaluate(net, train);
  if (test) st.test_accuracy = evaluate(net, *test);
  st.train_seconds = std::chrono::duration<double>(t1 - t0).count();
  st.eval_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  return st;
}

}  // namespace detail

template <class Net, class Optimizer = adam>
class trainer : public detail::training_plan<typename Net::scheme> {
  using plan = detail::training_plan<typename Net::scheme>;
  using plan::opt_, plan::gen_, plan::order_;

 public:
  using scheme = typename Net::scheme;
  using progress_fn = pbnn::progress_fn;
  using pass_result = pbnn::pass_result;
  using plan::v_at, plan::lr_at, plan::options;

  // Initializes the network's parameters from opt.seed: a run is reproducible from its seed.
  trainer(Net& net, train_options opt, Optimizer optimizer = {})
      : plan(std::move(opt)), net_(net), states_(optimizer) {
    net_.init(gen_);
  }

  // One epoch of training, then the batch-norm calibration and the evaluation of the binary network
  // on both sets (eval_seconds covers both).
  epoch_stats run_epoch(const dataset& train, const dataset* test, int epoch, const progress_fn& progress = {}) {
    return detail::run_epoch(*this, net_, train, test, epoch, progress);
  }

  // Trains on up to `batches` shuffled minibatches of `train` with the settings of `epoch` (the last
  // partial batch of an epoch is dropped).
  pass_result train_batches(const dataset& train, std::size_t batches, int epoch, const progress_fn& progress = {}) {
    states_.options().lr = lr_at(epoch);
    states_.options().binarized_lr_scale = opt_.binarized_lr_scale;
    context ctx = this->training_context(epoch);
    batches = this->shuffle(train.count, batches);
    pass_result res;
    const batch_transform augment = this->augmentation();
    for (std::size_t bi = 0; bi < batches; ++bi) {
      gather_batch(train, order_.data() + bi * opt_.batch, opt_.batch, x_, labels_, scratch_, augment);
      const auto& out = net_.forward(x_, ctx);
      res.loss_sum += softmax_cross_entropy(out, labels_.data(), dlogits_, ctx).loss_sum;
      res.samples += opt_.batch;
      net_.backward(dlogits_, ctx);
      states_.step(net_, ctx);
      if (progress) progress(bi + 1, batches, res.loss_sum / static_cast<double>(res.samples));
    }
    res.saturation_events = ctx.saturation.events;
    return res;
  }

  // Fraction of binarized parameters whose theta already equals +-1.
  double saturated_fraction(float v) { return detail::saturated_fraction<scheme>(net_, v); }

  // Writes everything later epochs depend on (see checkpoint.hpp) after `epochs_done` epochs,
  // atomically: the file holds the previous checkpoint or this one, never a part.
  void save_checkpoint(const std::filesystem::path& file, int epochs_done) const {
    checkpoint<Net, Optimizer>::write(file, net_, states_, {opt_.seed, opt_.batch, epochs_done, gen_.state()});
  }
  // Continues the run saved in `file`: returns its completed epochs, the epoch to run next. The
  // network, optimizer and generator change only if the whole file is valid for this network
  // (pbnn::file_error otherwise) and was written with this trainer's seed and batch size
  // (std::invalid_argument otherwise). Other options (epochs, learning rate...) are the caller's.
  int load_checkpoint(const std::filesystem::path& file) {
    auto saved = checkpoint<Net, Optimizer>::read(file, net_);
    this->check_resumable(file, saved.run());
    const int epochs_done = saved.run().epochs_done;
    std::move(saved).commit(net_, states_, gen_);
    return epochs_done;
  }

 private:
  Net& net_;
  optimizer_states<Optimizer> states_;
  batch_tensor<typename Net::format> x_, dlogits_;
  std::vector<std::uint8_t> labels_;
  std::vector<float> scratch_;
};

}  // namespace pbnn
