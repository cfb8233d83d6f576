#pragma once
// The fixed formats' per-tensor quantization on an OpenCL device, bit for bit as the CPU backend's
// quantize_dynamic and requantize_dynamic (pbnn/quantize.hpp), given the same stream: the
// largest magnitude is reduced on the device and the exponent written there (device_tensor::exp).
// Each call enqueues three commands and waits for none.
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

template <class Int>
const cl::Program& quantize_program(runtime& rt) {
  static_assert(std::is_integral_v<Int>, "pbnn::opencl: quantizing into int8, int16 or int32");
  static const std::string source = kernels::with_random(kernels::quantize_source);
  static const std::string options = fmt::format("-DTQ={}", cl_type_name<Int>());
  return rt.program(source, options);
}

// Zeroes scratch, then reduces max |x| of n values into it.
template <class T, class Int>
void enqueue_max_abs(runtime& rt, const device_buffer<T>& x, std::size_t n, device_buffer<std::uint32_t>& scratch) {
  const cl_uint zero = 0;
  check(rt.queue().enqueueFillBuffer(scratch.handle(), zero, 0, sizeof(cl_uint)), "clearing a maximum");
  // Enough groups to fill a device, each work-item striding over the rest.
  const std::size_t groups = std::clamp<std::size_t>((n + reduction_group - 1) / reduction_group, 1, 1024);
  launch_range(rt, quantize_program<Int>(rt), std::is_same_v<T, float> ? "max_abs_float" : "max_abs_int",
               cl::NDRange(groups * reduction_group), cl::NDRange(reduction_group), x.handle(), checked_count(n),
               scratch.handle());
}

}  // namespace detail

// out = the exponent sum (one int), on the device.
inline void sum_exponents(runtime& rt, const exponent_sum& e, device_buffer<int>& out) {
  if (!e.a) throw std::invalid_argument("pbnn::opencl::sum_exponents: no exponent source");
  out.resize(rt, 1);
  detail::launch(rt, detail::quantize_program<std::int8_t>(rt), "sum_exponents", 1, e.a->handle(),
                 (e.b ? e.b : e.a)->handle(), cl_int{e.b != nullptr}, cl_int{e.constant}, out.handle());
}

// dst[0, n) = src quantized into Int with the exponent (written to exp) that maps the largest
// magnitude to at most qmax (pbnn::quantize_dynamic); max_scratch holds one uint.
template <class Int>
void quantize_into(runtime& rt, const device_buffer<float>& src, std::size_t n, device_buffer<Int>& dst,
                   device_buffer<int>& exp, std::int32_t qmax, rounding mode, stream rnd,
                   device_buffer<std::uint32_t>& max_scratch) {
  if (src.size() < n || dst.size() < n || exp.size() != 1)
    throw std::invalid_argument("pbnn::opencl::quantize_into: buffers smaller than the count");
  max_scratch.resize(rt, 1);
  detail::enqueue_max_abs<float, Int>(rt, src, n, max_scratch);
  detail::launch(rt, detail::quantize_program<Int>(rt), "quantize", n, src.handle(), detail::checked_count(n),
                 max_scratch.handle(), dst.handle(), exp.handle(), cl_int{qmax}, static_cast<cl_uint>(rnd.key),
                 cl_int{mode == rounding::stochastic});
}

// dst (already sized to n = dst.size()) = src quantized with the exponent that maps its largest
// magnitude to at most the format's operand_max (pbnn::quantize_dynamic).
template <class Format>
void quantize_dynamic(runtime& rt, const device_buffer<float>& src, device_tensor<Format>& dst, rounding mode,
                      stream rnd) {
  quantize_into(rt, src, dst.size(), dst.data, dst.exp, format_traits<Format>::operand_max, mode, rnd, dst.max_scratch);
}

// dst (already sized to n = dst.size()) = int32 sums acc, of exponent `exponent`, requantized with the
// smallest right shift that fits the format's operand_max (pbnn::requantize_dynamic).
template <class Format>
void requantize_dynamic(runtime& rt, const device_buffer<std::int32_t>& acc, const exponent_sum& exponent,
                        device_tensor<Format>& dst, rounding mode, stream rnd) {
  using Int = storage_t<Format>;
  const std::size_t n = dst.size();
  if (acc.size() < n) throw std::invalid_argument("pbnn::opencl::requantize_dynamic: the sums are fewer than the tensor");
  if (!exponent.a) throw std::invalid_argument("pbnn::opencl::requantize_dynamic: the sums' exponent has no source");
  detail::enqueue_max_abs<std::int32_t, Int>(rt, acc, n, dst.max_scratch);
  // Without a second exponent source the kernel does not read exp_b: any valid buffer will do.
  detail::launch(rt, detail::quantize_program<Int>(rt), "requantize", n, acc.handle(), detail::checked_count(n),
                 exponent.a->handle(), (exponent.b ? exponent.b : exponent.a)->handle(), cl_int{exponent.b != nullptr},
                 cl_int{exponent.constant}, dst.max_scratch.handle(), dst.data.handle(), dst.exp.handle(),
                 cl_int{format_traits<Format>::operand_max}, static_cast<cl_uint>(rnd.key),
                 cl_int{mode == rounding::stochastic});
}

}  // namespace pbnn::opencl
