#pragma once
// The OpenCL backend as a policy: pbnn::policy<Format, Scheme, pbnn::opencl::backend> builds the same
// networks as the CPU backend with their tensors and parameters on an OpenCL device
// (pbnn/opencl/network.hpp), trained by pbnn::trainer (pbnn/opencl/train.hpp).
//
// A network constructed without a runtime uses the process's default one, opened on first use on the
// device set_default_device() named, else $PBNN_OPENCL_DEVICE, else the first GPU (device.hpp).
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "pbnn/opencl/runtime.hpp"

namespace pbnn::opencl {

struct backend {
  static constexpr const char* name = "opencl";
};

namespace detail {
inline std::string& default_device_spec() {
  static std::string spec;
  return spec;
}
inline std::unique_ptr<runtime>& default_runtime_slot() {
  static std::unique_ptr<runtime> rt;
  return rt;
}
}  // namespace detail

// Names the device of the default runtime (a device spec, device.hpp); only before it is opened.
inline void set_default_device(std::string spec) {
  if (detail::default_runtime_slot())
    throw std::logic_error("pbnn::opencl::set_default_device: the default runtime is already open on " +
                           detail::default_runtime_slot()->device().label());
  detail::default_device_spec() = std::move(spec);
}

// The runtime of networks constructed without one; opened on the first call.
inline runtime& default_runtime() {
  auto& rt = detail::default_runtime_slot();
  if (!rt) rt = std::make_unique<runtime>(detail::default_device_spec());
  return *rt;
}

template <class Net>
concept device_network = std::is_same_v<typename Net::policy_type::backend, backend>;

}  // namespace pbnn::opencl
