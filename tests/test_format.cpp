// Number formats: rounding, saturation, stochastic rounding's bias, parameter storage.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>
#include <cstdint>

#include <pbnn/format.hpp>
#include <pbnn/parameter.hpp>
#include <pbnn/quantize.hpp>

using namespace pbnn;

TEST_CASE("format traits name storage and accumulator", "[format]") {
  STATIC_REQUIRE(std::is_same_v<format_traits<fixed<8>>::storage, std::int8_t>);
  STATIC_REQUIRE(std::is_same_v<format_traits<fixed<16>>::storage, std::int16_t>);
  STATIC_REQUIRE(std::is_same_v<format_traits<fixed<8>>::accum, std::int32_t>);
  STATIC_REQUIRE(std::is_same_v<format_traits<fp32>::storage, float>);
  STATIC_REQUIRE(format_traits<fixed<8>>::param_frac == 7);
  STATIC_REQUIRE(format_traits<fixed<8, 5>>::param_frac == 5);  // user override
}

TEST_CASE("round_shift rounds to nearest, ties to even", "[format]") {
  using detail::round_shift;
  // 2 fractional bits: 5/4 = 1.25 -> 1, 6/4 = 1.5 -> 2 (even), 10/4 = 2.5 -> 2 (even), 7/4 -> 2, -6/4 -> -2.
  CHECK(round_shift(5, 2, rounding::nearest_even, 0) == 1);
  CHECK(round_shift(6, 2, rounding::nearest_even, 0) == 2);
  CHECK(round_shift(10, 2, rounding::nearest_even, 0) == 2);
  CHECK(round_shift(7, 2, rounding::nearest_even, 0) == 2);
  CHECK(round_shift(-6, 2, rounding::nearest_even, 0) == -2);
  CHECK(round_shift(-10, 2, rounding::nearest_even, 0) == -2);
  CHECK(round_shift(3, -2, rounding::nearest_even, 0) == 12);  // negative shift: exact left shift
}

TEST_CASE("saturation clamps to the format range and counts events", "[format]") {
  std::uint64_t events = 0;
  CHECK(detail::saturate<std::int8_t>(300, 127, events) == 127);
  CHECK(detail::saturate<std::int8_t>(-300, 127, events) == -127);
  CHECK(detail::saturate<std::int8_t>(100, 127, events) == 100);
  CHECK(events == 2);
}

TEST_CASE("stochastic rounding is unbiased", "[format]") {
  // x = 0.3 LSB: nearest rounding gives 0 always; stochastic gives 1 with probability 0.3. Over
  // 200 000 draws the mean's standard error is sqrt(0.21 / 200000) ~ 0.001: a 0.005 tolerance is 5 sigma.
  const stream rnd{12345};
  const int n = 200000;
  for (const double x : {0.3, -0.3, 2.75, -7.125}) {
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += detail::round_real(x, rounding::stochastic, rnd.uniform(static_cast<std::uint32_t>(i)));
    CHECK(sum / n == Approx(x).margin(0.005));
    // The integer path (shift of a fixed-point value) is unbiased too: x * 256 >> 8.
    const auto fixed_x = static_cast<std::int64_t>(std::llround(x * 256));
    double isum = 0;
    for (int i = 0; i < n; ++i)
      isum += static_cast<double>(detail::round_shift(fixed_x, 8, rounding::stochastic, rnd.bits(static_cast<std::uint32_t>(i))));
    CHECK(isum / n == Approx(static_cast<double>(fixed_x) / 256).margin(0.005));
  }
  CHECK(detail::round_real(0.3, rounding::nearest_even, 0.99f) == 0.0);
}

TEST_CASE("parameters store in the format with stochastic rounding and saturation", "[format]") {
  saturation_counter sat;
  parameter<fixed<8>> w("w", param_role::real, {4});
  CHECK(w.exp == -7);
  w.store(0, 0.5f, 0.0f, sat);
  CHECK(w.value[0] == 64);
  w.store(1, 3.0f, 0.0f, sat);  // beyond [-1, 1): saturates, counted
  CHECK(w.value[1] == 127);
  CHECK(sat.events == 1);
  parameter<fixed<8>> p("p", param_role::binarized, {1});
  p.store(0, -3.0f, 0.0f, sat);  // binarized: clipped to [-1, 1] by the method, not counted
  CHECK(p.value[0] == -127);
  CHECK(sat.events == 1);
  // An update of a tenth of a step survives in expectation.
  const stream rnd{7};
  double mean = 0;
  for (std::uint32_t i = 0; i < 100000; ++i) {
    w.store(2, 10.1f / 128, rnd.uniform(i), sat);
    mean += w.value[2];
  }
  CHECK(mean / 100000 == Approx(10.1).margin(0.01));
  parameter<fixed<16>> g("gamma", param_role::norm, {1});
  g.store(0, 1.0f, 0.0f, sat);
  CHECK(g.real(0) == 1.0f);  // batch-norm scale 1 is representable
}

TEST_CASE("dynamic quantization picks an exponent that fits without saturating", "[format]") {
  const float src[] = {0.5f, -3.0f, 100.0f, 0.001f};
  std::int8_t dst[4];
  const int e = quantize_dynamic(src, 4, dst, 127, rounding::nearest_even, stream{});
  CHECK(std::ldexp(100.0, -e) <= 127);
  CHECK(std::ldexp(100.0, -(e - 1)) > 127);  // and no larger than needed
  CHECK(std::ldexp(static_cast<double>(dst[2]), e) == Approx(100.0).epsilon(0.01));
  CHECK(std::ldexp(static_cast<double>(dst[1]), e) == Approx(-3.0).margin(std::ldexp(0.5, e)));
}

TEST_CASE("bulk parameter stores match the element-wise rounding", "[format]") {
  // store_range has an AVX-512 path; it must give the portable formula's values exactly.
  parameter<fixed<8>> w("w", param_role::real, {1003});
  parameter<fixed<16>> p("p", param_role::binarized, {1003});
  std::vector<float> x(1003);
  rng g(3);
  for (auto& v : x) v = g.uniform(-1.3f, 1.3f);
  const stream rnd{99};
  saturation_counter sat;
  w.store_range(x.data(), 0, x.size(), rnd, sat);
  p.store_range(x.data(), 0, x.size(), rnd, sat);
  std::uint64_t expected_events = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float u = rnd.uniform(static_cast<std::uint32_t>(i));
    const float tw = std::floor(x[i] * 128.0f + u);
    expected_events += std::fabs(tw) > 127;
    CHECK(w.value[i] == static_cast<std::int8_t>(std::clamp(tw, -127.0f, 127.0f)));
    const float tp = std::floor(std::clamp(x[i], -1.0f, 1.0f) * 32768.0f + u);
    CHECK(p.value[i] == static_cast<std::int16_t>(std::clamp(tp, -32767.0f, 32767.0f)));
  }
  CHECK(sat.events == expected_events);  // only the real parameter counts; the binarized one is clipped
  CHECK(expected_events > 0);
}
