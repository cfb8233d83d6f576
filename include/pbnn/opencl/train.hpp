#pragma once
// pbnn::trainer for networks on the OpenCL backend: the CPU trainer's loop (same options, shuffle,
// augmentation, random streams drawn in the same order, so a run equals the CPU run of its seed up
// to the fp32 summation order), with every step enqueued without waiting. The host gathers the next
// batch while the device trains on the last; per-batch losses, correct counts and saturation events
// stay on the device until the epoch ends (and, with a progress callback, about ten times an epoch).
// Checkpoints go through the network's host twin and the CPU optimizer's state, so their files are
// those of the CPU backend.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <type_traits>
#include <vector>

#include "pbnn/checkpoint.hpp"
#include "pbnn/opencl/backend.hpp"
#include "pbnn/opencl/batch.hpp"
#include "pbnn/opencl/loss.hpp"
#include "pbnn/opencl/network.hpp"
#include "pbnn/opencl/optim.hpp"
#include "pbnn/optim.hpp"
#include "pbnn/train.hpp"

namespace pbnn {

namespace opencl {

// An optimizer's per-parameter state on the device: its host state's buffers (Optimizer::state's
// for_each_buffer order), and the update that reads them (Adam's: adam_update_all, for every
// parameter at once).
template <class Optimizer>
inline constexpr bool has_device_update = false;
template <>
inline constexpr bool has_device_update<adam> = true;
template <>
inline constexpr bool has_device_update<sgd> = true;

template <class F>
void device_update(runtime& rt, const sgd& opt, device_parameter<F>& p, std::vector<device_buffer<float>>& state, long,
                   stream rnd, device_buffer<std::uint32_t>& saturation) {
  sgd_update(rt, opt, p, state[0], rnd, saturation);
}

}  // namespace opencl

template <opencl::device_network Net, class Optimizer>
class trainer<Net, Optimizer> : public detail::training_plan<typename Net::scheme> {
  static_assert(opencl::has_device_update<Optimizer>,
                "pbnn::opencl::backend: this optimizer has no device update (adam and sgd have)");
  using plan = detail::training_plan<typename Net::scheme>;
  using plan::opt_, plan::gen_, plan::order_;
  using host_net = typename Net::host_type;

 public:
  using scheme = typename Net::scheme;
  using format = typename Net::format;
  using progress_fn = pbnn::progress_fn;
  using pass_result = pbnn::pass_result;
  using plan::v_at, plan::lr_at, plan::options;

  // Initializes the network's parameters from opt.seed (as the CPU trainer does) and uploads them.
  trainer(Net& net, train_options opt, Optimizer optimizer = {})
      : plan(std::move(opt)), net_(net), rt_(net.runtime()), optimizer_(optimizer) {
    net_.init(gen_);
  }

  epoch_stats run_epoch(const dataset& train, const dataset* test, int epoch, const progress_fn& progress = {}) {
    return detail::run_epoch(*this, net_, train, test, epoch, progress);
  }

  // Trains on up to `batches` shuffled minibatches of `train` with the settings of `epoch`; waits for
  // the device once at the end (and at the progress callback's read-backs).
  pass_result train_batches(const dataset& train, std::size_t batches, int epoch, const progress_fn& progress = {}) {
    opencl::check_features(train, Net::in_shape::size, "pbnn::trainer");
    optimizer_.lr = lr_at(epoch);
    optimizer_.binarized_lr_scale = opt_.binarized_lr_scale;
    context ctx = this->training_context(epoch);
    batches = this->shuffle(train.count, batches);
    const batch_transform augment = this->augmentation();
    pass_result res;
    if (batches == 0) return res;
    batch_losses_.resize(rt_, batches);
    ensure_zeroed(rt_, saturation_, 1, "clearing the saturation counter");
    const std::size_t report_every = std::max<std::size_t>(1, batches / 10);
    deferred_update_work deferred(net_, rt_);
    for (std::size_t bi = 0; bi < batches; ++bi) {
      uploader_.upload(rt_, train, order_.data() + bi * opt_.batch, opt_.batch, augment);
      const auto& out = net_.forward(uploader_.x, ctx);
      opencl::softmax_cross_entropy(rt_, out, uploader_.labels, dlogits_, loss_,
                                    is_fixed_v<format> ? ctx.next_stream() : stream{}, {&batch_losses_, bi});
      net_.backward(dlogits_, ctx);
      step(ctx);
      if (progress && ((bi + 1) % report_every == 0 || bi + 1 == batches))
        progress(bi + 1, batches, loss_sum(bi + 1) / static_cast<double>((bi + 1) * opt_.batch));
    }
    deferred.finish();
    res.loss_sum = loss_sum(batches);
    res.samples = batches * opt_.batch;
    res.saturation_events = saturation_.download(rt_).at(0);
    opencl::check(rt_.queue().enqueueFillBuffer(saturation_.handle(), cl_uint{0}, 0, sizeof(cl_uint)), "clearing a counter");
    return res;
  }

  // Fraction of binarized parameters whose theta already equals +-1 (downloads the parameters).
  double saturated_fraction(float v) {
    net_.download();
    return detail::saturated_fraction<scheme>(net_.host(), v);
  }

  // As the CPU trainer's; the file is the CPU backend's checkpoint of the host twin.
  void save_checkpoint(const std::filesystem::path& file, int epochs_done) {
    net_.download();
    checkpoint<host_net, Optimizer>::write(file, net_.host(), host_states(),
                                           {opt_.seed, opt_.batch, epochs_done, gen_.state()});
  }
  int load_checkpoint(const std::filesystem::path& file) {
    auto saved = checkpoint<host_net, Optimizer>::read(file, net_.host());
    this->check_resumable(file, saved.run());
    const int epochs_done = saved.run().epochs_done;
    optimizer_states<Optimizer> states(optimizer_);
    std::move(saved).commit(net_.host(), states, gen_);
    net_.upload();
    upload_states(states);
    return epochs_done;
  }

 private:
  static constexpr bool updates_all_at_once = std::is_same_v<Optimizer, adam>;

  // While it lives, layers leave the element-wise work on their parameters' gradients (progressive
  // masks and theta, split products' slices) to the update, where it updates every parameter at once
  // (device_parameter::defer_to_update); after finish(), every gradient is in its grad again.
  struct deferred_update_work {
    Net& net;
    opencl::runtime& rt;
    deferred_update_work(Net& n, opencl::runtime& r) : net(n), rt(r) { set(updates_all_at_once); }
    ~deferred_update_work() { set(false); }
    // The gradients' slices added into their grad (at the end of a pass).
    void finish() {
      net.for_each_parameter([&](auto& p) { opencl::sum_pending_grad(rt, p); });
    }
    deferred_update_work(const deferred_update_work&) = delete;
    deferred_update_work& operator=(const deferred_update_work&) = delete;
    void set(bool on) {
      net.for_each_parameter([&](auto& p) { p.defer_to_update = on; });
    }
  };

  // One optimizer step over every parameter, each with a stream from the context, as optimizer_states::step.
  // Adam updates them all in one launch (or a few: opencl::adam_update_all).
  void step(context& ctx) {
    ++step_;
    std::size_t i = 0;
    if constexpr (updates_all_at_once) {
      adam_slots_.clear();
      net_.for_each_parameter([&](auto& p) {
        if (states_.size() <= i) states_.emplace_back(buffers_per_state());
        auto& state = states_[i++];
        const stream rnd = ctx.next_stream();
        if (p.size()) adam_slots_.push_back({&p, &state[0], &state[1], rnd});
      });
      opencl::adam_update_all<format>(rt_, optimizer_, adam_slots_, step_, saturation_);
    } else {
      net_.for_each_parameter([&](auto& p) {
        if (states_.size() <= i) states_.emplace_back(buffers_per_state());
        opencl::device_update(rt_, optimizer_, p, states_[i++], step_, ctx.next_stream(), saturation_);
      });
    }
  }

  // The summed loss of the first `batches` batches (waits for them).
  double loss_sum(std::size_t batches) {
    std::vector<float> sums(batches);
    opencl::check(rt_.queue().enqueueReadBuffer(batch_losses_.handle(), CL_TRUE, 0, batches * sizeof(float), sums.data()),
          "reading the losses");
    double s = 0;
    for (const float v : sums) s += v;
    return s;
  }

  static std::size_t buffers_per_state() {
    std::size_t n = 0;
    typename Optimizer::state{}.for_each_buffer([&](std::string_view, auto&) { ++n; });
    return n;
  }
  optimizer_states<Optimizer> host_states() {
    std::vector<typename Optimizer::state> out(states_.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
      std::size_t k = 0;
      out[i].for_each_buffer([&](std::string_view, aligned_vector<float>& b) {
        const auto v = states_[i][k++].download(rt_);
        b.assign(v.begin(), v.end());
      });
    }
    optimizer_states<Optimizer> s(optimizer_);
    s.restore(step_, std::move(out));
    return s;
  }
  void upload_states(const optimizer_states<Optimizer>& s) {
    step_ = s.steps();
    states_.clear();
    for (const auto& host : s.states()) {
      auto& dev = states_.emplace_back(buffers_per_state());
      std::size_t k = 0;
      host.for_each_buffer([&](std::string_view, const aligned_vector<float>& b) {
        // An empty buffer (no update yet) stays empty: the first update sizes and zeroes it.
        dev[k++].upload(rt_, b.data(), b.size());
      });
    }
  }

  Net& net_;
  opencl::runtime& rt_;
  Optimizer optimizer_;
  std::vector<std::vector<opencl::device_buffer<float>>> states_;  // per parameter, in the network's order
  long step_ = 0;
  std::vector<opencl::adam_slot<format>> adam_slots_;  // Adam: this step's parameters, moments and streams
  opencl::batch_uploader<format> uploader_;
  opencl::device_tensor<format> dlogits_;
  opencl::loss_buffers loss_;
  opencl::device_buffer<float> batch_losses_;  // the summed loss of each batch of the pass
  opencl::device_buffer<std::uint32_t> saturation_;
};

}  // namespace pbnn
