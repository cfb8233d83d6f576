#pragma once
// One OpenCL device in use: its context, an in-order command queue, and the programs built for it.
// A program is compiled once per (source, build options) and kept for the runtime's lifetime, so the
// kernels of every layer share one build each.
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>
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
  // throws opencl_error with the compiler's log; nothing is cached for it. Launches call this every
  // time, so a hit allocates nothing (string_view lookups).
  const cl::Program& program(std::string_view source, std::string_view options = {}) {
    auto options_it = programs_.find(options);
    if (options_it == programs_.end()) options_it = programs_.emplace(std::string(options), by_source_map{}).first;
    auto& by_source = options_it->second;
    if (const auto it = by_source.find(source); it != by_source.end()) return it->second;
    cl_int err = CL_SUCCESS;
    cl::Program p(context_, std::string(source), false, &err);
    check(err, "creating a program");
    const std::string opts(options);
    err = p.build(entry_.device, opts.c_str());
    if (err != CL_SUCCESS) {
      std::string log;
      p.getBuildInfo(entry_.device, CL_PROGRAM_BUILD_LOG, &log);
      throw opencl_error(err, fmt::format("OpenCL: building a program for {} with options '{}': {} ({})\nbuild log:\n{}",
                                          entry_.label(), opts, error_name(err), err, log));
    }
    ++builds_;
    return by_source.emplace(std::string(source), std::move(p)).first->second;
  }

  // A kernel of a built program, created once per (program, name) and shared by every launch: each
  // launch sets all its arguments before enqueueing (the queue captures them), from one host thread.
  cl::Kernel kernel(const cl::Program& program, const char* name) {
    auto& by_name = kernels_[program()];
    if (const auto it = by_name.find(std::string_view(name)); it != by_name.end()) return it->second;
    cl_int err = CL_SUCCESS;
    cl::Kernel k(program, name, &err);
    check(err, fmt::format("creating kernel '{}'", name));
    return by_name.emplace(name, k).first->second;
  }

  // Programs compiled so far (each (source, options) pair counts once).
  std::size_t builds() const noexcept { return builds_; }

  // Waits for everything enqueued so far.
  void finish() { check(queue_.finish(), "waiting for the command queue"); }

 private:
  device_entry entry_;
  cl::Context context_;
  cl::CommandQueue queue_;
  // options -> source -> program; program -> kernel name -> kernel. Transparent comparators: no
  // allocation on a hit.
  using by_source_map = std::map<std::string, cl::Program, std::less<>>;
  std::map<std::string, by_source_map, std::less<>> programs_;
  std::map<cl_program, std::map<std::string, cl::Kernel, std::less<>>> kernels_;
  std::size_t builds_ = 0;
};

}  // namespace pbnn::opencl
