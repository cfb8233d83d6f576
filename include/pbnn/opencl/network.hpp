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
#include <stdexcept>
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
    return passes().forward(ctx);
  }
  // Back-propagates dy; every parameter gradient is overwritten.
  void backward(const tensor& dy, context& ctx) {
    if (!input_) throw std::logic_error("pbnn::sequential::backward: no forward pass to go back through");
    passes().backward(dy, ctx);
  }

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
  // Layer i's output of the last forward pass (fp32 training leaves a batch norm's unwritten where
  // it ran together with the activation after it: layer_passes.hpp).
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

  // The device layers' operations for detail::layer_passes: the host layers' with the runtime first.
  struct device_calls {
    opencl::runtime& rt;
    template <class L, class... Args>
    void forward(L& layer, Args&&... args) const {
      layer.forward(rt, std::forward<Args>(args)...);
    }
    template <class L, class... Args>
    void backward(L& layer, Args&&... args) const {
      layer.backward(rt, std::forward<Args>(args)...);
    }
    template <class L, class... Args>
    void threshold(L& layer, Args&&... args) const {
      layer.sign_by_threshold(rt, std::forward<Args>(args)...);
    }
    template <class Activation>
    static constexpr bool fuses_batch_norm_with() {
      if constexpr (requires { Activation::fuses_after_batch_norm; }) return Activation::fuses_after_batch_norm;
      else return false;
    }
    template <class Activation>
    static constexpr bool fuses_pool_with() {
      return fuses_batch_norm_with<Activation>() && !is_fixed_v<format>;
    }
    template <class Pool, class BatchNorm, class Activation>
    void forward_pooled(Pool& pool, BatchNorm& bn, Activation&, const tensor& x, tensor& pooled, tensor& out,
                        context& ctx) const {
      bn.pool_forward_activate(rt, pool, x, pooled, out, Activation::fused, ctx);
    }
    template <class Pool, class BatchNorm, class Activation>
    void backward_pooled(Pool& pool, BatchNorm& bn, Activation&, const tensor& x, const tensor& pooled, tensor& d,
                         tensor* dx, context& ctx) const {
      bn.pool_backward_through_activation(rt, pool, x, pooled, d, dx, Activation::fused, ctx);
    }
    template <class BatchNorm, class Activation>
    void forward_activated(BatchNorm& bn, Activation&, const tensor& x, tensor& y, tensor& out, context& ctx) const {
      bn.forward_activate(rt, x, y, out, Activation::fused, ctx);
    }
    template <class BatchNorm, class Activation>
    void backward_activated(BatchNorm& bn, Activation&, const tensor& x, const tensor& y, tensor& d, bool with_dx,
                            context& ctx) const {
      bn.backward_through_activation(rt, x, y, d, Activation::fused, with_dx, ctx);
    }
  };
  detail::layer_passes<typename host_type::layers_type, device_calls, layers_type, tensor, depth> passes() {
    return {layers_, outputs_, grads_, *input_, device_calls{*rt_}};
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
