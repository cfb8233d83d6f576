#pragma once
// Adam and SGD with momentum on an OpenCL device, with the CPU optimizers' hyper-parameters
// (pbnn::adam, pbnn::sgd) and the same update (kernels/optim_cl.hpp). The state is fp32 device
// buffers beside the parameter; saturation events accumulate in a device counter. Each update
// enqueues one kernel and waits for none; adam_update_all updates many parameters per launch.
#include <algorithm>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "pbnn/opencl/binarize.hpp"
#include "pbnn/opencl/cl_types.hpp"
#include "pbnn/opencl/gemm.hpp"
#include "pbnn/opencl/kernels/optim_cl.hpp"
#include "pbnn/opencl/kernels/random_cl.hpp"
#include "pbnn/opencl/launch.hpp"
#include "pbnn/opencl/parameter.hpp"
#include "pbnn/optim.hpp"

namespace pbnn::opencl {

namespace detail {

// Whether the device rounds division and square root correctly when asked (OpenCL allows 2.5 and 3
// ulp otherwise; the CPU's are correctly rounded). Asked once per runtime.
inline bool correctly_rounded_divide_sqrt(runtime& rt) {
  return rt.probe("correctly rounded divide and sqrt", [&] {
    cl_device_fp_config config = 0;
    rt.device().device.getInfo(CL_DEVICE_SINGLE_FP_CONFIG, &config);
    return (config & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0;
  });
}

template <class F>
const cl::Program& optim_program(runtime& rt) {
  static const std::string source = kernels::with_random(kernels::optim_source);
  static const std::string options = fmt::format("-DTQ={} -DTG={} -DFIXED={}", cl_storage_name<F>(),
                                                 is_fixed_v<F> ? "int" : "float", is_fixed_v<F> ? 1 : 0);
  static const std::string rounded = options + " -cl-fp32-correctly-rounded-divide-sqrt";
  return rt.static_program(source, correctly_rounded_divide_sqrt(rt) ? rounded : options);
}

// adam_group over `segments` parameters; its source generated once per count (not every step).
template <class F>
const cl::Program& adam_group_program(runtime& rt, std::size_t segments) {
  const std::string& source =
      cached_options(segments, [&] { return kernels::with_random(kernels::adam_group_source(segments).c_str()); });
  static const std::string options = []() -> std::string {
    const std::string base = fmt::format("-DTQ={} -DTG={} -DFIXED={}", cl_storage_name<F>(),
                                         is_fixed_v<F> ? "int" : "float", is_fixed_v<F> ? 1 : 0);
    if constexpr (is_fixed_v<F>) return fmt::format("{} -DUNIT_FRAC={}", base, format_traits<F>::unit_frac);
    else return base;
  }();
  static const std::string rounded = options + " -cl-fp32-correctly-rounded-divide-sqrt";
  return rt.program(source, correctly_rounded_divide_sqrt(rt) ? rounded : options);  // source: per thread
}

template <class F>
cl_int param_max() {
  if constexpr (is_fixed_v<F>) return format_traits<F>::param_max;
  else return 0;
}

}  // namespace detail

// p's gradient written into p.grad where its product left it as slices (device_parameter::grad_pending).
template <class F>
void sum_pending_grad(runtime& rt, device_parameter<F>& p) {
  detail::add_slices(rt, p.grad_pending, p.size(), p.grad);
}

// Updates that change p one parameter at a time: the work a layer left to the update
// (device_parameter::defer_to_update) done first, its gradient's slices added and a progressive
// layer's mask applied; theta no longer matches.
template <class F>
void apply_deferred_work(runtime& rt, device_parameter<F>& p) {
  sum_pending_grad(rt, p);
  if (p.deferred_v > 0) mask_saturated_values<F>(rt, p.value, p.exp, p.size(), p.deferred_v, p.grad);
  p.deferred_v = 0;
  p.deferred_theta = nullptr;
  p.deferred_theta_exp = nullptr;
  p.theta_v = 0;
}

// One Adam step (the step-th) of p with moments m and v (sized and zeroed on first use).
template <class F>
void adam_update(runtime& rt, const adam& opt, device_parameter<F>& p, device_buffer<float>& m, device_buffer<float>& v,
                 long step, stream rnd, device_buffer<std::uint32_t>& saturation) {
  const std::size_t n = p.size();
  ensure_zeroed(rt, m, n, "clearing Adam's first moments");
  ensure_zeroed(rt, v, n, "clearing Adam's second moments");
  ensure_zeroed(rt, saturation, 1, "clearing the saturation counter");
  apply_deferred_work(rt, p);
  const auto [step_size, rc2] = opt.coefficients(p.role, step);
  detail::launch(rt, detail::optim_program<F>(rt), "adam", n, p.value.handle(), cl_int{p.exp}, m.handle(), v.handle(),
                 p.grad.handle(), p.grad_exp.handle(), p.grad_factor, detail::checked_count(n), opt.beta1, opt.beta2,
                 step_size, rc2, opt.eps, update_bound(p.role), detail::param_max<F>(),
                 static_cast<cl_uint>(rnd.key), cl_int{p.role != param_role::binarized}, saturation.handle());
}

// A parameter, its Adam moments and its stream (fixed formats round with it), for adam_update_all.
template <class F>
struct adam_slot {
  device_parameter<F>* param;
  device_buffer<float>* m;
  device_buffer<float>* v;
  stream rnd;
};

// How many parameters one adam_group launch takes: as many as the device's kernel-argument space
// holds (1024 bytes at least: 9), at most max_segments (0: no other limit).
inline std::size_t adam_segments_per_launch(runtime& rt, std::size_t max_segments = 0) {
  const std::size_t space = rt.device().device.getInfo<CL_DEVICE_MAX_PARAMETER_SIZE>();
  const std::size_t fits = (space - kernels::adam_group_common_bytes) / kernels::adam_group_segment_bytes;
  const std::size_t n = std::min(fits, kernels::adam_group_max_segments);
  return std::max<std::size_t>(1, max_segments ? std::min(n, max_segments) : n);
}

// One Adam step (the step-th) of every parameter of `slots`, as adam_update on each, in one launch per
// adam_segments_per_launch(rt, max_segments) parameters instead of one per parameter: at small
// batches the network's dozens of small per-parameter launches cost more than their arithmetic.
// Progressive weights that left their gradient's mask to the update also get their theta for v
// (device_parameter::defer_to_update), which spares their layers two launches per step.
template <class F>
void adam_update_all(runtime& rt, const adam& opt, std::span<const adam_slot<F>> slots, long step,
                     device_buffer<std::uint32_t>& saturation, std::size_t max_segments = 0) {
  ensure_zeroed(rt, saturation, 1, "clearing the saturation counter");
  const std::size_t per_launch = adam_segments_per_launch(rt, max_segments);
  for (std::size_t first = 0; first < slots.size(); first += per_launch) {
    const auto group = slots.subspan(first, std::min(per_launch, slots.size() - first));
    cl::Kernel& k = rt.kernel(detail::adam_group_program<F>(rt, group.size()), "adam_group");
    cl_uint index = 0;
    const auto set = [&](const auto& value) {
      if (const cl_int err = k.setArg(index, value); err != CL_SUCCESS)
        check(err, fmt::format("setting argument {} of adam_group", index));
      ++index;
    };
    set(opt.beta1), set(opt.beta2), set(opt.coefficients(param_role::real, step).rc2), set(opt.eps);
    set(detail::param_max<F>()), set(saturation.handle());
    std::size_t start = 0;
    for (const adam_slot<F>& s : group) {
      device_parameter<F>& p = *s.param;
      const std::size_t n = p.size();
      ensure_zeroed(rt, *s.m, n, "clearing Adam's first moments");
      ensure_zeroed(rt, *s.v, n, "clearing Adam's second moments");
      // Each parameter starts at a whole work-group, so that a group's work-items share a parameter;
      // fp32 takes four elements per work-item.
      const std::size_t items = is_fixed_v<F> ? n : (n + 3) / 4;
      const std::size_t end = start + (items + 255) / 256 * 256;
      const bool progressive = p.deferred_v > 0;  // mask and theta left to this update
      const std::size_t splits = p.grad_pending.count;  // the gradient's slices left to this update
      if (splits && p.grad_pending.slices.size() != splits * n)
        throw std::logic_error(fmt::format("pbnn::opencl::adam_update_all: {} gradient slices of {} values for {}",
                                           splits, p.grad_pending.slices.size(), n));
      set(p.value.handle()), set(s.m->handle()), set(s.v->handle());
      set(splits ? p.grad_pending.slices.handle() : p.grad.handle()), set(detail::checked_count(splits));
      set(p.grad_exp.handle());
      set(progressive ? p.deferred_theta->handle() : p.value.handle());
      set(progressive ? p.deferred_theta_exp->handle() : p.grad_exp.handle());
      set(detail::checked_count(start)), set(detail::checked_count(end)), set(detail::checked_count(n));
      set(cl_int{p.exp}), set(p.grad_factor), set(opt.coefficients(p.role, step).step_size);
      set(update_bound(p.role)), set(progressive ? 1.0f / p.deferred_v : 0.0f);
      set(progressive ? p.deferred_v : 0.0f), set(static_cast<cl_uint>(s.rnd.key));
      set(cl_int{p.role != param_role::binarized});
      p.theta_v = p.deferred_v;
      p.deferred_v = 0;
      p.deferred_theta = nullptr;
      p.deferred_theta_exp = nullptr;
      start = end;
    }
    if (start == 0) continue;
    cl::Event done;
    const cl_int err = rt.queue().enqueueNDRangeKernel(k, cl::NullRange, cl::NDRange(start), cl::NDRange(256), nullptr,
                                                       rt.profiling() ? &done : nullptr);
    if (err != CL_SUCCESS) check(err, "enqueueing adam_group");
    if (rt.profiling()) rt.record("adam_group", std::move(done));
  }
}

// One SGD step of p with its velocity (sized and zeroed on first use).
template <class F>
void sgd_update(runtime& rt, const sgd& opt, device_parameter<F>& p, device_buffer<float>& velocity, stream rnd,
                device_buffer<std::uint32_t>& saturation) {
  const std::size_t n = p.size();
  ensure_zeroed(rt, velocity, n, "clearing the velocity");
  ensure_zeroed(rt, saturation, 1, "clearing the saturation counter");
  apply_deferred_work(rt, p);
  detail::launch(rt, detail::optim_program<F>(rt), "sgd", n, p.value.handle(), cl_int{p.exp}, velocity.handle(),
                 p.grad.handle(), p.grad_exp.handle(), p.grad_factor, detail::checked_count(n), opt.momentum,
                 opt.rate(p.role), update_bound(p.role), detail::param_max<F>(), static_cast<cl_uint>(rnd.key),
                 cl_int{p.role != param_role::binarized}, saturation.handle());
}

}  // namespace pbnn::opencl
