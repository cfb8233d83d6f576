#pragma once
// One OpenCL device in use: its context, an in-order command queue, and the programs built for it.
// A program is compiled once per (source, build options) and kept for the runtime's lifetime, so the
// kernels of every layer share one build each.
#include <cstddef>
#include <map>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "pbnn/opencl/bindings.hpp"
#include "pbnn/opencl/device.hpp"
#include "pbnn/opencl/error.hpp"

namespace pbnn::opencl {

class runtime {
 public:
  // The device named by spec, or by $PBNN_OPENCL_DEVICE where spec is empty (see device.hpp).
  explicit runtime(const std::string& spec = {}) : runtime(select_device(list_devices(), device_spec(spec))) {}

  explicit runtime(device_entry chosen) : entry_(std::move(chosen)) {
    cl_int err = CL_SUCCESS;
    context_ = cl::Context(entry_.device, nullptr, nullptr, nullptr, &err);
    check(err, fmt::format("creating a context on {}", entry_.label()));
    queue_ = cl::CommandQueue(context_, entry_.device, cl::QueueProperties::None, &err);
    check(err, fmt::format("creating a command queue on {}", entry_.label()));
  }

  const device_entry& device() const noexcept { return entry_; }
  cl::Context& context() noexcept { return context_; }
  cl::CommandQueue& queue() noexcept { return queue_; }

  // The program built from source with options, compiled on first request only. A build failure
  // throws opencl_error with the compiler's log; nothing is cached for it.
  const cl::Program& program(const std::string& source, const std::string& options = {}) {
    auto key = std::make_pair(options, source);
    if (const auto it = programs_.find(key); it != programs_.end()) return it->second;
    cl_int err = CL_SUCCESS;
    cl::Program p(context_, source, false, &err);
    check(err, "creating a program");
    err = p.build(entry_.device, options.c_str());
    if (err != CL_SUCCESS) {
      std::string log;
      p.getBuildInfo(entry_.device, CL_PROGRAM_BUILD_LOG, &log);
      throw opencl_error(err, fmt::format("OpenCL: building a program for {} with options '{}': {} ({})\nbuild log:\n{}",
                                          entry_.label(), options, error_name(err), err, log));
    }
    ++builds_;
    return programs_.emplace(std::move(key), std::move(p)).first->second;
  }

  // A kernel of a built program (a fresh cl::Kernel: its arguments are the caller's own).
  cl::Kernel kernel(const cl::Program& program, const char* name) {
    cl_int err = CL_SUCCESS;
    cl::Kernel k(program, name, &err);
    check(err, fmt::format("creating kernel '{}'", name));
    return k;
  }

  // Programs compiled so far (each (source, options) pair counts once).
  std::size_t builds() const noexcept { return builds_; }

  // Waits for everything enqueued so far.
  void finish() { check(queue_.finish(), "waiting for the command queue"); }

 private:
  device_entry entry_;
  cl::Context context_;
  cl::CommandQueue queue_;
  std::map<std::pair<std::string, std::string>, cl::Program> programs_;
  std::size_t builds_ = 0;
};

}  // namespace pbnn::opencl
