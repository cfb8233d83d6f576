#pragma once
// Softmax cross-entropy on an OpenCL device (kernels/loss_cl.hpp): the error (softmax - onehot) / b
// stored in the format (fixed formats: quantized with stochastic rounding, as pbnn::softmax_cross_entropy
// does), the per-sample losses and the count of correct predictions left on the device until the
// caller reads them back (once per epoch, for example).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "pbnn/format.hpp"
#include "pbnn/opencl/cl_types.hpp"
#include "pbnn/opencl/kernels/loss_cl.hpp"
#include "pbnn/opencl/launch.hpp"
#include "pbnn/opencl/quantize.hpp"
#include "pbnn/opencl/tensor.hpp"

namespace pbnn::opencl {

struct loss_buffers {
  device_buffer<float> row_loss;          // one per sample of the last batch
  device_buffer<std::uint32_t> correct;   // accumulates until the caller clears it
  device_buffer<float> error;             // fixed formats: the real error before quantization
};

namespace detail {
template <class F>
const cl::Program& loss_program(runtime& rt) {
  static const std::string options[2] = {fmt::format("-DTQ={} -DNVIDIA_PTX=0", cl_storage_name<F>()),
                                         fmt::format("-DTQ={} -DNVIDIA_PTX=1", cl_storage_name<F>())};
  return rt.static_program(kernels::loss_source, options[rt.nvidia()]);
}
}  // namespace detail

// Where softmax_cross_entropy also writes the batch's summed loss: (*sums)[index] (none if null).
struct loss_sum_target {
  device_buffer<float>* sums = nullptr;
  std::size_t index = 0;
};

// The error into dlogits, the per-sample losses into out.row_loss, the count of correct predictions
// added to out.correct, and, where `sum` names a slot, the summed loss into it (the same launch).
template <class F>
void softmax_cross_entropy(runtime& rt, const device_tensor<F>& logits, const device_buffer<std::uint8_t>& labels,
                           device_tensor<F>& dlogits, loss_buffers& out, stream rnd, loss_sum_target sum = {}) {
  const std::size_t b = logits.rows(), k = logits.cols();
  if (labels.size() < b) throw std::invalid_argument("pbnn::opencl::softmax_cross_entropy: fewer labels than samples");
  if (sum.sums && sum.index >= sum.sums->size())
    throw std::invalid_argument(fmt::format("pbnn::opencl::softmax_cross_entropy: loss slot {} past the {} slots",
                                            sum.index, sum.sums->size()));
  dlogits.resize(rt, b, k);
  out.row_loss.resize(rt, b);
  ensure_zeroed(rt, out.correct, 1, "clearing the correct count");
  device_buffer<float>* d = nullptr;
  if constexpr (is_fixed_v<F>) {
    out.error.resize(rt, b * k);
    d = &out.error;
  } else {
    d = &dlogits.data;  // fp32: the error is dlogits itself, exponent 0
  }
  constexpr std::size_t group = 64;
  detail::launch_range(rt, detail::loss_program<F>(rt), "softmax_cross_entropy",
                       cl::NDRange(std::max<std::size_t>(1, (b + group - 1) / group) * group), cl::NDRange(group),
                       logits.data.handle(), logits.exp.handle(), detail::checked_count(b), detail::checked_count(k),
                       labels.handle(), d->handle(), out.row_loss.handle(), out.correct.handle(),
                       cl_int{sum.sums != nullptr}, sum.sums ? sum.sums->handle() : out.row_loss.handle(),
                       detail::checked_count(sum.index), rt.counters(1));
  if constexpr (is_fixed_v<F>) quantize_dynamic(rt, out.error, dlogits, format_traits<F>::error_rounding, rnd);
}

// correct += the rows of logits whose first largest value is their label (pbnn::predicted_class).
template <class F>
void count_correct(runtime& rt, const device_tensor<F>& logits, const device_buffer<std::uint8_t>& labels,
                   device_buffer<std::uint32_t>& correct) {
  const std::size_t b = logits.rows();
  if (labels.size() < b) throw std::invalid_argument("pbnn::opencl::count_correct: fewer labels than samples");
  detail::launch(rt, detail::loss_program<F>(rt), "count_correct", b, logits.data.handle(), detail::checked_count(b),
                 detail::checked_count(logits.cols()), labels.handle(), correct.handle());
}

}  // namespace pbnn::opencl
