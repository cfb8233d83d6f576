#pragma once
// The tensor that flows between layers on an OpenCL device: rows x cols values in the format's
// storage, and for fixed formats the per-tensor exponent (value = data 2^exp) in a one-int device
// buffer, so that the kernel that chooses it and the kernels that read it never involve the host.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "pbnn/format.hpp"
#include "pbnn/opencl/buffer.hpp"
#include "pbnn/opencl/runtime.hpp"

namespace pbnn::opencl {

// The largest magnitudes a tensor's quantizations reduce into (quantize.hpp): two slots, used in
// turn, each cleared by the quantization that uses the other, so that none needs a command of its
// own to clear it. Zeroed on allocation.
struct maximum_slots {
  device_buffer<std::uint32_t> slots;
  std::uint32_t current = 0;

  void ensure(runtime& rt) {
    if (slots.size() == 2) return;
    ensure_zeroed(rt, slots, 2, "clearing the maxima of a quantization");
    current = 0;
  }
};

// Where a kernel that writes a tensor's integer sums also reduces their largest magnitude: a slot
// of the tensor's maxima (quantize.hpp's reservation); none where maxima is null.
struct maximum_target {
  const device_buffer<std::uint32_t>* maxima = nullptr;
  std::uint32_t slot = 0;
};

// An fp32 product's k slices left for the kernel that reads it to add (gemm's `unsummed`): count
// slices of the product's values, one after another in `slices`, whose sum in slice order is the
// product (as gemm_sum_splits adds them); count 0: the product is in the tensor's data.
struct unsummed_slices {
  device_buffer<float> slices;
  std::size_t count = 0;
};

template <class Format>
struct device_tensor {
  using format = Format;
  using value_type = storage_t<Format>;

  device_buffer<value_type> data;
  // One int. fp32: 0 from allocation on and never set otherwise, so layers do not reset it.
  device_buffer<int> exp;
  maximum_slots maxima;  // fixed formats: the largest magnitude, while an exponent is chosen
  // fp32: where pending.count > 0, data is unwritten and the tensor's values are the sum of these
  // slices, left by a product to the kernel that reads them (gemm.hpp's sum_pending adds them into
  // data). mutable: adding them completes the values a const tensor already stands for.
  mutable unsummed_slices pending;

  std::size_t rows() const noexcept { return rows_; }
  std::size_t cols() const noexcept { return cols_; }
  std::size_t size() const noexcept { return rows_ * cols_; }

  void resize(runtime& rt, std::size_t r, std::size_t c) {
    rows_ = r, cols_ = c;
    data.resize(rt, r * c);
    if (exp.size() != 1) {
      const int zero = 0;
      exp.upload(rt, &zero, 1);
    }
    if constexpr (is_fixed_v<Format>) maxima.ensure(rt);
  }

  // Blocking transfers, for tests and metrics.
  void upload(runtime& rt, std::size_t r, std::size_t c, const value_type* values, int exponent) {
    if (!is_fixed_v<Format> && exponent != 0)
      throw std::invalid_argument("pbnn::opencl::device_tensor: an fp32 tensor's exponent is 0");
    resize(rt, r, c);
    data.upload(rt, values, r * c);
    exp.upload(rt, &exponent, 1);
  }
  int download_exp(runtime& rt) const { return exp.download(rt).at(0); }

 private:
  std::size_t rows_ = 0, cols_ = 0;
};

}  // namespace pbnn::opencl
