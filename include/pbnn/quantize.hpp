#pragma once
// Rounding, saturation and per-tensor exponent choice for the fixed formats.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "pbnn/format.hpp"
#include "pbnn/random.hpp"

namespace pbnn {

// Counts values that did not fit their format and were clamped to its range.
struct saturation_counter {
  std::uint64_t events = 0;
};

namespace detail {

// v / 2^shift rounded as asked (shift may be <= 0: an exact left shift). Stochastic rounding adds
// shift uniform random bits before flooring, so the expectation is exactly v / 2^shift.
inline std::int64_t round_shift(std::int64_t v, int shift, rounding mode, std::uint32_t random_bits) noexcept {
  if (shift <= 0) return v * (std::int64_t{1} << -shift);
  if (shift >= 62) return 0;
  if (mode == rounding::stochastic && shift > 32) mode = rounding::nearest_even;  // 32 random bits at most
  if (mode == rounding::stochastic) {
    const std::int64_t r = static_cast<std::int64_t>(random_bits & ((std::uint64_t{1} << shift) - 1));
    return (v + r) >> shift;  // arithmetic shift floors
  }
  const std::int64_t q = v >> shift;
  const std::int64_t rem = v - (q << shift);
  const std::int64_t half = std::int64_t{1} << (shift - 1);
  return (rem > half || (rem == half && (q & 1))) ? q + 1 : q;
}

// Round to nearest, ties to even, for |x| < 2^22 (default rounding mode): adding and removing
// 1.5 * 2^23 leaves no fractional bits. Unlike std::nearbyint, GCC vectorizes it in any loop.
inline float round_nearest_even(float x) noexcept {
  constexpr float magic = 0x1.8p23f;
  return (x + magic) - magic;
}

// x rounded to an integer as asked; u uniform in [0,1) is used by stochastic rounding.
inline double round_real(double x, rounding mode, float u) noexcept {
  return mode == rounding::stochastic ? std::floor(x + u) : std::nearbyint(x);
}

template <class Int>
inline Int saturate(std::int64_t q, std::int32_t qmax, std::uint64_t& events) noexcept {
  if (q > qmax) { ++events; return static_cast<Int>(qmax); }
  if (q < -qmax) { ++events; return static_cast<Int>(-qmax); }
  return static_cast<Int>(q);
}

// Smallest shift s (>= min_shift) such that ceil(maxabs / 2^s) <= qmax: requantizing integers of
// magnitude <= maxabs by s bits then never saturates, whatever the rounding.
inline int shift_for(std::uint64_t maxabs, std::int32_t qmax, int min_shift = -24) noexcept {
  if (maxabs == 0) return 0;
  int s = min_shift;
  auto fits = [&](int sh) {
    if (sh <= 0) return sh < -40 ? false : (maxabs << -sh) <= static_cast<std::uint64_t>(qmax);
    return ((maxabs + (std::uint64_t{1} << sh) - 1) >> sh) <= static_cast<std::uint64_t>(qmax);
  };
  // Start near the answer: bit widths differ by at most one step from it.
  s = std::max(min_shift, static_cast<int>(std::bit_width(maxabs)) - static_cast<int>(std::bit_width(
                                                                              static_cast<std::uint32_t>(qmax))) - 1);
  while (!fits(s)) ++s;
  while (s > min_shift && fits(s - 1)) --s;
  return s;
}

// Exponent e such that a real maxabs maps to at most qmax: maxabs * 2^-e <= qmax (rounded up safely).
inline int exponent_for(double maxabs, std::int32_t qmax) noexcept {
  if (!(maxabs > 0) || !std::isfinite(maxabs)) return 0;
  int e = static_cast<int>(std::ceil(std::log2(maxabs / qmax)));
  while (std::ceil(std::ldexp(maxabs, -e)) > qmax) ++e;
  while (std::ceil(std::ldexp(maxabs, -(e - 1))) <= qmax) --e;
  return e;
}

}  // namespace detail

namespace detail {
// Branch-free rounding of v / 2^shift (shift >= 1), written so that the loops below vectorize.
inline std::int64_t shift_nearest_even(std::int64_t v, int shift) noexcept {
  return (v + (std::int64_t{1} << (shift - 1)) - 1 + ((v >> shift) & 1)) >> shift;
}
inline std::int64_t shift_stochastic(std::int64_t v, int shift, std::uint32_t random_bits) noexcept {
  return (v + static_cast<std::int64_t>(random_bits & ((std::uint32_t{1} << shift) - 1))) >> shift;
}
}  // namespace detail

// Quantizes reals into Int with a per-tensor exponent chosen from their largest magnitude.
// Returns the exponent; values never saturate (the exponent is chosen so they fit).
template <class Int>
int quantize_dynamic(const float* src, std::size_t n, Int* dst, std::int32_t qmax, rounding mode, stream rnd) {
  float maxabs = 0;
#pragma omp simd reduction(max : maxabs)
  for (std::size_t i = 0; i < n; ++i) maxabs = std::max(maxabs, std::fabs(src[i]));
  const int e = detail::exponent_for(maxabs, qmax);
  const float scale = std::ldexp(1.0f, -e), lim = static_cast<float>(qmax);
  // The clamp only guards float rounding at the very top of the range.
  if (mode == rounding::stochastic) {
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i)
      dst[i] = static_cast<Int>(std::clamp(std::floor(src[i] * scale + rnd.uniform(static_cast<std::uint32_t>(i))), -lim, lim));
  } else {
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i)
      dst[i] = static_cast<Int>(detail::round_nearest_even(std::clamp(src[i] * scale, -lim, lim)));
  }
  return e;
}

// Requantizes int32 accumulators (value = acc * 2^acc_exp) into Int with a per-tensor exponent
// chosen from the largest magnitude. Returns the new exponent.
template <class Int>
int requantize_dynamic(const std::int32_t* acc, std::size_t n, int acc_exp, Int* dst, std::int32_t qmax,
                       rounding mode, stream rnd) {
  std::int64_t maxabs = 0;
#pragma omp simd reduction(max : maxabs)
  for (std::size_t i = 0; i < n; ++i) maxabs = std::max<std::int64_t>(maxabs, std::abs(static_cast<std::int64_t>(acc[i])));
  const int shift = detail::shift_for(static_cast<std::uint64_t>(maxabs), qmax, 0);
  const std::int64_t lim = qmax;
  if (shift == 0) {
    for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<Int>(acc[i]);
  } else if (mode == rounding::stochastic && shift <= 31) {
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i)
      dst[i] = static_cast<Int>(std::clamp(
          detail::shift_stochastic(acc[i], shift, rnd.bits(static_cast<std::uint32_t>(i))), -lim, lim));
  } else {
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i)
      dst[i] = static_cast<Int>(std::clamp(detail::shift_nearest_even(acc[i], shift), -lim, lim));
  }
  return acc_exp + shift;
}

}  // namespace pbnn
