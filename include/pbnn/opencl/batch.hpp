#pragma once
// Minibatches to the device without waiting: samples are gathered and quantized on the host
// (pbnn::gather_batch, the CPU backend's own), then written to the device tensor by non-blocking
// transfers. Two host staging slots alternate, so the host prepares the next batch while the device
// still reads the last one; a slot is reused only once its transfer has completed. The samples go
// through page-locked memory (a mapped CL_MEM_ALLOC_HOST_PTR buffer): a transfer from pageable memory
// occupies the queue for several times as long (0.3 ms for a 3 MB fp32 batch of 256 CIFAR images on
// an H200).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "pbnn/dataset.hpp"
#include "pbnn/opencl/buffer.hpp"
#include "pbnn/opencl/tensor.hpp"

namespace pbnn::opencl {

template <class F>
class batch_uploader {
 public:
  device_tensor<F> x;                    // the batch, in the format, with its exponent
  device_buffer<std::uint8_t> labels;    // at least as many as the batch's samples

  // Samples idx[0, n) of d (edited by transform, if set, before quantization) into x and labels.
  void upload(runtime& rt, const dataset& d, const std::size_t* idx, std::size_t n, const batch_transform& transform = {}) {
    slot& s = slots_[next_];
    next_ ^= 1;
    if (s.in_flight) check(s.done.wait(), "waiting for a batch transfer");
    s.in_flight = false;
    gather_batch(d, idx, n, s.x, s.labels, s.scratch, transform);
    s.exp = s.x.exp;
    x.resize(rt, n, d.features);
    if (labels.size() < n) labels.resize(rt, n);
    using V = storage_t<F>;
    const std::size_t bytes = n * d.features * sizeof(V);
    void* staged = s.page_locked(rt, bytes);
    std::memcpy(staged, s.x.data.data(), bytes);
    auto& q = rt.queue();
    cl::Event written;
    check(q.enqueueWriteBuffer(x.data.handle(), CL_FALSE, 0, bytes, staged, nullptr, rt.profiling() ? &written : nullptr),
          "writing a batch");
    if (rt.profiling()) rt.record("write_batch", std::move(written));
    check(q.enqueueWriteBuffer(x.exp.handle(), CL_FALSE, 0, sizeof(int), &s.exp), "writing a batch's exponent");
    // The queue is in order: the last transfer's completion means the slot is free again.
    check(q.enqueueWriteBuffer(labels.handle(), CL_FALSE, 0, n, s.labels.data(), nullptr, &s.done),
          "writing a batch's labels");
    s.in_flight = true;
  }

  // Waits for the transfers still reading the staging slots (before they are destroyed).
  void drain() {
    for (auto& s : slots_)
      if (s.in_flight) {
        check(s.done.wait(), "waiting for a batch transfer");
        s.in_flight = false;
      }
  }
  batch_uploader() = default;
  batch_uploader(const batch_uploader&) = delete;
  batch_uploader& operator=(const batch_uploader&) = delete;
  ~batch_uploader() {
    try {
      drain();
      for (auto& s : slots_) s.unmap();
    } catch (...) {  // a failed device: nothing more can be done for its transfers
    }
  }

 private:
  struct slot {
    batch_tensor<F> x;
    std::vector<std::uint8_t> labels;
    std::vector<float> scratch;
    int exp = 0;
    cl::Event done;
    bool in_flight = false;
    // Page-locked staging of at least `bytes`, mapped for the slot's lifetime (the slot is free).
    cl::CommandQueue queue;
    cl::Buffer pinned;
    void* mapped = nullptr;
    std::size_t pinned_bytes = 0;
    void* page_locked(runtime& rt, std::size_t bytes) {
      if (bytes <= pinned_bytes) return mapped;
      unmap();
      cl_int err = CL_SUCCESS;
      pinned = cl::Buffer(rt.context(), CL_MEM_ALLOC_HOST_PTR | CL_MEM_READ_WRITE, bytes, nullptr, &err);
      check(err, fmt::format("allocating {} bytes of page-locked staging", bytes));
      queue = rt.queue();
      mapped = queue.enqueueMapBuffer(pinned, CL_TRUE, CL_MAP_WRITE, 0, bytes, nullptr, nullptr, &err);
      check(err, "mapping page-locked staging");
      pinned_bytes = bytes;
      return mapped;
    }
    void unmap() {
      if (!mapped) return;
      cl::Event unmapped;
      check(queue.enqueueUnmapMemObject(pinned, mapped, nullptr, &unmapped), "unmapping page-locked staging");
      check(unmapped.wait(), "unmapping page-locked staging");
      mapped = nullptr;
      pinned_bytes = 0;
    }
  };
  std::array<slot, 2> slots_;
  unsigned next_ = 0;
};

// The samples of d must be the network's input (a mismatch would read past the device tensor).
inline void check_features(const dataset& d, std::size_t expected, const char* who) {
  if (d.features != expected)
    throw std::invalid_argument(
        fmt::format("{}: the data set's samples have {} values, the network's input {}", who, d.features, expected));
}

}  // namespace pbnn::opencl
