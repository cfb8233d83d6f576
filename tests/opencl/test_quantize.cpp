// Device quantization against the CPU backend's on the same values and stream: identical integers
// and exponents, for both roundings, both fixed formats, magnitudes from zero to 2^31, and sizes on
// either side of the one-launch limit (quantizing into the same tensor again, to smaller
// magnitudes: each maximum must start from zero).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <pbnn/opencl/quantize.hpp>
#include <pbnn/quantize.hpp>

#include "opencl/opencl_device.hpp"

namespace {

using namespace pbnn;

template <class T>
std::size_t count_mismatches(const std::vector<T>& a, const std::vector<T>& b) {
  std::size_t bad = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) bad += a[i] != b[i];
  return bad;
}

}  // namespace

TEMPLATE_TEST_CASE("OpenCL requantization equals the CPU's", "[opencl][quantize]", fixed<8>, fixed<16>) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  using Int = storage_t<TestType>;
  constexpr auto qmax = format_traits<TestType>::operand_max;
  std::mt19937 g(3);
  opencl::device_buffer<int> exp_a, exp_b;
  const int ea = -7, eb = 3;
  exp_a.upload(*rt, &ea, 1);
  exp_b.upload(*rt, &eb, 1);
  for (const std::size_t n : {std::size_t{3001}, opencl::detail::one_group_limit + 1}) {
    opencl::device_tensor<TestType> out;
    out.resize(*rt, 1, n);
    for (const std::int64_t magnitude : {std::int64_t{0}, std::int64_t{100}, std::int64_t{2047}, std::int64_t{1} << 20,
                                         std::int64_t{1} << 31, std::int64_t{1} << 20, std::int64_t{100}}) {
      for (const rounding mode : {rounding::nearest_even, rounding::stochastic}) {
        INFO("n " << n << ", magnitude " << magnitude << ", stochastic " << (mode == rounding::stochastic));
        std::vector<std::int32_t> acc(n);
        std::uniform_int_distribution<std::int64_t> d(-magnitude, std::min<std::int64_t>(magnitude, std::numeric_limits<std::int32_t>::max()));
        for (auto& v : acc) v = static_cast<std::int32_t>(d(g));
        if (magnitude == std::int64_t{1} << 31) acc[17] = std::numeric_limits<std::int32_t>::min();
        const stream rnd{0x1234567u};
        std::vector<Int> cpu(n);
        const int cpu_exp = requantize_dynamic(acc.data(), n, ea + eb + 5, cpu.data(), qmax, mode, rnd);

        opencl::device_buffer<std::int32_t> dacc;
        dacc.upload(*rt, acc);
        opencl::requantize_dynamic(*rt, dacc, {&exp_a, &exp_b, 5}, out, mode, rnd);
        CHECK(count_mismatches(out.data.download(*rt), cpu) == 0);
        CHECK(out.download_exp(*rt) == cpu_exp);
        opencl::requantize_dynamic(*rt, dacc, {&exp_a, nullptr, 5}, out, mode, rnd);  // one exponent source
        CHECK(out.download_exp(*rt) == cpu_exp - eb);
      }
    }
  }
}

TEMPLATE_TEST_CASE("OpenCL quantization of floats equals the CPU's", "[opencl][quantize]", fixed<8>, fixed<16>) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  using Int = storage_t<TestType>;
  constexpr auto qmax = format_traits<TestType>::operand_max;
  std::mt19937 g(4);
  for (const std::size_t n : {std::size_t{2500}, opencl::detail::one_group_limit + 100}) {
    opencl::device_tensor<TestType> out;
    out.resize(*rt, 1, n);
    for (const float scale : {0.0f, 1e-6f, 0.37f, 1.0f, 3000.0f, 1.0f, 1e-6f}) {
      for (const rounding mode : {rounding::nearest_even, rounding::stochastic}) {
        INFO("n " << n << ", scale " << scale << ", stochastic " << (mode == rounding::stochastic));
        std::vector<float> x(n);
        std::normal_distribution<float> d(0.0f, 1.0f);
        for (auto& v : x) v = scale * d(g);
        const stream rnd{0xabcdefu};
        std::vector<Int> cpu(n);
        const int cpu_exp = quantize_dynamic(x.data(), n, cpu.data(), qmax, mode, rnd);
        opencl::device_buffer<float> src;
        src.upload(*rt, x);
        opencl::quantize_dynamic(*rt, src, out, mode, rnd);
        CHECK(count_mismatches(out.data.download(*rt), cpu) == 0);
        CHECK(out.download_exp(*rt) == cpu_exp);
      }
    }
  }
}

TEST_CASE("OpenCL quantization of two tensors in one launch equals the CPU's", "[opencl][quantize]") {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  constexpr std::int32_t qmax = (1 << 30) - 1;  // a batch norm's parameter gradients
  std::mt19937 g(5);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (const std::size_t n : {std::size_t{1}, std::size_t{1000}, opencl::detail::one_group_limit + 1}) {
    INFO("n " << n);
    std::vector<float> a(n), b(n);
    for (auto& v : a) v = 0.01f * d(g);
    for (auto& v : b) v = 250.0f * d(g);
    const stream rnd_a{7}, rnd_b{8};
    std::vector<std::int32_t> cpu_a(n), cpu_b(n);
    const int exp_a = quantize_dynamic(a.data(), n, cpu_a.data(), qmax, rounding::stochastic, rnd_a);
    const int exp_b = quantize_dynamic(b.data(), n, cpu_b.data(), qmax, rounding::stochastic, rnd_b);
    opencl::device_buffer<float> src_a, src_b;
    src_a.upload(*rt, a);
    src_b.upload(*rt, b);
    opencl::device_buffer<std::int32_t> dst_a, dst_b;
    dst_a.resize(*rt, n);
    dst_b.resize(*rt, n);
    opencl::device_buffer<int> dexp_a, dexp_b;
    dexp_a.resize(*rt, 1);
    dexp_b.resize(*rt, 1);
    opencl::maximum_slots maxima;
    opencl::quantize_pair_into<std::int32_t>(*rt, {src_a, dst_a, dexp_a, rnd_a}, {src_b, dst_b, dexp_b, rnd_b}, n, qmax,
                                             rounding::stochastic, maxima);
    CHECK(count_mismatches(dst_a.download(*rt), cpu_a) == 0);
    CHECK(count_mismatches(dst_b.download(*rt), cpu_b) == 0);
    CHECK(dexp_a.download(*rt).at(0) == exp_a);
    CHECK(dexp_b.download(*rt).at(0) == exp_b);
  }
}
