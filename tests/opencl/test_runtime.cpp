// The OpenCL runtime: error names, device selection, program builds (cached, with the build log on
// failure), a kernel that runs, and device buffers' allocation.
#include <catch2/catch.hpp>

#include <numeric>
#include <string>
#include <vector>

#include <pbnn/opencl/buffer.hpp>

#include "opencl/opencl_device.hpp"

using namespace pbnn::opencl;

TEST_CASE("OpenCL error codes carry their names", "[opencl]") {
  CHECK(error_name(CL_SUCCESS) == "CL_SUCCESS");
  CHECK(error_name(CL_OUT_OF_RESOURCES) == "CL_OUT_OF_RESOURCES");
  CHECK(error_name(CL_INVALID_KERNEL_NAME) == "CL_INVALID_KERNEL_NAME");
  CHECK(error_name(-1001) == "CL_PLATFORM_NOT_FOUND_KHR");
  CHECK(error_name(12345) == "unknown OpenCL error");
  CHECK_NOTHROW(check(CL_SUCCESS, "nothing"));
  try {
    check(CL_INVALID_VALUE, "setting an argument");
    FAIL("check did not throw");
  } catch (const opencl_error& e) {
    CHECK(e.code() == CL_INVALID_VALUE);
    CHECK_THAT(e.what(), Catch::Contains("setting an argument") && Catch::Contains("CL_INVALID_VALUE"));
  }
}

TEST_CASE("device selection: default, index, type and name specs, and a clear error otherwise", "[opencl]") {
  CHECK_THROWS_WITH(select_device({}, ""), Catch::Contains("no platform with a device"));
  if (!test_opencl::shared_runtime()) return;
  const auto devices = list_devices();
  REQUIRE_FALSE(devices.empty());
  const auto def = select_device(devices, "");
  bool any_gpu = false;
  for (const auto& d : devices) any_gpu = any_gpu || d.is_gpu;
  CHECK(def.is_gpu == any_gpu);  // the first GPU where there is one
  const auto& last = devices.back();
  const auto by_index = select_device(devices, std::to_string(last.platform_index) + ":" + std::to_string(last.device_index));
  CHECK(by_index.label() == last.label());
  const auto by_name = select_device(devices, last.device_name);
  CHECK(by_name.device_name == last.device_name);
  try {
    select_device(devices, "no-such-device-anywhere");
    FAIL("an unknown device was accepted");
  } catch (const opencl_error& e) {
    CHECK(e.code() == CL_DEVICE_NOT_FOUND);
    CHECK_THAT(e.what(), Catch::Contains("no-such-device-anywhere") && Catch::Contains(last.device_name));
  }
  CHECK_THROWS_AS(select_device(devices, "99:0"), opencl_error);
}

TEST_CASE("programs build once per source and options, and a failed build reports its log", "[opencl]") {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  const std::string src = "__kernel void scale(__global float* x, float a) { x[get_global_id(0)] *= a; }";
  const auto before = rt->builds();
  const cl::Program& p1 = rt->program(src, "-DUNUSED=1");
  const cl::Program& p2 = rt->program(src, "-DUNUSED=1");
  CHECK(&p1 == &p2);
  CHECK(rt->builds() == before + 1);
  rt->program(src, "-DUNUSED=2");  // other options: another build
  CHECK(rt->builds() == before + 2);

  const std::string broken = "__kernel void broken(__global float* x) { x[0] = undeclared_name; }";
  try {
    rt->program(broken);
    FAIL("a broken kernel built");
  } catch (const opencl_error& e) {
    CHECK(e.code() == CL_BUILD_PROGRAM_FAILURE);
    CHECK_THAT(e.what(), Catch::Contains("build log") && Catch::Contains("undeclared_name"));
  }
  CHECK(rt->builds() == before + 2);
  CHECK_THROWS_WITH(rt->kernel(p1, "no_such_kernel"), Catch::Contains("CL_INVALID_KERNEL_NAME"));
}

TEST_CASE("a kernel runs on the selected device", "[opencl]") {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  const std::string src = "__kernel void axpy(__global const float* x, __global float* y, float a) {"
                          "  const size_t i = get_global_id(0); y[i] += a * x[i]; }";
  cl::Kernel k = rt->kernel(rt->program(src), "axpy");
  const std::size_t n = 1000;
  std::vector<float> x(n), y(n, 1.0f);
  std::iota(x.begin(), x.end(), 0.0f);
  cl_int err = CL_SUCCESS;
  cl::Buffer bx(rt->context(), CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, n * sizeof(float), x.data(), &err);
  check(err, "buffer x");
  cl::Buffer by(rt->context(), CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, n * sizeof(float), y.data(), &err);
  check(err, "buffer y");
  check(k.setArg(0, bx), "arg 0");
  check(k.setArg(1, by), "arg 1");
  check(k.setArg(2, 2.0f), "arg 2");
  check(rt->queue().enqueueNDRangeKernel(k, cl::NullRange, cl::NDRange(n)), "enqueue");
  check(rt->queue().enqueueReadBuffer(by, CL_TRUE, 0, n * sizeof(float), y.data()), "read back");
  for (std::size_t i = 0; i < n; ++i) REQUIRE(y[i] == 1.0f + 2.0f * static_cast<float>(i));
}

TEST_CASE("device buffers grow but keep their memory when they shrink, until resized to 0", "[opencl]") {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  device_buffer<float> b;
  b.resize(*rt, 100);
  const cl_mem first = b.handle()();
  b.resize(*rt, 40);  // smaller: the same memory (freeing it could wait for kernels still using it)
  CHECK(b.size() == 40);
  CHECK(b.handle()() == first);
  CHECK(b.download(*rt).size() == 40);
  b.resize(*rt, 100);  // back within the allocation
  CHECK(b.handle()() == first);
  b.resize(*rt, 101);  // beyond it: new memory
  CHECK(b.size() == 101);
  CHECK(b.handle()() != nullptr);
  b.resize(*rt, 0);
  CHECK(b.size() == 0);
  CHECK(b.handle()() == nullptr);
}
