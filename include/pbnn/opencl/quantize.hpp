#pragma once
// The fixed formats' per-tensor quantization on an OpenCL device, bit for bit as the CPU backend's
// quantize_dynamic and requantize_dynamic (pbnn/quantize.hpp), given the same stream: the
// largest magnitude is reduced on the device and the exponent written there (device_tensor::exp).
// A small tensor takes one launch (one work-group finds its maximum and quantizes it), a larger one
// two (the maximum over the device, then the quantization); none waits.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <fmt/format.h>

#include "pbnn/format.hpp"
#include "pbnn/opencl/cl_types.hpp"
#include "pbnn/opencl/kernels/quantize_cl.hpp"
#include "pbnn/opencl/kernels/random_cl.hpp"
#include "pbnn/opencl/launch.hpp"
#include "pbnn/opencl/tensor.hpp"
#include "pbnn/random.hpp"

namespace pbnn::opencl {

// Where an int32 sum's exponent comes from: exp of a, plus exp of b (if any), plus a constant
// (x.exp + theta_exp for a layer's product, for example).
struct exponent_sum {
  const device_buffer<int>* a = nullptr;
  const device_buffer<int>* b = nullptr;
  int constant = 0;
};

namespace detail {

inline constexpr std::size_t reduction_group = 256;  // RED_WG of quantize_cl.hpp
// Tensors up to this size are quantized by one work-group in one launch: at this size the launch
// saved costs more than the parallelism given up.
inline constexpr std::size_t one_group_limit = 16384;

template <class Int>
const cl::Program& quantize_program(runtime& rt) {
  static_assert(std::is_integral_v<Int>, "pbnn::opencl: quantizing into int8, int16 or int32");
  static const std::string source = kernels::with_random(kernels::quantize_source);
  static const std::string options = fmt::format("-DTQ={}", cl_type_name<Int>());
  return rt.static_program(source, options);
}

// Reduces max |x| of n values into maxima[slot].
template <class T, class Int>
void enqueue_max_abs(runtime& rt, const device_buffer<T>& x, std::size_t n, const device_buffer<std::uint32_t>& maxima,
                     cl_uint slot) {
  // Enough groups to fill a device, each work-item striding over the rest.
  const std::size_t groups = std::clamp<std::size_t>((n + reduction_group - 1) / reduction_group, 1, 1024);
  launch_range(rt, quantize_program<Int>(rt), std::is_same_v<T, float> ? "max_abs_float" : "max_abs_int",
               cl::NDRange(groups * reduction_group), cl::NDRange(reduction_group), x.handle(), checked_count(n),
               maxima.handle(), slot);
}

}  // namespace detail

// out = the exponent sum (one int), on the device.
inline void sum_exponents(runtime& rt, const exponent_sum& e, device_buffer<int>& out) {
  if (!e.a) throw std::invalid_argument("pbnn::opencl::sum_exponents: no exponent source");
  out.resize(rt, 1);
  detail::launch(rt, detail::quantize_program<std::int8_t>(rt), "sum_exponents", 1, e.a->handle(),
                 (e.b ? e.b : e.a)->handle(), cl_int{e.b != nullptr}, cl_int{e.constant}, out.handle());
}

// Where the largest magnitude of a tensor of n values, quantized next, is reduced: for a tensor
// quantized in two launches (n > one_group_limit), a slot of its maxima (see maximum_slots), which
// maxima leaves for the next quantization; none for a smaller one, which its one launch reduces.
struct maximum_reservation {
  cl_uint slot = 0;
  cl_int in_slot = 0;
};
inline maximum_reservation reserve_maximum(runtime& rt, std::size_t n, maximum_slots& maxima) {
  if (n <= detail::one_group_limit) return {};
  maxima.ensure(rt);
  const cl_uint slot = maxima.current;
  maxima.current ^= 1u;
  return {slot, 1};
}
// Where the kernel that writes the sums should reduce their largest magnitude for a reservation
// (none where the quantization reduces it itself).
inline maximum_target tracked_maximum(const maximum_slots& maxima, maximum_reservation reserved) {
  if (!reserved.in_slot) return {};
  return {&maxima.slots, reserved.slot};
}

// The progressive activation of a tensor as it is quantized: theta = clamp(v q 2^e, -1, 1) of its
// values q 2^e, n values of the format's storage in units of 2^-unit_frac (binarize.hpp's
// clamp_scale of the quantized tensor, in the same pass).
template <class Int>
struct progressive_output {
  device_buffer<Int>& theta;
  device_buffer<int>& exp;
  float v;
  int unit_frac;
};

// One tensor to quantize into Int: n values of src into dst, exponent into exp, rounded with rnd.
template <class Int>
struct quantize_target {
  const device_buffer<float>& src;
  device_buffer<Int>& dst;
  device_buffer<int>& exp;
  stream rnd;
};

namespace detail {
// The kernels' trailing activation arguments: act's, or none (the destination stands in, unread).
template <class Int>
struct activation_args {
  activation_args(const device_buffer<Int>& dst, const device_buffer<int>& exp, const progressive_output<Int>* act)
      : theta(act ? act->theta.handle() : dst.handle()), theta_exp(act ? act->exp.handle() : exp.handle()),
        v(act ? act->v : 0.0f), unit_frac(act ? act->unit_frac : 0), activate(act != nullptr) {}
  const cl::Buffer &theta, &theta_exp;
  float v;
  cl_int unit_frac, activate;
};

// quantize_small over n values of a (with act, if any) and, if given, of second: one work-group each.
template <class Int>
void enqueue_quantize_small(runtime& rt, const quantize_target<Int>& a, const quantize_target<Int>* second,
                            std::size_t n, std::int32_t qmax, rounding mode, const progressive_output<Int>* act) {
  const quantize_target<Int>& b = second ? *second : a;  // without a second group, never read
  const activation_args<Int> args(a.dst, a.exp, act);
  const auto count = checked_count(n);
  launch_range(rt, quantize_program<Int>(rt), "quantize_small", cl::NDRange((second ? 2 : 1) * reduction_group),
               cl::NDRange(reduction_group), a.src.handle(), count, a.dst.handle(), a.exp.handle(),
               static_cast<cl_uint>(a.rnd.key), b.src.handle(), count, b.dst.handle(), b.exp.handle(),
               static_cast<cl_uint>(b.rnd.key), cl_int{qmax}, cl_int{mode == rounding::stochastic}, args.theta,
               args.theta_exp, args.v, args.unit_frac, args.activate);
}
}  // namespace detail

// quantize_into where the kernel that wrote src has already reduced max |src| as reserved (the
// slot's maximum must be complete; a reservation without a slot reduces here); with act, the
// progressive activation of the result too.
template <class Int>
void quantize_reserved(runtime& rt, const device_buffer<float>& src, std::size_t n, device_buffer<Int>& dst,
                       device_buffer<int>& exp, std::int32_t qmax, rounding mode, stream rnd,
                       const maximum_slots& maxima, maximum_reservation reserved,
                       const progressive_output<Int>* act = nullptr) {
  if (src.size() < n || dst.size() < n || exp.size() != 1 || (act && (act->theta.size() < n || act->exp.size() != 1)))
    throw std::invalid_argument("pbnn::opencl::quantize_into: buffers smaller than the count");
  if (!reserved.in_slot)
    return detail::enqueue_quantize_small<Int>(rt, {src, dst, exp, rnd}, nullptr, n, qmax, mode, act);
  const detail::activation_args<Int> a(dst, exp, act);
  detail::launch(rt, detail::quantize_program<Int>(rt), "quantize", n, src.handle(), detail::checked_count(n),
                 maxima.slots.handle(), reserved.slot, dst.handle(), exp.handle(), cl_int{qmax},
                 static_cast<cl_uint>(rnd.key), cl_int{mode == rounding::stochastic}, a.theta, a.theta_exp, a.v,
                 a.unit_frac, a.activate);
}

// dst[0, n) = src quantized into Int with the exponent (written to exp) that maps the largest
// magnitude to at most qmax (pbnn::quantize_dynamic); maxima: the destination's (maximum_slots).
template <class Int>
void quantize_into(runtime& rt, const device_buffer<float>& src, std::size_t n, device_buffer<Int>& dst,
                   device_buffer<int>& exp, std::int32_t qmax, rounding mode, stream rnd, maximum_slots& maxima) {
  if (src.size() < n || dst.size() < n || exp.size() != 1)
    throw std::invalid_argument("pbnn::opencl::quantize_into: buffers smaller than the count");
  const maximum_reservation reserved = reserve_maximum(rt, n, maxima);
  if (reserved.in_slot) detail::enqueue_max_abs<float, Int>(rt, src, n, maxima.slots, reserved.slot);
  quantize_reserved(rt, src, n, dst, exp, qmax, mode, rnd, maxima, reserved);
}

// quantize_into for two tensors of n values each, in one launch where they are small (a batch
// norm's two parameter gradients).
template <class Int>
void quantize_pair_into(runtime& rt, const quantize_target<Int>& a, const quantize_target<Int>& b, std::size_t n,
                        std::int32_t qmax, rounding mode, maximum_slots& maxima) {
  if (n > detail::one_group_limit) {
    quantize_into(rt, a.src, n, a.dst, a.exp, qmax, mode, a.rnd, maxima);
    quantize_into(rt, b.src, n, b.dst, b.exp, qmax, mode, b.rnd, maxima);
    return;
  }
  for (const auto* t : {&a, &b})
    if (t->src.size() < n || t->dst.size() < n || t->exp.size() != 1)
      throw std::invalid_argument("pbnn::opencl::quantize_pair_into: buffers smaller than the count");
  detail::enqueue_quantize_small<Int>(rt, a, &b, n, qmax, mode, nullptr);
}

// dst (already sized to n = dst.size()) = src quantized with the exponent that maps its largest
// magnitude to at most the format's operand_max (pbnn::quantize_dynamic).
template <class Format>
void quantize_dynamic(runtime& rt, const device_buffer<float>& src, device_tensor<Format>& dst, rounding mode,
                      stream rnd) {
  quantize_into(rt, src, dst.size(), dst.data, dst.exp, format_traits<Format>::operand_max, mode, rnd, dst.maxima);
}

// requantize_dynamic where the kernel that wrote the sums reduced their largest magnitude into
// tracked_maximum(dst.maxima, reserved), reserved = reserve_maximum(rt, dst.size(), dst.maxima).
template <class Format>
void requantize_reserved(runtime& rt, const device_buffer<std::int32_t>& acc, const exponent_sum& exponent,
                         device_tensor<Format>& dst, rounding mode, stream rnd, maximum_reservation reserved) {
  using Int = storage_t<Format>;
  const std::size_t n = dst.size();
  if (acc.size() < n)
    throw std::invalid_argument(
        fmt::format("pbnn::opencl: requantizing a tensor of {} values from {} int32 sums: too few sums", n, acc.size()));
  if (!exponent.a) throw std::invalid_argument("pbnn::opencl: requantizing int32 sums whose exponent has no source");
  // Without a second exponent source the kernels do not read exp_b: any valid buffer will do.
  const auto& exp_b = exponent.b ? *exponent.b : *exponent.a;
  const cl_int use_b = exponent.b != nullptr, qmax = format_traits<Format>::operand_max;
  const cl_int stochastic = mode == rounding::stochastic;
  const auto key = static_cast<cl_uint>(rnd.key);
  if (!reserved.in_slot) {
    detail::launch_range(rt, detail::quantize_program<Int>(rt), "requantize_small", cl::NDRange(detail::reduction_group),
                         cl::NDRange(detail::reduction_group), acc.handle(), detail::checked_count(n),
                         exponent.a->handle(), exp_b.handle(), use_b, cl_int{exponent.constant}, dst.data.handle(),
                         dst.exp.handle(), qmax, key, stochastic);
    return;
  }
  detail::launch(rt, detail::quantize_program<Int>(rt), "requantize", n, acc.handle(), detail::checked_count(n),
                 exponent.a->handle(), exp_b.handle(), use_b, cl_int{exponent.constant}, dst.maxima.slots.handle(),
                 reserved.slot, dst.data.handle(), dst.exp.handle(), qmax, key, stochastic);
}

// dst (already sized to n = dst.size()) = int32 sums acc, of exponent `exponent`, requantized with the
// smallest right shift that fits the format's operand_max (pbnn::requantize_dynamic).
template <class Format>
void requantize_dynamic(runtime& rt, const device_buffer<std::int32_t>& acc, const exponent_sum& exponent,
                        device_tensor<Format>& dst, rounding mode, stream rnd) {
  const maximum_reservation reserved = reserve_maximum(rt, dst.size(), dst.maxima);
  if (reserved.in_slot && acc.size() >= dst.size())
    detail::enqueue_max_abs<std::int32_t, storage_t<Format>>(rt, acc, dst.size(), dst.maxima.slots, reserved.slot);
  requantize_reserved(rt, acc, exponent, dst, mode, rnd, reserved);
}

}  // namespace pbnn::opencl
