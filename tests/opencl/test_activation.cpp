// ReLU and hardtanh on the device against the CPU layers, forward and backward: identical values
// and exponents in every format.
#include <catch2/catch.hpp>

#include <vector>

#include <pbnn/layers/activation.hpp>
#include <pbnn/opencl/activation.hpp>
#include <pbnn/policy.hpp>

#include "opencl/opencl_device.hpp"

namespace {

using namespace pbnn;

template <class F>
batch_tensor<F> random_tensor(std::size_t rows, std::size_t cols, float range, rng& g) {
  std::vector<float> real(rows * cols);
  for (auto& v : real) v = g.uniform(-range, range);
  batch_tensor<F> t;
  t.resize(rows, cols);
  if constexpr (is_fixed_v<F>)
    t.exp = quantize_dynamic(real.data(), real.size(), t.data.data(), format_traits<F>::operand_max,
                             rounding::nearest_even, stream{});
  else
    std::copy(real.begin(), real.end(), t.data.data());
  return t;
}

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
  const auto x = random_tensor<TestType>(7, 33, 2.5f, g), dy = random_tensor<TestType>(7, 33, 0.4f, g);
  opencl::device_tensor<TestType> x_dev, dy_dev, out;
  x_dev.upload(*rt, x.rows(), x.cols(), x.data.data(), x.exp);
  dy_dev.upload(*rt, dy.rows(), dy.cols(), dy.data.data(), dy.exp);
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
