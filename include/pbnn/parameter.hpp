#pragma once
// A learnable tensor with its gradient, as the optimizers see it.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "pbnn/format.hpp"
#include "pbnn/quantize.hpp"
#include "pbnn/random.hpp"
#include "pbnn/tensor.hpp"

namespace pbnn {

enum class param_role {
  binarized,  // P of a binarized layer: clipped to [-1, 1], binarized in the forward pass
  real,       // weights and biases of a layer kept real
  norm        // batch-norm scale and shift
};

// The bound an updated parameter value is clipped to: binarized P stay in [-1, 1] (part of the
// method), other roles are unbounded.
inline constexpr float update_bound(param_role role) noexcept { return role == param_role::binarized ? 1.0f : 3.0e38f; }

// Values in the format's storage: fixed formats hold q with value = q * 2^exp, a fixed exponent per
// role (binarized and real weights: [-1, 1); batch-norm scale and shift: [-4, 4)). The gradient is
// held in the format's accumulator with one real scale per step (fixed: the int32 sums of the
// integer GEMM, value = grad * grad_scale).
namespace detail {
// dst[i] = clamp(floor(clamp(x[i], -bound, bound) * inv + u(first + i)), -lim, lim), returning how
// many values went beyond lim. GCC 12 leaves this loop scalar, and it runs once per parameter and
// step, so AVX-512 gets an explicit version (same results); the portable loop is the reference.
template <class Int>
std::uint32_t store_rounded(const float* x, Int* dst, std::uint32_t n, std::uint32_t first, stream rnd, float inv,
                            float lim, float bound) {
  std::uint32_t events = 0;
  std::uint32_t i = 0;
#if defined(__AVX512F__)
  const __m512 vinv = _mm512_set1_ps(inv), vlim = _mm512_set1_ps(lim), vnlim = _mm512_set1_ps(-lim);
  const __m512 vb = _mm512_set1_ps(bound), vnb = _mm512_set1_ps(-bound), k24 = _mm512_set1_ps(0x1p-24f);
  const __m512i key = _mm512_set1_epi32(static_cast<int>(rnd.key)), lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i golden = _mm512_set1_epi32(static_cast<int>(0x9e3779b9u)), m1 = _mm512_set1_epi32(0x7feb352d),
                m2 = _mm512_set1_epi32(static_cast<int>(0x846ca68bu));
  for (; i + 16 <= n; i += 16) {
    __m512i h = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(first + i)), lane);
    h = _mm512_xor_si512(_mm512_mullo_epi32(h, golden), key);
    h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
    h = _mm512_mullo_epi32(h, m1);
    h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 15));
    h = _mm512_mullo_epi32(h, m2);
    h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
    const __m512 u = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(h, 8)), k24);
    const __m512 c = _mm512_max_ps(vnb, _mm512_min_ps(vb, _mm512_loadu_ps(x + i)));
    __m512 t = _mm512_roundscale_ps(_mm512_fmadd_ps(c, vinv, u), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    const __mmask16 over = _mm512_cmp_ps_mask(t, vlim, _CMP_GT_OQ) | _mm512_cmp_ps_mask(t, vnlim, _CMP_LT_OQ);
    events += static_cast<std::uint32_t>(__builtin_popcount(over));
    t = _mm512_max_ps(vnlim, _mm512_min_ps(vlim, t));
    const __m512i q = _mm512_cvttps_epi32(t);
    if constexpr (sizeof(Int) == 1) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm512_cvtepi32_epi8(q));
    else _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm512_cvtepi32_epi16(q));
  }
#endif
  for (; i < n; ++i) {
    float c = std::min(bound, std::max(-bound, x[i]));
    float t = std::floor(c * inv + hash_uniform(rnd.key, first + i));
    events += (t > lim) | (t < -lim);
    dst[i] = static_cast<Int>(static_cast<std::int32_t>(std::min(lim, std::max(-lim, t))));
  }
  return events;
}
}  // namespace detail

template <class Format>
struct parameter {
  using format = Format;
  using value_type = storage_t<Format>;
  using grad_type = typename format_traits<Format>::accum;

  std::string name;
  param_role role = param_role::real;
  std::vector<std::size_t> dims;  // for export, e.g. {out, in}
  aligned_vector<value_type> value;
  int exp = 0;
  aligned_vector<grad_type> grad;
  float grad_scale = 1.0f;

  parameter() = default;
  parameter(std::string n, param_role r, std::vector<std::size_t> shape)
      : name(std::move(n)), role(r), dims(std::move(shape)) {
    std::size_t size = 1;
    for (auto d : dims) size *= d;
    value.resize(size);
    grad.resize(size);
    if constexpr (is_fixed_v<Format>) {
      constexpr int frac = format_traits<Format>::param_frac;
      exp = r == param_role::norm ? -std::max(0, frac - 2) : -frac;
    }
  }
  std::size_t size() const noexcept { return value.size(); }
  float real(std::size_t i) const noexcept {
    if constexpr (is_fixed_v<Format>) return std::ldexp(static_cast<float>(value[i]), exp);
    else return value[i];
  }
  float gradient(std::size_t i) const noexcept { return static_cast<float>(grad[i]) * grad_scale; }
  // Largest magnitude the storage holds (the binarized ones are also clipped to 1).
  float max_real() const noexcept {
    if constexpr (is_fixed_v<Format>) return std::ldexp(static_cast<float>(format_traits<Format>::param_max), exp);
    else return update_bound(role);
  }
  // Stores x at i: binarized parameters are clipped to [-1, 1] (part of the method, not counted);
  // other values beyond the format's range saturate and are counted. Fixed formats round
  // stochastically with u (uniform in [0, 1)) so updates smaller than one step survive in expectation.
  void store(std::size_t i, float x, float u, saturation_counter& sat) noexcept {
    if (role == param_role::binarized) x = std::clamp(x, -1.0f, 1.0f);
    if constexpr (is_fixed_v<Format>) {
      const double q = std::floor(std::ldexp(static_cast<double>(x), -exp) + u);
      std::uint64_t events = 0;
      value[i] = detail::saturate<value_type>(static_cast<std::int64_t>(q), format_traits<Format>::param_max, events);
      if (role != param_role::binarized) sat.events += events;
    } else {
      (void)u;
      (void)sat;
      value[i] = x;
    }
  }
  // store() for the elements [begin, end) of x (real values), vectorized; u comes from rnd.
  void store_range(const float* x, std::size_t begin, std::size_t end, stream rnd, saturation_counter& sat) noexcept {
    if constexpr (is_fixed_v<Format>) {
      const bool counted = role != param_role::binarized;
      const std::uint32_t events =
          detail::store_rounded(x + begin, value.data() + begin, static_cast<std::uint32_t>(end - begin),
                                static_cast<std::uint32_t>(begin), rnd, std::ldexp(1.0f, -exp),
                                static_cast<float>(format_traits<Format>::param_max), update_bound(role));
      if (counted) sat.events += events;
    } else {
      (void)rnd;
      (void)sat;
      const float bound = update_bound(role);
      for (std::size_t i = begin; i < end; ++i) value[i] = std::clamp(x[i], -bound, bound);
    }
  }
  void zero_grad() {
    std::fill(grad.begin(), grad.end(), grad_type{0});
    grad_scale = 1.0f;
  }
};

}  // namespace pbnn
