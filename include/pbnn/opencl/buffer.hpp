#pragma once
// A typed device buffer: n elements of T in the runtime's context, with blocking transfers for
// set-up, tests and metrics (a training step itself never waits on the host).
#include <cstddef>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "pbnn/opencl/bindings.hpp"
#include "pbnn/opencl/error.hpp"
#include "pbnn/opencl/runtime.hpp"

namespace pbnn::opencl {

template <class T>
class device_buffer {
 public:
  device_buffer() = default;
  device_buffer(runtime& rt, std::size_t n) { resize(rt, n); }

  std::size_t size() const noexcept { return n_; }
  const cl::Buffer& handle() const noexcept { return buf_; }

  // n elements (contents undefined where the size changes). The allocation only grows (0 frees it):
  // tensors whose size alternates (the backward pass's ping-pong gradients) would otherwise free
  // memory that queued kernels still use, which makes the driver wait for them, stalling the host.
  void resize(runtime& rt, std::size_t n) {
    if (!n) {
      buf_ = cl::Buffer();
      n_ = capacity_ = 0;
      return;
    }
    if (n > capacity_) {
      cl_int err = CL_SUCCESS;
      cl::Buffer grown(rt.context(), CL_MEM_READ_WRITE, n * sizeof(T), nullptr, &err);
      check(err, fmt::format("allocating {} bytes on {}", n * sizeof(T), rt.device().label()));
      buf_ = std::move(grown);
      capacity_ = n;
    }
    n_ = n;
  }

  void upload(runtime& rt, const T* src, std::size_t n) {
    resize(rt, n);
    if (n) check(rt.queue().enqueueWriteBuffer(buf_, CL_TRUE, 0, n * sizeof(T), src), "writing a buffer");
  }
  void upload(runtime& rt, const std::vector<T>& src) { upload(rt, src.data(), src.size()); }

  std::vector<T> download(runtime& rt) const {
    std::vector<T> out(n_);
    if (n_) check(rt.queue().enqueueReadBuffer(buf_, CL_TRUE, 0, n_ * sizeof(T), out.data()), "reading a buffer");
    return out;
  }

 private:
  cl::Buffer buf_;
  std::size_t n_ = 0, capacity_ = 0;
};

// Zero-filled b of n elements, where b does not already have that size (state, counters); what
// names the buffer in an error.
template <class T>
void ensure_zeroed(runtime& rt, device_buffer<T>& b, std::size_t n, const char* what) {
  if (b.size() == n) return;
  b.resize(rt, n);
  check(rt.queue().enqueueFillBuffer(b.handle(), T{0}, 0, n * sizeof(T)), what);
}

}  // namespace pbnn::opencl
