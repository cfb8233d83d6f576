#pragma once
// Choosing the OpenCL device. A spec names one:
//   ""            the default: the first GPU of any platform, else the first device of any kind
//   "P:D"         device D of platform P (indices as list_devices() prints them)
//   "gpu", "cpu"  the first device of that type
//   other text    the first device whose "platform / device" name contains it, case-insensitively
// The PBNN_OPENCL_DEVICE environment variable gives the spec where the program passes none.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "pbnn/opencl/bindings.hpp"
#include "pbnn/opencl/error.hpp"

namespace pbnn::opencl {

struct device_entry {
  std::size_t platform_index = 0, device_index = 0;
  cl::Platform platform;
  cl::Device device;
  std::string platform_name, device_name;
  bool is_gpu = false, is_cpu = false;

  std::string label() const { return fmt::format("{}:{} {} / {}", platform_index, device_index, platform_name, device_name); }
};

// Every device of every platform; empty when no ICD is installed or none has a device.
inline std::vector<device_entry> list_devices() {
  std::vector<cl::Platform> platforms;
  const cl_int err = cl::Platform::get(&platforms);
  // The ICD loader reports "no platform" as CL_PLATFORM_NOT_FOUND_KHR (-1001): an empty list.
  if (err == -1001 || platforms.empty()) return {};
  check(err, "listing platforms");
  std::vector<device_entry> out;
  for (std::size_t p = 0; p < platforms.size(); ++p) {
    std::vector<cl::Device> devices;
    const cl_int derr = platforms[p].getDevices(CL_DEVICE_TYPE_ALL, &devices);
    if (derr == CL_DEVICE_NOT_FOUND) continue;
    check(derr, "listing devices");
    for (std::size_t d = 0; d < devices.size(); ++d) {
      device_entry e;
      e.platform_index = p, e.device_index = d;
      e.platform = platforms[p], e.device = devices[d];
      e.platform_name = platforms[p].getInfo<CL_PLATFORM_NAME>();
      e.device_name = devices[d].getInfo<CL_DEVICE_NAME>();
      const auto type = devices[d].getInfo<CL_DEVICE_TYPE>();
      e.is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
      e.is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
      out.push_back(std::move(e));
    }
  }
  return out;
}

namespace detail {
inline std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}
inline std::optional<std::size_t> parse_index(const std::string& s) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); })) return std::nullopt;
  return static_cast<std::size_t>(std::stoull(s));
}
}  // namespace detail

// The device the spec names among `devices` (see the header comment); opencl_error (code
// CL_DEVICE_NOT_FOUND) listing what there is when none matches.
inline device_entry select_device(const std::vector<device_entry>& devices, const std::string& spec) {
  if (devices.empty())
    throw opencl_error(CL_DEVICE_NOT_FOUND,
                       "OpenCL: no platform with a device was found. Install an OpenCL driver (for the CPU, "
                       "Debian's pocl-opencl-icd) or register one in /etc/OpenCL/vendors/.");
  const auto matches = [&]() -> const device_entry* {
    if (spec.empty()) {
      for (const auto& d : devices)
        if (d.is_gpu) return &d;
      return &devices.front();
    }
    const auto colon = spec.find(':');
    if (colon != std::string::npos) {
      const auto p = detail::parse_index(spec.substr(0, colon)), d = detail::parse_index(spec.substr(colon + 1));
      if (p && d) {
        for (const auto& e : devices)
          if (e.platform_index == *p && e.device_index == *d) return &e;
        return nullptr;
      }
    }
    const std::string want = detail::lower(spec);
    for (const auto& e : devices)
      if ((want == "gpu" && e.is_gpu) || (want == "cpu" && e.is_cpu)) return &e;
    if (want == "gpu" || want == "cpu") return nullptr;
    for (const auto& e : devices)
      if (detail::lower(e.platform_name + " / " + e.device_name).find(want) != std::string::npos) return &e;
    return nullptr;
  }();
  if (matches) return *matches;
  std::string list;
  for (const auto& d : devices) list += "\n  " + d.label();
  throw opencl_error(CL_DEVICE_NOT_FOUND,
                     fmt::format("OpenCL: no device matches '{}' (expected P:D, gpu, cpu or part of a name); the "
                                 "devices are:{}",
                                 spec, list));
}

// The spec to use: the program's own if it gives one, else $PBNN_OPENCL_DEVICE, else the default.
inline std::string device_spec(const std::string& from_program = {}) {
  if (!from_program.empty()) return from_program;
  const char* env = std::getenv("PBNN_OPENCL_DEVICE");
  return env ? std::string(env) : std::string();
}

}  // namespace pbnn::opencl
