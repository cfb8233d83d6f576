#pragma once
// Softmax cross-entropy over the network's output, in fp32 from the (possibly integer) logits. The
// error it returns, (softmax - onehot) / batch, is stored in the format (fixed: stochastic rounding).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "pbnn/context.hpp"
#include "pbnn/quantize.hpp"
#include "pbnn/tensor.hpp"

namespace pbnn {

struct loss_result {
  double loss_sum = 0;      // summed over the batch
  std::size_t correct = 0;  // argmax == label
};

// Index of the largest logit of row r (the first on ties).
template <class F>
std::size_t predicted_class(const batch_tensor<F>& logits, std::size_t r) {
  const auto* row = logits.row(r);
  return static_cast<std::size_t>(std::max_element(row, row + logits.cols()) - row);
}

template <class F>
loss_result softmax_cross_entropy(const batch_tensor<F>& logits, const std::uint8_t* labels, batch_tensor<F>& dlogits,
                                  context& ctx) {
  const std::size_t b = logits.rows(), k = logits.cols();
  const float scale = std::ldexp(1.0f, logits.exp);
  std::vector<float> d(b * k);
  loss_result res;
  for (std::size_t r = 0; r < b; ++r) {
    const auto* z = logits.row(r);
    float zmax = -INFINITY;
    for (std::size_t j = 0; j < k; ++j) zmax = std::max(zmax, static_cast<float>(z[j]) * scale);
    double sum = 0;
    for (std::size_t j = 0; j < k; ++j) sum += std::exp(static_cast<double>(z[j]) * scale - zmax);
    const double log_sum = std::log(sum) + zmax;
    res.loss_sum += log_sum - static_cast<double>(z[labels[r]]) * scale;
    res.correct += predicted_class(logits, r) == labels[r];
    for (std::size_t j = 0; j < k; ++j)
      d[r * k + j] = static_cast<float>((std::exp(static_cast<double>(z[j]) * scale - log_sum) - (j == labels[r])) / b);
  }
  dlogits.resize(b, k);
  if constexpr (!is_fixed_v<F>) {
    std::copy(d.begin(), d.end(), dlogits.data.data());
    dlogits.exp = 0;
  } else {
    dlogits.exp = quantize_dynamic(d.data(), d.size(), dlogits.data.data(), format_traits<F>::operand_max,
                                   format_traits<F>::error_rounding, ctx.next_stream());
  }
  return res;
}

}  // namespace pbnn
