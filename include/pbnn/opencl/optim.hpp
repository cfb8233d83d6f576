#pragma once
// Adam and SGD with momentum on an OpenCL device, with the CPU optimizers' hyper-parameters
// (pbnn::adam, pbnn::sgd) and the same update (kernels/optim_cl.hpp). The state is fp32 device
// buffers beside the parameter; saturation events accumulate in a device counter. Each update
// enqueues one kernel and waits for none.
#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "pbnn/opencl/cl_types.hpp"
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
  return rt.program(source, correctly_rounded_divide_sqrt(rt) ? rounded : options);
}

template <class F>
cl_int param_max() {
  if constexpr (is_fixed_v<F>) return format_traits<F>::param_max;
  else return 0;
}

}  // namespace detail

// One Adam step (the step-th) of p with moments m and v (sized and zeroed on first use).
template <class F>
void adam_update(runtime& rt, const adam& opt, device_parameter<F>& p, device_buffer<float>& m, device_buffer<float>& v,
                 long step, stream rnd, device_buffer<std::uint32_t>& saturation) {
  const std::size_t n = p.size();
  ensure_zeroed(rt, m, n, "clearing Adam's first moments");
  ensure_zeroed(rt, v, n, "clearing Adam's second moments");
  ensure_zeroed(rt, saturation, 1, "clearing the saturation counter");
  const auto [step_size, rc2] = opt.coefficients(p.role, step);
  detail::launch(rt, detail::optim_program<F>(rt), "adam", n, p.value.handle(), cl_int{p.exp}, m.handle(), v.handle(),
                 p.grad.handle(), p.grad_exp.handle(), p.grad_factor, detail::checked_count(n), opt.beta1, opt.beta2,
                 step_size, rc2, opt.eps, update_bound(p.role), detail::param_max<F>(),
                 static_cast<cl_uint>(rnd.key), cl_int{p.role != param_role::binarized}, saturation.handle());
}

// One SGD step of p with its velocity (sized and zeroed on first use).
template <class F>
void sgd_update(runtime& rt, const sgd& opt, device_parameter<F>& p, device_buffer<float>& velocity, stream rnd,
                device_buffer<std::uint32_t>& saturation) {
  const std::size_t n = p.size();
  ensure_zeroed(rt, velocity, n, "clearing the velocity");
  ensure_zeroed(rt, saturation, 1, "clearing the saturation counter");
  detail::launch(rt, detail::optim_program<F>(rt), "sgd", n, p.value.handle(), cl_int{p.exp}, velocity.handle(),
                 p.grad.handle(), p.grad_exp.handle(), p.grad_factor, detail::checked_count(n), opt.momentum,
                 opt.rate(p.role), update_bound(p.role), detail::param_max<F>(), static_cast<cl_uint>(rnd.key),
                 cl_int{p.role != param_role::binarized}, saturation.handle());
}

}  // namespace pbnn::opencl
