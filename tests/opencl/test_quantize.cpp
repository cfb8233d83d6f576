// Device quantization against the CPU backend's on the same values and stream: identical integers
// and exponents, for both roundings, both fixed formats, and magnitudes from zero to 2^31.
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
  for (const std::int64_t magnitude : {std::int64_t{0}, std::int64_t{100}, std::int64_t{2047}, std::int64_t{1} << 20,
                                       std::int64_t{1} << 31}) {
    for (const rounding mode : {rounding::nearest_even, rounding::stochastic}) {
      INFO("magnitude " << magnitude << ", stochastic " << (mode == rounding::stochastic));
      const std::size_t n = 3001;
      std::vector<std::int32_t> acc(n);
      std::uniform_int_distribution<std::int64_t> d(-magnitude, std::min<std::int64_t>(magnitude, std::numeric_limits<std::int32_t>::max()));
      for (auto& v : acc) v = static_cast<std::int32_t>(d(g));
      if (magnitude == std::int64_t{1} << 31) acc[17] = std::numeric_limits<std::int32_t>::min();
      const stream rnd{0x1234567u};
      std::vector<Int> cpu(n);
      const int cpu_exp = requantize_dynamic(acc.data(), n, ea + eb + 5, cpu.data(), qmax, mode, rnd);

      opencl::device_buffer<std::int32_t> dacc;
      dacc.upload(*rt, acc);
      opencl::device_tensor<TestType> out;
      out.resize(*rt, 1, n);
      opencl::requantize_dynamic(*rt, dacc, {&exp_a, &exp_b, 5}, out, mode, rnd);
      CHECK(count_mismatches(out.data.download(*rt), cpu) == 0);
      CHECK(out.download_exp(*rt) == cpu_exp);
      opencl::requantize_dynamic(*rt, dacc, {&exp_a, nullptr, 5}, out, mode, rnd);  // one exponent source
      CHECK(out.download_exp(*rt) == cpu_exp - eb);
    }
  }
}

TEMPLATE_TEST_CASE("OpenCL quantization of floats equals the CPU's", "[opencl][quantize]", fixed<8>, fixed<16>) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  using Int = storage_t<TestType>;
  constexpr auto qmax = format_traits<TestType>::operand_max;
  std::mt19937 g(4);
  for (const float scale : {0.0f, 1e-6f, 0.37f, 1.0f, 3000.0f}) {
    for (const rounding mode : {rounding::nearest_even, rounding::stochastic}) {
      INFO("scale " << scale << ", stochastic " << (mode == rounding::stochastic));
      const std::size_t n = 2500;
      std::vector<float> x(n);
      std::normal_distribution<float> d(0.0f, 1.0f);
      for (auto& v : x) v = scale * d(g);
      const stream rnd{0xabcdefu};
      std::vector<Int> cpu(n);
      const int cpu_exp = quantize_dynamic(x.data(), n, cpu.data(), qmax, mode, rnd);
      opencl::device_buffer<float> src;
      src.upload(*rt, x);
      opencl::device_tensor<TestType> out;
      out.resize(*rt, 50, 50);
      opencl::quantize_dynamic(*rt, src, out, mode, rnd);
      CHECK(count_mismatches(out.data.download(*rt), cpu) == 0);
      CHECK(out.download_exp(*rt) == cpu_exp);
    }
  }
}
