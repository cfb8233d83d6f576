#pragma once
// The runtime every OpenCL benchmark uses: the default device (PBNN_OPENCL_DEVICE picks another), or
// none where there is no OpenCL device, for the benchmarks to skip.
#include <exception>
#include <memory>

#include <pbnn/opencl/runtime.hpp>

namespace pbnn_bench {

inline pbnn::opencl::runtime* device() {
  static std::unique_ptr<pbnn::opencl::runtime> rt = [] {
    try {
      return std::make_unique<pbnn::opencl::runtime>();
    } catch (const std::exception&) {
      return std::unique_ptr<pbnn::opencl::runtime>();
    }
  }();
  return rt.get();
}

}  // namespace pbnn_bench
