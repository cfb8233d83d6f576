#pragma once
// One OpenCL device in use: its context, an in-order command queue, and the programs built for it.
// A program is compiled once per (source, build options) and kept for the runtime's lifetime, so the
// kernels of every layer share one build each.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

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
    const char* profile = std::getenv("PBNN_OPENCL_PROFILE");
    profiling_ = profile && *profile && std::string_view(profile) != "0";
    queue_ = cl::CommandQueue(context_, entry_.device,
                              profiling_ ? cl::QueueProperties::Profiling : cl::QueueProperties::None, &err);
    check(err, fmt::format("creating a command queue on {}", entry_.label()));
    nvidia_ = has_extension("cl_nv_compiler_options");
    if (nvidia_) resident_groups_ = entry_.device.getInfo<CL_DEVICE_MAX_COMPUTE_UNITS>();
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

  // program() for a source and options that stay alive and unchanged as long as the runtime (static
  // strings): after the first call they are found by their addresses, without comparing their text,
  // which every launch would otherwise do.
  const cl::Program& static_program(std::string_view source, std::string_view options) {
    const static_key key{source.data(), source.size(), options.data(), options.size()};
    if (const auto it = static_programs_.find(key); it != static_programs_.end()) return *it->second;
    const cl::Program& p = program(source, options);
    static_programs_.emplace(key, &p);
    return p;
  }

  // A kernel of a built program, created once per (program, name) and shared by every launch: each
  // launch sets all its arguments before enqueueing (the queue captures them), from one host thread.
  cl::Kernel& kernel(const cl::Program& program, const char* name) {
    auto& by_name = kernels_[program()];
    if (const auto it = by_name.find(std::string_view(name)); it != by_name.end()) return it->second;
    cl_int err = CL_SUCCESS;
    cl::Kernel k(program, name, &err);
    check(err, fmt::format("creating kernel '{}'", name));
    return by_name.emplace(name, k).first->second;
  }

  // A device scratch buffer of at least `bytes`, shared by every operation of this runtime: the queue
  // is in order, so each use ends before the next begins. Grows, never shrinks.
  const cl::Buffer& scratch(std::size_t bytes) {
    if (bytes > scratch_bytes_) {
      cl_int err = CL_SUCCESS;
      scratch_ = cl::Buffer(context_, CL_MEM_READ_WRITE, bytes, nullptr, &err);
      check(err, fmt::format("allocating {} bytes of scratch on {}", bytes, entry_.label()));
      scratch_bytes_ = bytes;
    }
    return scratch_;
  }

  // At least `count` ints, zero between kernels, shared like scratch(): a kernel may count its
  // work-groups' arrivals in them, provided the last to arrive sets its counter back to 0
  // (kernels/last_group_cl.hpp). Grows, never shrinks; a new buffer is zeroed once.
  const cl::Buffer& counters(std::size_t count) {
    if (count > counter_count_) {
      count = std::max<std::size_t>(count, 4096);
      cl_int err = CL_SUCCESS;
      counters_ = cl::Buffer(context_, CL_MEM_READ_WRITE, count * sizeof(cl_int), nullptr, &err);
      check(err, fmt::format("allocating {} counters on {}", count, entry_.label()));
      check(queue_.enqueueFillBuffer(counters_, cl_int{0}, 0, count * sizeof(cl_int)), "zeroing counters");
      counter_count_ = count;
    }
    return counters_;
  }

  // Whether the device has an optional feature: test() runs on the first question about `feature`
  // only (it typically tries a build), and its answer is kept for the runtime's lifetime.
  bool probe(std::string_view feature, const std::function<bool()>& test) {
    if (const auto it = probes_.find(feature); it != probes_.end()) return it->second;
    const bool answer = test();
    probes_.emplace(std::string(feature), answer);
    return answer;
  }

  // Whether the device's extension list names `extension`.
  bool has_extension(std::string_view extension) const {
    const std::string all = entry_.device.getInfo<CL_DEVICE_EXTENSIONS>();
    for (std::size_t at = all.find(extension); at != std::string::npos; at = all.find(extension, at + 1)) {
      const std::size_t end = at + extension.size();
      if ((at == 0 || all[at - 1] == ' ') && (end == all.size() || all[end] == ' ')) return true;
    }
    return false;
  }

  // Whether the device is NVIDIA's (its compiler takes inline PTX).
  bool nvidia() const noexcept { return nvidia_; }

  // How many work-groups of a launch, one per compute unit, are sure to run side by side, so that a
  // kernel may have some wait for others (kernels/last_group_cl.hpp's wait_for_release): NVIDIA's
  // driver starts every group that fits, and an in-order queue runs nothing beside the launch; 0
  // elsewhere (PoCL and others promise no such thing).
  std::size_t resident_groups() const noexcept { return resident_groups_; }

  // Programs compiled so far (each (source, options) pair counts once).
  std::size_t builds() const noexcept { return builds_; }

  // Waits for everything enqueued so far.
  void finish() { check(queue_.finish(), "waiting for the command queue"); }

  // Kernel profiling, on where the environment sets PBNN_OPENCL_PROFILE (to anything but 0) when the
  // runtime is made: every launch (and batch transfer) keeps its event, and take_profile() sums the device
  // time per kernel.
  struct kernel_time {
    std::string name;
    std::size_t launches = 0;
    double milliseconds = 0;
    // The device idle between the previous command's end and this one's start, and the part of it
    // before the host had enqueued this one.
    double idle_before_milliseconds = 0, unqueued_milliseconds = 0;
  };
  struct profile {
    std::vector<kernel_time> kernels;  // longest first
    // From the first kernel's start to the last one's end: beyond the kernels' sum, the device idled
    // (launch gaps, host work the queue waited for).
    double span_milliseconds = 0;
  };
  bool profiling() const noexcept { return profiling_; }
  void record(const char* kernel, cl::Event done) { profiled_.emplace_back(kernel, std::move(done)); }
  // Names the last recorded launch more precisely (a GEMM by its shape), while profiling.
  void label_last(std::string label) {
    if (profiling_ && !profiled_.empty()) profiled_.back().first = std::move(label);
  }
  // Device time per kernel name of the launches since the last call (waits for them).
  profile take_profile() {
    finish();
    std::map<std::string, kernel_time> by_name;
    cl_ulong first = ~cl_ulong{0}, last = 0, previous_end = 0;
    for (const auto& [name, ev] : profiled_) {  // in queue order
      cl_ulong queued = 0, start = 0, end = 0;
      check(ev.getProfilingInfo(CL_PROFILING_COMMAND_QUEUED, &queued), "reading a kernel's queue time");
      check(ev.getProfilingInfo(CL_PROFILING_COMMAND_START, &start), "reading a kernel's start time");
      check(ev.getProfilingInfo(CL_PROFILING_COMMAND_END, &end), "reading a kernel's end time");
      auto& t = by_name[name];
      t.name = name;
      ++t.launches;
      t.milliseconds += static_cast<double>(end - start) * 1e-6;
      if (previous_end && start > previous_end) {
        t.idle_before_milliseconds += static_cast<double>(start - previous_end) * 1e-6;
        if (queued > previous_end)
          t.unqueued_milliseconds += static_cast<double>(std::min(queued, start) - previous_end) * 1e-6;
      }
      previous_end = end;
      first = std::min(first, start);
      last = std::max(last, end);
    }
    profile out;
    if (!profiled_.empty()) out.span_milliseconds = static_cast<double>(last - first) * 1e-6;
    profiled_.clear();
    for (auto& [name, t] : by_name) out.kernels.push_back(std::move(t));
    std::sort(out.kernels.begin(), out.kernels.end(),
              [](const auto& a, const auto& b) { return a.milliseconds > b.milliseconds; });
    return out;
  }

 private:
  device_entry entry_;
  cl::Context context_;
  cl::CommandQueue queue_;
  // options -> source -> program; program -> kernel name -> kernel. Transparent comparators: no
  // allocation on a hit.
  using by_source_map = std::map<std::string, cl::Program, std::less<>>;
  std::map<std::string, by_source_map, std::less<>> programs_;
  std::map<cl_program, std::map<std::string, cl::Kernel, std::less<>>> kernels_;
  using static_key = std::tuple<const char*, std::size_t, const char*, std::size_t>;
  std::map<static_key, const cl::Program*> static_programs_;
  std::size_t builds_ = 0;
  bool nvidia_ = false;
  std::size_t resident_groups_ = 0;
  std::map<std::string, bool, std::less<>> probes_;
  bool profiling_ = false;
  cl::Buffer scratch_;
  std::size_t scratch_bytes_ = 0;
  cl::Buffer counters_;
  std::size_t counter_count_ = 0;
  std::vector<std::pair<std::string, cl::Event>> profiled_;
};

}  // namespace pbnn::opencl
