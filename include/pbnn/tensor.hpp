#pragma once
// The tensor that flows between layers: one row per sample, the sample's features (C*H*W, row-major)
// along the row. Fixed formats carry one power-of-two exponent per tensor: value = data * 2^exp.
#include <cmath>
#include <cstddef>
#include <vector>

#include <Eigen/Core>
#include <xtensor/xtensor.hpp>

#include "pbnn/format.hpp"

namespace pbnn {

// Every buffer that Eigen reduces over is allocated on the same (SIMD) boundary: Eigen starts its
// vectorized reductions at the first aligned element, so an allocation-dependent alignment would
// change the summation order and make runs with the same seed differ in the last bits.
template <class T>
using aligned_allocator = Eigen::aligned_allocator<T>;
template <class T>
using aligned_vector = std::vector<T, aligned_allocator<T>>;

template <class Format>
struct batch_tensor {
  using format = Format;
  using value_type = storage_t<Format>;

  xt::xtensor<value_type, 2, xt::layout_type::row_major, aligned_allocator<value_type>> data;
  int exp = 0;  // always 0 for fp32

  std::size_t rows() const noexcept { return data.shape()[0]; }
  std::size_t cols() const noexcept { return data.shape()[1]; }
  std::size_t size() const noexcept { return data.size(); }
  void resize(std::size_t r, std::size_t c) {
    if (data.dimension() != 2 || rows() != r || cols() != c) data.resize({r, c});
  }
  value_type* row(std::size_t r) noexcept { return data.data() + r * cols(); }
  const value_type* row(std::size_t r) const noexcept { return data.data() + r * cols(); }
  // The real value of element i (for tests, metrics and the loss).
  float value(std::size_t i) const noexcept {
    return std::ldexp(static_cast<float>(data.data()[i]), exp);
  }
};

}  // namespace pbnn
