// ReLU and hardtanh on the device against the CPU layers, forward and backward: identical values
// and exponents in every format.
#include <catch2/catch.hpp>

#include <vector>

#include <pbnn/layers/activation.hpp>
#include <pbnn/opencl/activation.hpp>
#include <pbnn/policy.hpp>

#include "opencl/opencl_device.hpp"
#include "opencl/parity.hpp"

namespace {

using namespace pbnn;

template <class F>
void check_equal(opencl::runtime& rt, const opencl::device_tensor<F>& d, const batch_tensor<F>& h) {
  CHECK(d.download_exp(rt) == h.exp);
  CHECK(d.data.download(rt) == std::vector<storage_t<F>>(h.data.begin(), h.data.end()));
}

}  // namespace

TEMPLATE_TEST_CASE("OpenCL relu and hardtanh equal the CPU layers", "[opencl][activation]", fp32, fixed<8>, fixed<16>) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  rng g(51);
  const auto x = test_opencl::random_tensor<TestType>(7, 33, -2.5f, 2.5f, g);
  const auto dy = test_opencl::random_tensor<TestType>(7, 33, -0.4f, 0.4f, g);
  const auto x_dev = test_opencl::to_device(*rt, x), dy_dev = test_opencl::to_device(*rt, dy);
  opencl::device_tensor<TestType> out;
  context ctx;
  ctx.gen = &g;
  batch_tensor<TestType> y, dx;

  relu_layer<policy<TestType, real>, shape<33>> r;
  r.forward(x, y, ctx);
  opencl::relu(*rt, x_dev, out);
  check_equal(*rt, out, y);
  r.backward(x, y, dy, &dx, ctx);
  opencl::relu_grad(*rt, x_dev, dy_dev, out);
  check_equal(*rt, out, dx);

  hardtanh_layer<policy<TestType, real>, shape<33>> h;
  h.forward(x, y, ctx);
  opencl::hardtanh(*rt, x_dev, out);
  check_equal(*rt, out, y);
  h.backward(x, y, dy, &dx, ctx);
  opencl::hardtanh_grad(*rt, x_dev, dy_dev, out);
  check_equal(*rt, out, dx);
}
