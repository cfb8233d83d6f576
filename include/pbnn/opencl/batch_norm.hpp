#pragma once
// Batch normalization over channels on an OpenCL device (kernels/batch_norm_cl.hpp), the CPU layer's
// computation (layers/batch_norm.hpp) with its state in device buffers: statistics and running
// statistics, the affine forward pass, sign(BN(x)) as a threshold comparison, and the backward pass
// into gamma's and beta's gradients and dx. Every call enqueues its kernels and waits for none.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "pbnn/context.hpp"
#include "pbnn/format.hpp"
#include "pbnn/opencl/cl_types.hpp"
#include "pbnn/opencl/conv.hpp"
#include "pbnn/opencl/gemm.hpp"
#include "pbnn/opencl/kernels/batch_norm_cl.hpp"
#include "pbnn/opencl/launch.hpp"
#include "pbnn/opencl/parameter.hpp"
#include "pbnn/opencl/quantize.hpp"
#include "pbnn/opencl/tensor.hpp"

namespace pbnn::opencl {

// Activations that fp32 training runs inside a batch norm's passes (the kernels' codes).
enum class fused_activation : cl_int { relu = 0, sign = 1, progressive = 2 };

template <class F>
class device_batch_norm {
 public:
  static constexpr float eps = 1e-5f, momentum = 0.1f;  // the CPU layer's
  static constexpr std::size_t tile_channels = 32, tile_rows = 8;  // BN_CT, BN_RW of the kernels
  static constexpr std::size_t elementwise_group = 256;           // BN_EW

  device_batch_norm(runtime& rt, std::size_t channels) : channels_(channels) {
    const std::vector<float> zeros(channels, 0.0f), ones(channels, 1.0f);
    running_mean.upload(rt, zeros);
    running_var.upload(rt, ones);
    for (auto* b : {&mean_, &invstd_, &scale_, &shift_, &tscale_, &tshift_}) b->resize(rt, channels);
    release_flags_.upload(rt, std::vector<cl_int>(channel_tiles(), 0));
    if constexpr (is_fixed_v<F>) {  // fp32 writes the parameters' gradients in place
      dgamma_.resize(rt, channels);
      dbeta_.resize(rt, channels);
    }
  }

  device_buffer<float> running_mean, running_var;

  // fp32 training takes one launch each way where single_launch_slices allows it (bn_train_forward,
  // bn_train_backward), two otherwise; false: always two (what tests compare the one launch with).
  bool single_launch = true;

  // Statistics of x (batch ones in training and calibration, running ones in evaluation); training
  // moves the running ones by `momentum`, calibration by calibration_weight (1 / (batches + 1)).
  void statistics(runtime& rt, const device_tensor<F>& x, const device_parameter<F>& gamma,
                  const device_parameter<F>& beta, mode m, float calibration_weight = 1.0f) {
    sum_pending(rt, x);
    const std::size_t npos = positions(x);
    const cl_int which = m == mode::train ? 0 : m == mode::calibrate ? 1 : 2;
    const std::size_t slices = m == mode::eval ? 1 : slices_for(npos);
    if (sums_.size() < 2 * slices * channels_) sums_.resize(rt, 2 * slices * channels_);
    // The kernel's arguments end with bn_finish_statistics's.
    const auto launch_with_finish_args = [&](const char* kernel, const cl::NDRange& global, const cl::NDRange& local,
                                             const auto&... leading) {
      detail::launch_range(rt, program(rt), kernel, global, local, leading..., gamma.value.handle(),
                           beta.value.handle(), cl_int{gamma.exp}, eps,
                           m == mode::calibrate ? calibration_weight : momentum, which, running_mean.handle(),
                           running_var.handle(), mean_.handle(), invstd_.handle(), scale_.handle(), shift_.handle(),
                           tscale_.handle(), tshift_.handle());
    };
    launch_with_finish_args("bn_statistics", groups(slices), tile(), x.data.handle(), x.exp.handle(),
                            detail::checked_count(npos), detail::checked_count(channels_),
                            detail::checked_count(slices), sums_.handle(), rt.counters(channel_tiles()));
  }

  // y = gamma (x - mean) invstd + beta with the last statistics; fixed formats round to nearest.
  void forward(runtime& rt, const device_tensor<F>& x, device_tensor<F>& y) {
    sum_pending(rt, x);
    affine(rt, x, y, nullptr);
  }

  // Training: statistics(mode::train) then forward(), in one launch where it can (fp32).
  void train_forward(runtime& rt, const device_tensor<F>& x, const device_parameter<F>& gamma,
                     const device_parameter<F>& beta, device_tensor<F>& y) {
    if constexpr (!is_fixed_v<F>)
      if (train_in_one_launch(rt, x, x, nullptr, gamma, beta, y, no_activation, 0.0f)) return;
    statistics(rt, x, gamma, beta, mode::train);
    forward(rt, x, y);
  }
  // fp32 training: statistics(mode::train) then forward_activate(), in one launch where it can.
  void train_forward_activate(runtime& rt, const device_tensor<F>& x, const device_parameter<F>& gamma,
                              const device_parameter<F>& beta, device_tensor<F>& out, fused_activation act, float v)
    requires(!is_fixed_v<F>)
  {
    if (train_in_one_launch(rt, x, x, nullptr, gamma, beta, out, static_cast<cl_int>(act), v)) return;
    statistics(rt, x, gamma, beta, mode::train);
    forward_activate(rt, x, out, act, v);
  }

  // The max pool in front of a batch norm trained with it (train_pool_forward_activate): windows of
  // size x size over image, whose channels are this batch norm's; argmax: where the pool keeps its
  // windows' arg-max for the backward pass.
  struct max_pool_input {
    conv_geometry image;
    std::size_t size = 0;
    device_buffer<std::uint8_t>* argmax = nullptr;
  };
  // fp32 training of max_pool (pooled = the pool of image) followed by train_forward_activate(pooled),
  // in one launch where it can.
  void train_pool_forward_activate(runtime& rt, const device_tensor<F>& image, const max_pool_input& pool,
                                   device_tensor<F>& pooled, const device_parameter<F>& gamma,
                                   const device_parameter<F>& beta, device_tensor<F>& out, fused_activation act,
                                   float v)
    requires(!is_fixed_v<F>)
  {
    pooled.resize(rt, image.rows(), image.cols() / (pool.size * pool.size));
    if (train_in_one_launch(rt, pooled, image, &pool, gamma, beta, out, static_cast<cl_int>(act), v)) return;
    sum_pending(rt, image);
    max_pool(rt, image.data, pool.image, pool.size, pooled.data, pool.argmax);
    train_forward_activate(rt, pooled, gamma, beta, out, act, v);
  }
  // Its backward pass: d holds the activation's dy (scratch: it may be overwritten), dimage (if any)
  // becomes the pool's input gradient; pooled is the pool's output of the forward pass.
  void pool_backward_through_activation(runtime& rt, const device_tensor<F>& pooled, const max_pool_input& pool,
                                        device_tensor<F>& d, device_tensor<F>* dimage, device_parameter<F>& gamma,
                                        device_parameter<F>& beta, fused_activation act)
    requires(!is_fixed_v<F>)
  {
    if (dimage) {
      dimage->resize(rt, pooled.rows(), pooled.cols() * pool.size * pool.size);
      if (backward_in_one_launch(rt, pooled, d, *dimage, &pool, gamma, beta, static_cast<cl_int>(act))) return;
    }
    sum_pending(rt, d);
    backward_through_activation(rt, pooled, d, gamma, beta, act, dimage != nullptr);
    if (dimage) max_pool_grad(rt, d.data, *pool.argmax, pool.image, pool.size, dimage->data);
  }

  // Fixed formats' training of this batch norm followed by the progressive activation: y (which the
  // activation's gradient reads) and out = clamp(v y, -1, 1) from one quantizing pass.
  void forward_progressive(runtime& rt, const device_tensor<F>& x, device_tensor<F>& y, device_tensor<F>& out, float v)
    requires(is_fixed_v<F>)
  {
    out.resize(rt, x.rows(), x.cols());
    const progressive_output<storage_t<F>> act{out.data, out.exp, v, format_traits<F>::unit_frac};
    sum_pending(rt, x);
    affine(rt, x, y, &act);
  }

  // sign(BN(x)) as +-1 by comparison against the thresholds of the last statistics.
  void threshold(runtime& rt, const device_tensor<F>& x, device_tensor<F>& out) {
    sum_pending(rt, x);
    out.resize(rt, x.rows(), x.cols());
    detail::launch(rt, program(rt), "bn_threshold", x.size(), x.data.handle(), detail::checked_count(x.size()),
                   detail::checked_count(channels_), tscale_.handle(), tshift_.handle(), out.data.handle(),
                   out.exp.handle());
  }

  // fp32 training of this batch norm followed by an activation (progressive: clamp(v y, -1, 1)) in
  // one pass, with the last statistics; y itself is not stored.
  void forward_activate(runtime& rt, const device_tensor<F>& x, device_tensor<F>& out, fused_activation act, float v)
    requires(!is_fixed_v<F>)
  {
    sum_pending(rt, x);
    out.resize(rt, x.rows(), x.cols());
    detail::launch(rt, program(rt), "bn_affine_activate", x.size(), x.data.handle(), detail::checked_count(x.size()),
                   detail::checked_count(channels_), scale_.handle(), shift_.handle(), static_cast<cl_int>(act), v,
                   out.data.handle());
  }
  // The backward pass of forward_activate (the activation's gradient: ReLU's, or straight-through
  // for sign and progressive): d holds the activation's dy and, if with_dx, becomes this layer's dx.
  void backward_through_activation(runtime& rt, const device_tensor<F>& x, device_tensor<F>& d,
                                   device_parameter<F>& gamma, device_parameter<F>& beta, fused_activation act,
                                   bool with_dx)
    requires(!is_fixed_v<F>)
  {
    if (with_dx && backward_in_one_launch(rt, x, d, d, nullptr, gamma, beta, static_cast<cl_int>(act))) return;
    sum_pending(rt, d);
    grad_params(rt, x, d, gamma, beta, static_cast<cl_int>(act), x);  // fp32 recomputes y: x stands in
    if (!with_dx) return;
    detail::launch(rt, program(rt), "bn_grad_input_through_activation", x.size(), x.data.handle(),
                   detail::checked_count(x.size()), detail::checked_count(channels_), gamma.value.handle(),
                   mean_.handle(), invstd_.handle(), static_cast<cl_int>(act), scale_.handle(), shift_.handle(),
                   gamma.grad.handle(), beta.grad.handle(), d.data.handle());
  }

  // Gradients of gamma and beta, and dx if asked (fixed formats: rounded stochastically from rnd).
  void backward(runtime& rt, const device_tensor<F>& x, const device_tensor<F>& dy, device_parameter<F>& gamma,
                device_parameter<F>& beta, device_tensor<F>* dx, stream rnd) {
    backward_of(rt, x, dy, gamma, beta, dx, rnd, nullptr);
  }
  // Fixed formats: the same where dy is the gradient of a straight-through activation of this
  // layer's output y, which passes it back where |y| <= 1 (that activation's backward pass, folded
  // in). dx may be dy.
  void backward_straight_through(runtime& rt, const device_tensor<F>& x, const device_tensor<F>& y,
                                 const device_tensor<F>& dy, device_parameter<F>& gamma, device_parameter<F>& beta,
                                 device_tensor<F>* dx, stream rnd)
    requires(is_fixed_v<F>)
  {
    backward_of(rt, x, dy, gamma, beta, dx, rnd, &y);
  }

 private:
  void backward_of(runtime& rt, const device_tensor<F>& x, const device_tensor<F>& dy, device_parameter<F>& gamma,
                   device_parameter<F>& beta, device_tensor<F>* dx, stream rnd, const device_tensor<F>* y) {
    if constexpr (!is_fixed_v<F>)
      if (dx && backward_in_one_launch(rt, x, dy, *dx, nullptr, gamma, beta, no_activation)) return;
    sum_pending(rt, dy);
    const device_tensor<F>& mask = y ? *y : x;  // read only with y
    grad_params(rt, x, dy, gamma, beta, y ? straight_through : no_activation, mask);
    device_buffer<float>& dgamma = gradient_output(gamma, dgamma_);
    device_buffer<float>& dbeta = gradient_output(beta, dbeta_);
    if (!dx) return;
    dx->resize(rt, x.rows(), x.cols());
    device_buffer<float>& out = real_output(rt, *dx, x.size());
    const maximum_reservation reserved = reserve(rt, *dx);
    const auto launch_grad_input = [&](const auto&... straight_through_args) {
      launch_elementwise(rt, "bn_grad_input", x.size(), reserved, *dx, x.data.handle(), x.exp.handle(),
                         dy.data.handle(), dy.exp.handle(), detail::checked_count(x.size()),
                         detail::checked_count(channels_), gamma.value.handle(), cl_int{gamma.exp}, mean_.handle(),
                         invstd_.handle(), dgamma.handle(), dbeta.handle(), straight_through_args..., out.handle());
    };
    if constexpr (is_fixed_v<F>) {
      launch_grad_input(mask.data.handle(), mask.exp.handle(), cl_int{y != nullptr});
      store(rt, *dx, format_traits<F>::error_rounding, rnd, reserved);
    } else {
      launch_grad_input();
    }
  }

  static const cl::Program& program(runtime& rt) {
    static const std::string options[2] = {
        fmt::format("-DTQ={} -DFIXED={} -DNVIDIA_PTX=0", detail::cl_storage_name<F>(), is_fixed_v<F> ? 1 : 0),
        fmt::format("-DTQ={} -DFIXED={} -DNVIDIA_PTX=1", detail::cl_storage_name<F>(), is_fixed_v<F> ? 1 : 0)};
    return rt.static_program(kernels::batch_norm_source, options[rt.nvidia()]);
  }

  void affine(runtime& rt, const device_tensor<F>& x, device_tensor<F>& y, const progressive_output<storage_t<F>>* act) {
    y.resize(rt, x.rows(), x.cols());
    device_buffer<float>& out = real_output(rt, y, x.size());
    const maximum_reservation reserved = reserve(rt, y);
    launch_elementwise(rt, "bn_affine", x.size(), reserved, y, x.data.handle(), detail::checked_count(x.size()),
                       detail::checked_count(channels_), scale_.handle(), shift_.handle(), out.handle());
    store(rt, y, rounding::nearest_even, stream{}, reserved, act);
  }

  // bn_grad_params' activation: none (dy is this layer's own output gradient), or, in fixed formats, a
  // straight-through one (fp32 passes the fused activation's code).
  static constexpr cl_int no_activation = -1, straight_through = 1;
  // dgamma and dbeta (activation >= 0: of the part of dy that fused activation passes back; fixed
  // formats read this layer's output y for it, fp32 does not read y).
  void grad_params(runtime& rt, const device_tensor<F>& x, const device_tensor<F>& dy, device_parameter<F>& gamma,
                   device_parameter<F>& beta, cl_int activation, const device_tensor<F>& y) {
    const std::size_t npos = positions(x);
    const std::size_t slices = slices_for(npos);
    if (grad_sums_.size() < 2 * slices * channels_) grad_sums_.resize(rt, 2 * slices * channels_);
    // fp32 writes the gradients in place; fixed formats quantize them from dgamma_ and dbeta_.
    device_buffer<float>& dgamma = gradient_output(gamma, dgamma_);
    device_buffer<float>& dbeta = gradient_output(beta, dbeta_);
    const auto launch_grad_params = [&](const auto&... output_args) {
      detail::launch_range(rt, program(rt), "bn_grad_params", groups(slices), tile(), x.data.handle(), x.exp.handle(),
                           dy.data.handle(), dy.exp.handle(), detail::checked_count(npos),
                           detail::checked_count(channels_), detail::checked_count(slices), mean_.handle(),
                           invstd_.handle(), activation, scale_.handle(), shift_.handle(), grad_sums_.handle(),
                           rt.counters(channel_tiles()), dgamma.handle(), dbeta.handle(), output_args...);
    };
    if constexpr (is_fixed_v<F>)
      launch_grad_params(y.data.handle(), y.exp.handle());
    else
      (void)y, launch_grad_params();
    store_gradients(rt, gamma, beta);
  }

  // The single-launch passes' slices of the positions per channel tile (0: two launches): about 2
  // positions per work-item, but at most as many groups as the device runs at once (a group may wait
  // for the others of its tile: runtime::resident_groups), and at most 8 positions per item (larger
  // tensors fill the device better in two launches).
  static constexpr std::size_t single_launch_rows = 32;  // BN_RW1 of the kernels
  std::size_t single_launch_slices(runtime& rt, std::size_t npos) const {
    if (!single_launch || npos == 0) return 0;
    const std::size_t resident = std::max<std::size_t>(1, rt.resident_groups() / channel_tiles());
    const std::size_t slices = std::min(resident, (npos + 2 * single_launch_rows - 1) / (2 * single_launch_rows));
    return npos <= slices * single_launch_rows * 8 ? slices : 0;
  }
  // pool: x is first written as the max pool of image (sized already), else image is x (unread).
  bool train_in_one_launch(runtime& rt, const device_tensor<F>& x, const device_tensor<F>& image,
                           const max_pool_input* pool, const device_parameter<F>& gamma,
                           const device_parameter<F>& beta, device_tensor<F>& out, cl_int activation, float v) {
    const std::size_t npos = positions(x), slices = single_launch_slices(rt, npos);
    if (slices == 0) return false;
    out.resize(rt, x.rows(), x.cols());
    if (pool) pool->argmax->resize(rt, x.size());
    if (sums_.size() < 2 * slices * channels_) sums_.resize(rt, 2 * slices * channels_);
    const cl::Buffer& argmax = pool ? pool->argmax->handle() : release_flags_.handle();  // unread without a pool
    const auto [pool_size, height, width] = pool_args(pool);
    const device_tensor<F>& source = pool ? image : x;  // what a product may have left unsummed
    detail::launch_range(rt, program(rt), "bn_train_forward", single_launch_groups(slices), single_launch_tile(),
                         x.data.handle(), detail::checked_count(npos), detail::checked_count(channels_),
                         detail::checked_count(slices), sums_.handle(), rt.counters(channel_tiles()),
                         release_flags_.handle(), next_release(), activation, v, out.data.handle(),
                         image.data.handle(), argmax, pool_size, height, width, parts(source), splits(source),
                         part_size(source), gamma.value.handle(), beta.value.handle(), cl_int{gamma.exp}, eps,
                         momentum, cl_int{0}, running_mean.handle(), running_var.handle(), mean_.handle(),
                         invstd_.handle(), scale_.handle(), shift_.handle(), tscale_.handle(), tshift_.handle());
    if (rt.profiling()) rt.label_last(fmt::format("bn_train_forward {}x{} /{}", npos, channels_, slices));
    if (!pool) x.pending.count = 0;  // written as the sum (a pooled image is not: it keeps its slices)
    return true;
  }
  // dx may be dy; pool: dx is the pool's input gradient (sized already).
  bool backward_in_one_launch(runtime& rt, const device_tensor<F>& x, const device_tensor<F>& dy,
                              device_tensor<F>& dx, const max_pool_input* pool, device_parameter<F>& gamma,
                              device_parameter<F>& beta, cl_int activation) {
    const std::size_t npos = positions(x), slices = single_launch_slices(rt, npos);
    if (slices == 0) return false;
    if (&dx != &dy && !pool) dx.resize(rt, x.rows(), x.cols());
    const auto [pool_size, height, width] = pool_args(pool);
    if (grad_sums_.size() < 2 * slices * channels_) grad_sums_.resize(rt, 2 * slices * channels_);
    detail::launch_range(rt, program(rt), "bn_train_backward", single_launch_groups(slices), single_launch_tile(),
                         x.data.handle(), dy.data.handle(), dx.data.handle(), detail::checked_count(npos),
                         detail::checked_count(channels_), detail::checked_count(slices), grad_sums_.handle(),
                         rt.counters(channel_tiles()), release_flags_.handle(), next_release(), mean_.handle(),
                         invstd_.handle(), activation, scale_.handle(), shift_.handle(), gamma.value.handle(),
                         gamma.grad.handle(), beta.grad.handle(),
                         pool ? pool->argmax->handle() : release_flags_.handle(),  // unread without a pool
                         pool_size, height, width, parts(dy), splits(dy), part_size(dy));
    dy.pending.count = 0;  // written as the sum
    if (rt.profiling()) rt.label_last(fmt::format("bn_train_backward {}x{} /{}", npos, channels_, slices));
    store_gradients(rt, gamma, beta);
    return true;
  }
  // The kernels' SPLIT_ARGS for a tensor that a product may have left unsummed (gemm.hpp).
  static const cl::Buffer& parts(const device_tensor<F>& t) {
    return t.pending.count ? t.pending.slices.handle() : t.data.handle();  // unread without slices
  }
  static cl_uint splits(const device_tensor<F>& t) { return detail::checked_count(t.pending.count); }
  static cl_uint part_size(const device_tensor<F>& t) { return detail::checked_count(t.size()); }
  // The kernels' pool, height, width (zeros: no pool).
  static std::array<cl_int, 3> pool_args(const max_pool_input* pool) {
    if (!pool) return {0, 0, 0};
    if (pool->size == 0 || pool->image.height % pool->size || pool->image.width % pool->size)
      throw std::invalid_argument(fmt::format("pbnn::opencl::batch_norm: {}x{} windows do not tile a {}x{} image",
                                              pool->size, pool->size, pool->image.height, pool->image.width));
    return {static_cast<cl_int>(pool->size), static_cast<cl_int>(pool->image.height),
            static_cast<cl_int>(pool->image.width)};
  }
  cl::NDRange single_launch_tile() const { return cl::NDRange(tile_channels, single_launch_rows); }
  cl::NDRange single_launch_groups(std::size_t slices) const {
    return cl::NDRange(channel_tiles() * tile_channels, slices * single_launch_rows);
  }
  // Each single launch releases its channel tiles' flags (release_flags_) with a number of its own.
  cl_int next_release() {
    release_ = release_ == std::numeric_limits<cl_int>::max() ? 1 : release_ + 1;
    return release_;
  }

  // Slices of the positions per channel tile: enough work-groups to fill a large GPU (about 1024),
  // each work-item summing at least 4 positions (more in flight than 16 each: a batch-8 step 3 %
  // faster on an H200, bench/RESULTS.md); one for small batches.
  std::size_t slices_for(std::size_t npos) const {
    const std::size_t by_work = npos / (tile_rows * 4), by_groups = std::max<std::size_t>(1, 1024 / channel_tiles());
    return std::max<std::size_t>(1, std::min(by_work, by_groups));
  }
  std::size_t channel_tiles() const { return (channels_ + tile_channels - 1) / tile_channels; }
  cl::NDRange tile() const { return cl::NDRange(tile_channels, tile_rows); }
  cl::NDRange groups(std::size_t slices) const { return cl::NDRange(channel_tiles() * tile_channels, slices * tile_rows); }
  static device_buffer<float>& gradient_output(device_parameter<F>& p, device_buffer<float>& scratch) {
    if constexpr (is_fixed_v<F>)
      return scratch;
    else
      return p.grad;
  }

  std::size_t positions(const device_tensor<F>& x) const {
    if (x.cols() % channels_)
      throw std::invalid_argument(fmt::format("pbnn::opencl::batch_norm: {} features are not a multiple of {} channels",
                                              x.cols(), channels_));
    return x.rows() * (x.cols() / channels_);
  }

  // Where the float results go: the tensor itself in fp32, a scratch to quantize from otherwise.
  device_buffer<float>& real_output(runtime& rt, device_tensor<F>& t, std::size_t n) {
    if constexpr (is_fixed_v<F>) {
      real_.resize(rt, n);
      return real_;
    } else {
      (void)rt;
      (void)n;
      return t.data;
    }
  }
  // Fixed formats: where the element-wise kernel that writes t's float values reduces their largest
  // magnitude for store (none in fp32).
  maximum_reservation reserve(runtime& rt, device_tensor<F>& t) {
    if constexpr (is_fixed_v<F>)
      return reserve_maximum(rt, t.size(), t.maxima);
    else
      return (void)rt, (void)t, maximum_reservation{};
  }
  // An element-wise kernel writing t's values (fixed formats: reducing their maximum as reserved).
  template <class... Args>
  void launch_elementwise(runtime& rt, const char* kernel, std::size_t n, maximum_reservation reserved,
                          device_tensor<F>& t, const Args&... args) {
    if constexpr (is_fixed_v<F>)
      detail::launch_range(rt, program(rt), kernel, detail::elementwise_range(n), cl::NDRange(elementwise_group),
                           args..., t.maxima.slots.handle(), reserved.slot, reserved.in_slot);
    else
      (void)reserved, (void)t, detail::launch(rt, program(rt), kernel, n, args...);
  }
  // fp32 results are in place already, exponent 0 (tensor.hpp).
  void store(runtime& rt, device_tensor<F>& t, rounding r, stream rnd, maximum_reservation reserved,
             const progressive_output<storage_t<F>>* act = nullptr) {
    if constexpr (is_fixed_v<F>)
      quantize_reserved(rt, real_, t.size(), t.data, t.exp, format_traits<F>::operand_max, r, rnd, t.maxima, reserved,
                        act);
    else
      (void)rt, (void)t, (void)r, (void)rnd, (void)reserved, (void)act;
  }
  // The CPU's store_float_grads: fp32 as is (written in place, exponent 0); fixed formats as int32
  // with one exponent (30 bits) per parameter.
  void store_gradients(runtime& rt, device_parameter<F>& gamma, device_parameter<F>& beta) {
    gamma.grad_factor = beta.grad_factor = 1.0f;
    if constexpr (is_fixed_v<F>) {
      for (auto* p : {&gamma, &beta})
        if (p->grad_exp.size() != 1) p->grad_exp.resize(rt, 1);
      quantize_pair_into<std::int32_t>(rt, {dgamma_, gamma.grad, gamma.grad_exp, stream{}},
                                       {dbeta_, beta.grad, beta.grad_exp, stream{}}, channels_, (1 << 30) - 1,
                                       rounding::nearest_even, maxima_);
    } else {
      (void)rt;
    }
  }

  std::size_t channels_;
  device_buffer<float> mean_, invstd_, scale_, shift_, tscale_, tshift_, real_;
  device_buffer<float> dgamma_, dbeta_;  // fixed formats: the gradients before quantization
  maximum_slots maxima_;  // fixed formats: of dgamma_ and dbeta_, where they are too many for one group
  device_buffer<std::conditional_t<is_fixed_v<F>, std::int64_t, float>> sums_;  // TSUM partials
  device_buffer<float> grad_sums_;
  device_buffer<cl_int> release_flags_;  // single launches: per channel tile, the last release's number
  cl_int release_ = 0;
};

}  // namespace pbnn::opencl
