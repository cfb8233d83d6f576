#pragma once
// pbnn::sequential over the OpenCL backend: the same layer specs as on the CPU, each layer's device
// version (layers.hpp), tensors and parameters resident on the device. The network keeps its host
// twin, the CPU network of the same specs, for what happens outside training steps: initialization
// (so a device run starts from the CPU run's parameters), export and checkpoints (download() first),
// loading (upload() after).
//
//   using P = pbnn::policy<pbnn::fixed<8>, pbnn::progressive<>, pbnn::opencl::backend>;
//   using mlp = pbnn::sequential<P, pbnn::input<784>, ...>;   // as for pbnn::cpu
//   auto net = std::make_unique<mlp>();                         // on opencl::default_runtime()
//
// forward() and backward() enqueue work and wait for none of it.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "pbnn/context.hpp"
#include "pbnn/dataset.hpp"
#include "pbnn/opencl/backend.hpp"
#include "pbnn/opencl/batch.hpp"
#include "pbnn/opencl/layers.hpp"
#include "pbnn/opencl/loss.hpp"
#include "pbnn/sequential.hpp"

namespace pbnn {

template <number_format Format, binarization_scheme Scheme, class In, class... Specs>
class sequential<policy<Format, Scheme, opencl::backend>, In, Specs...> {
 public:
  using policy_type = policy<Format, Scheme, opencl::backend>;
  using host_type = sequential<policy<Format, Scheme, cpu>, In, Specs...>;
  using format = Format;
  using scheme = Scheme;
  using in_shape = In;
  using out_shape = typename host_type::out_shape;
  using tensor = opencl::device_tensor<format>;
  static constexpr std::size_t depth = host_type::depth;
  static constexpr std::size_t widest = host_type::widest;

 private:
  template <class T>
  struct device_layers_of;
  template <class... L>
  struct device_layers_of<std::tuple<L...>> {
    using type = std::tuple<opencl::device_layer<L>...>;
  };

 public:
  using layers_type = typename device_layers_of<typename host_type::layers_type>::type;

  // On the process's default runtime (opencl::default_runtime()), or on rt, which must outlive the network.
  sequential() : sequential(opencl::default_runtime()) {}
  explicit sequential(opencl::runtime& rt)
      : rt_(&rt), host_(std::make_unique<host_type>()), layers_(make_layers(std::make_index_sequence<depth>{})) {}
  sequential(const sequential&) = delete;
  sequential& operator=(const sequential&) = delete;

  opencl::runtime& runtime() noexcept { return *rt_; }
  static std::string describe() { return host_type::describe(); }

  // Initializes the host twin's parameters (as a CPU network draws them from g) and uploads them.
  void init(rng& g) {
    host_->init(g);
    upload();
  }

  // The host twin; its parameters and state are the device's as of the last download() or upload().
  host_type& host() noexcept { return *host_; }
  // Device parameters and state (batch-norm running statistics) into the host twin; waits for the device.
  void download() {
    each_with_host([&](auto& dev, auto& h) { dev.download(*rt_, h); });
  }
  // The host twin's parameters and state onto the device (after loading into host()).
  void upload() {
    each_with_host([&](auto& dev, auto& h) { dev.upload(*rt_, h); });
  }

  // Runs the layers on x (which must stay alive, and unchanged, until backward) and returns the output.
  const tensor& forward(const tensor& x, context& ctx) {
    input_ = &x;
    forward_from<0>(x, ctx);
    return outputs_[depth - 1];
  }
  // Back-propagates dy; every parameter gradient is overwritten.
  void backward(const tensor& dy, context& ctx) { backward_from<depth - 1>(dy, ctx); }

  template <class Fn>
  void for_each_layer(Fn&& fn) {
    each_layer(fn, std::make_index_sequence<depth>{});
  }
  // fn(opencl::device_parameter<format>&) in the host network's parameter order.
  template <class Fn>
  void for_each_parameter(Fn&& fn) {
    for_each_layer([&](auto& l, std::size_t) { l.for_each_parameter(fn); });
  }
  template <std::size_t I>
  auto& layer() noexcept {
    return std::get<I>(layers_);
  }
  const tensor& output(std::size_t i) const noexcept { return outputs_[i]; }

  // Classification accuracy of the binary network (evaluation mode) on d, counted on the device.
  double evaluate(const dataset& d, std::size_t batch) {
    opencl::check_features(d, In::size, "pbnn::evaluate");
    context ctx;
    ctx.mode = mode::eval;
    correct_.resize(*rt_, 1);
    opencl::check(rt_->queue().enqueueFillBuffer(correct_.handle(), cl_uint{0}, 0, sizeof(cl_uint)), "clearing a count");
    const std::vector<std::size_t> idx = first_indices(d.count);
    for (std::size_t s = 0; s < d.count; s += batch) {
      const std::size_t n = std::min(batch, d.count - s);
      uploader_.upload(*rt_, d, idx.data() + s, n);
      opencl::count_correct(*rt_, forward(uploader_.x, ctx), uploader_.labels, correct_);
    }
    const std::uint32_t correct = correct_.download(*rt_).at(0);
    return d.count ? static_cast<double>(correct) / static_cast<double>(d.count) : 0.0;
  }

  // pbnn::calibrate_batch_norm on the device: batch-norm running statistics re-measured through the
  // binary network on the first `images` of d.
  void calibrate(const dataset& d, std::size_t images, std::size_t batch) {
    opencl::check_features(d, In::size, "pbnn::calibrate_batch_norm");
    for_each_layer([](auto& l, std::size_t) {
      if constexpr (requires { l.begin_calibration(); }) l.begin_calibration();
    });
    context ctx;
    ctx.mode = mode::calibrate;
    images = std::min(images, d.count);
    const std::vector<std::size_t> idx = first_indices(images);
    for (std::size_t s = 0; s < images; s += batch) {
      uploader_.upload(*rt_, d, idx.data() + s, std::min(batch, images - s));
      forward(uploader_.x, ctx);
    }
  }

 private:
  template <std::size_t... I>
  layers_type make_layers(std::index_sequence<I...>) {
    return layers_type(std::tuple_element_t<I, layers_type>(*rt_, host_->template layer<I>())...);
  }
  template <class Fn, std::size_t... I>
  void each_layer(Fn& fn, std::index_sequence<I...>) {
    (fn(std::get<I>(layers_), I), ...);
  }
  template <class Fn>
  void each_with_host(Fn&& fn) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (fn(std::get<I>(layers_), host_->template layer<I>()), ...);
    }(std::make_index_sequence<depth>{});
  }
  static std::vector<std::size_t> first_indices(std::size_t n) {
    std::vector<std::size_t> idx(n);
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    return idx;
  }

  template <std::size_t I>
  using layer_t = std::tuple_element_t<I, typename host_type::layers_type>;

  // As host_type: a batch_norm followed by binary_act is a threshold comparison in evaluation and
  // calibration, and in training once ctx.bn_threshold is set.
  template <std::size_t I>
  static constexpr bool folds_into_threshold() {
    if constexpr (I == 0 || I >= depth) return false;
    else return detail::is_batch_norm_v<layer_t<I - 1>> && detail::is_binary_act_v<layer_t<I>>;
  }

  template <std::size_t J>
  const tensor& input_of() const noexcept {
    if constexpr (J == 0) return *input_;
    else return outputs_[J - 1];
  }

  template <std::size_t I>
  void forward_from(const tensor& x, context& ctx) {
    if constexpr (I < depth) {
      if constexpr (folds_into_threshold<I>()) {
        if (!ctx.training() || ctx.bn_threshold) {
          std::get<I - 1>(layers_).sign_by_threshold(*rt_, input_of<I - 1>(), outputs_[I], ctx);
          return forward_from<I + 1>(outputs_[I], ctx);
        }
      }
      if constexpr (I + 1 < depth && folds_into_threshold<I + 1>()) {
        if (!ctx.training()) return forward_from<I + 1>(x, ctx);
      }
      std::get<I>(layers_).forward(*rt_, x, outputs_[I], ctx);
      forward_from<I + 1>(outputs_[I], ctx);
    }
  }

  template <std::size_t I>
  void backward_from(const tensor& dy, context& ctx) {
    const tensor& x = input_of<I>();
    if constexpr (I == 0) {
      std::get<0>(layers_).backward(*rt_, x, outputs_[0], dy, nullptr, ctx);
    } else {
      tensor& dx = grads_[I % 2];
      std::get<I>(layers_).backward(*rt_, x, outputs_[I], dy, &dx, ctx);
      backward_from<I - 1>(dx, ctx);
    }
  }

  opencl::runtime* rt_;
  std::unique_ptr<host_type> host_;
  layers_type layers_;
  std::array<tensor, depth> outputs_;
  std::array<tensor, 2> grads_;
  const tensor* input_ = nullptr;
  opencl::batch_uploader<format> uploader_;  // evaluation and calibration batches
  opencl::device_buffer<std::uint32_t> correct_;
};

}  // namespace pbnn
