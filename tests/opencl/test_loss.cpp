// Softmax cross-entropy on the device against the CPU's: the loss to a relative 1e-5 (float here,
// double there), the same correct count, the error to 1e-6 in fp32; in fixed formats the same
// exponent and the same stochastically rounded error but where a float difference in the last bit
// moves a value across a rounding boundary (at most 1 % of the values, by one step). The batch's summed
// loss, written by the same launch, is the row losses' sum in row order.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include <pbnn/loss.hpp>
#include <pbnn/opencl/loss.hpp>

#include "opencl/opencl_device.hpp"

TEMPLATE_TEST_CASE("OpenCL softmax cross-entropy equals the CPU's", "[opencl][loss]", pbnn::fp32, pbnn::fixed<8>,
                   pbnn::fixed<16>) {
  using namespace pbnn;
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  const std::size_t b = 100, k = 10;
  rng g(31);
  std::vector<float> real(b * k);
  for (auto& v : real) v = g.uniform(-6, 6);
  batch_tensor<TestType> logits, dlogits;
  logits.resize(b, k);
  if constexpr (is_fixed_v<TestType>)
    logits.exp = quantize_dynamic(real.data(), real.size(), logits.data.data(), format_traits<TestType>::operand_max,
                                  rounding::nearest_even, stream{});
  else
    std::copy(real.begin(), real.end(), logits.data.data());
  std::vector<std::uint8_t> labels(b);
  for (auto& l : labels) l = static_cast<std::uint8_t>(g.below(k));

  rng draws = g;  // the stream the CPU draws next
  context ctx;
  ctx.gen = &g;
  const loss_result cpu = softmax_cross_entropy(logits, labels.data(), dlogits, ctx);

  opencl::device_tensor<TestType> dl, dd;
  dl.upload(*rt, b, k, logits.data.data(), logits.exp);
  opencl::device_buffer<std::uint8_t> dlabels;
  dlabels.upload(*rt, labels);
  opencl::loss_buffers out;
  opencl::device_buffer<float> sums;  // the batch's summed loss goes to slot 1 of 3
  sums.upload(*rt, std::vector<float>(3, -1.0f));
  opencl::softmax_cross_entropy(*rt, dl, dlabels, dd, out, make_stream(draws), {&sums, 1});

  double loss = 0;
  float in_order = 0;  // the kernel's sum: float, row by row
  for (const float v : out.row_loss.download(*rt)) loss += v, in_order += v;
  CHECK(loss == Approx(cpu.loss_sum).epsilon(1e-5));
  CHECK(sums.download(*rt) == std::vector<float>{-1.0f, in_order, -1.0f});
  CHECK_THROWS_AS(opencl::softmax_cross_entropy(*rt, dl, dlabels, dd, out, stream{}, {&sums, 3}), std::invalid_argument);
  CHECK(out.correct.download(*rt).at(0) == cpu.correct);
  CHECK(dd.download_exp(*rt) == dlogits.exp);
  const auto got = dd.data.download(*rt);
  std::size_t off_by_one = 0, worse = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if constexpr (is_fixed_v<TestType>) {
      const int d = std::abs(static_cast<int>(got[i]) - static_cast<int>(dlogits.data.data()[i]));
      off_by_one += d == 1;
      worse += d > 1;
    } else {
      worse += std::fabs(got[i] - dlogits.data.data()[i]) > 1e-6f;
    }
  }
  CHECK(worse == 0);
  CHECK(off_by_one <= got.size() / 100);
}
