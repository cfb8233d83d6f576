#pragma once
// Softmax cross-entropy on an OpenCL device (kernels/loss_cl.hpp): the error (softmax - onehot) / b
// stored in the format (fixed formats: quantized with stochastic rounding, as pbnn::softmax_cross_entropy
// does), the per-sample losses and the count of correct predictions left on the device until the
// caller reads them back (once per epoch, for example).
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "pbnn/format.hpp"
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

template <class F>
void softmax_cross_entropy(runtime& rt, const device_tensor<F>& logits, const device_buffer<std::uint8_t>& labels,
                           device_tensor<F>& dlogits, loss_buffers& out, stream rnd) {
  const std::size_t b = logits.rows(), k = logits.cols();
  if (labels.size() < b) throw std::invalid_argument("pbnn::opencl::softmax_cross_entropy: fewer labels than samples");
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
  using S = storage_t<F>;
  const char* tq = is_fixed_v<F> ? (sizeof(S) == 1 ? "-DTQ=char" : "-DTQ=short") : "-DTQ=float";
  detail::launch(rt, rt.program(kernels::loss_source, tq), "softmax_cross_entropy", b, logits.data.handle(),
                 logits.exp.handle(), detail::checked_count(b), detail::checked_count(k), labels.handle(), d->handle(),
                 out.row_loss.handle(), out.correct.handle());
  if constexpr (is_fixed_v<F>)
    quantize_dynamic(rt, out.error, dlogits, format_traits<F>::error_rounding, rnd);
  else
    check(rt.queue().enqueueFillBuffer(dlogits.exp.handle(), cl_int{0}, 0, sizeof(cl_int)), "setting an exponent");
}

}  // namespace pbnn::opencl
