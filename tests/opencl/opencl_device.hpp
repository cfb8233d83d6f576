#pragma once
// The device the OpenCL tests run on. Where there is none: in CI (CI=true, which installs PoCL) the
// test fails; elsewhere it is skipped with a visible warning, never passed silently.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <memory>
#include <string>

#include <pbnn/opencl/device.hpp>
#include <pbnn/opencl/runtime.hpp>

namespace test_opencl {

inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

// The shared runtime, or nullptr after reporting why there is none.
inline pbnn::opencl::runtime* shared_runtime() {
  static std::unique_ptr<pbnn::opencl::runtime> rt;
  static std::string why;
  static bool tried = false;
  if (!tried) {
    tried = true;
    try {
      rt = std::make_unique<pbnn::opencl::runtime>();
    } catch (const std::exception& e) {
      why = e.what();
    }
  }
  if (!rt) {
    if (in_ci()) FAIL("CI=true but no OpenCL device could be opened: " << why);
    WARN("SKIPPED: no OpenCL device (" << why << ")");
  }
  return rt.get();
}

}  // namespace test_opencl
