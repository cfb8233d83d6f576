#pragma once
// Enqueueing a kernel: arguments set in order, one work-item per element, no wait. An error names
// the kernel and the argument (the message is built only on failure: launches are on the hot path).
#include <algorithm>
#include <cstddef>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>

#include "pbnn/opencl/bindings.hpp"
#include "pbnn/opencl/error.hpp"
#include "pbnn/opencl/runtime.hpp"

namespace pbnn::opencl::detail {

inline cl_uint checked_count(std::size_t n) {
  if (n > std::numeric_limits<cl_uint>::max())
    throw std::invalid_argument(fmt::format("pbnn::opencl: a tensor of {} elements exceeds 2^32", n));
  return static_cast<cl_uint>(n);
}

// n work-items rounded up to whole groups of 256 (kernels ignore the ones past n).
inline cl::NDRange elementwise_range(std::size_t n) {
  return cl::NDRange((std::max<std::size_t>(n, 1) + 255) / 256 * 256);
}

template <class... Args>
void launch_range(runtime& rt, const cl::Program& program, const char* name, const cl::NDRange& global,
                  const cl::NDRange& local, const Args&... args) {
  cl::Kernel& k = rt.kernel(program, name);
  cl_uint index = 0;
  const auto set = [&](const auto& value) {
    if (const cl_int err = k.setArg(index, value); err != CL_SUCCESS)
      check(err, fmt::format("setting argument {} of {}", index, name));
    ++index;
  };
  (set(args), ...);
  cl::Event done;
  const cl_int err = rt.queue().enqueueNDRangeKernel(k, cl::NullRange, global, local, nullptr,
                                                     rt.profiling() ? &done : nullptr);
  if (err != CL_SUCCESS) check(err, fmt::format("enqueueing {}", name));
  if (rt.profiling()) rt.record(name, std::move(done));
}

// One work-item per element of n.
template <class... Args>
void launch(runtime& rt, const cl::Program& program, const char* name, std::size_t n, const Args&... args) {
  launch_range(rt, program, name, elementwise_range(n), cl::NullRange, args...);
}

}  // namespace pbnn::opencl::detail
