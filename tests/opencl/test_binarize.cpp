// The schemes' element-wise kernels against the CPU backend's functions on the same values and
// streams: identical results (values and exponents) in every format.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include <pbnn/binarize.hpp>
#include <pbnn/opencl/binarize.hpp>

#include "opencl/opencl_device.hpp"
#include "opencl/parity.hpp"

namespace {

using namespace pbnn;

template <class T>
std::size_t mismatches(const std::vector<T>& device, const T* cpu, std::size_t n) {
  std::size_t bad = device.size() < n ? 1 : 0;
  for (std::size_t i = 0; i < std::min(n, device.size()); ++i) bad += device[i] != cpu[i];
  return bad;
}

template <class F>
batch_tensor<F> random_tensor(std::size_t rows, std::size_t cols, float range, rng& g) {
  auto t = test_opencl::random_tensor<F>(rows, cols, -range, range, g);
  t.data.data()[3] = 0;  // sign(0) = -1
  return t;
}

}  // namespace

TEMPLATE_TEST_CASE("OpenCL weight binarization equals the CPU's", "[opencl][binarize]", fp32, fixed<8>, fixed<16>) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  using S = storage_t<TestType>;
  const std::size_t n = 1234;
  rng g(11);
  parameter<TestType> p("weight", param_role::binarized, {n});
  saturation_counter sat;
  for (std::size_t i = 0; i < n; ++i) p.store(i, g.uniform(-1.0f, 1.0f) * (i % 3 ? 1.0f : 0.01f), g.uniform(), sat);
  p.store(5, 0.0f, 0.0f, sat);
  opencl::device_buffer<S> value, out;
  value.upload(*rt, p.value.data(), n);
  opencl::device_buffer<int> value_exp, out_exp;
  value_exp.upload(*rt, &p.exp, 1);
  out_exp.resize(*rt, 1);
  std::vector<S> theta(n);
  int theta_exp = 99;

  detail::sign_weights(p, theta.data(), theta_exp);
  opencl::sign_values<TestType>(*rt, value, n, out, &out_exp);
  CHECK(mismatches(out.download(*rt), theta.data(), n) == 0);
  CHECK(out_exp.download(*rt)[0] == theta_exp);

  const stream rnd{0x9876u};
  detail::stochastic_signs(p.value.data(), p.exp, n, theta.data(), rnd);
  opencl::stochastic_signs<TestType>(*rt, value, value_exp, n, out, nullptr, rnd);
  CHECK(mismatches(out.download(*rt), theta.data(), n) == 0);

  context ctx;
  for (const float v : {1.0f, 5.623413f, 177.82794f, 1000.0f}) {
    INFO("v = " << v);
    ctx.v = v;
    progressive<>::weights(p, theta.data(), theta_exp, ctx);
    opencl::clamp_scale<TestType>(*rt, value, value_exp, n, v, out, out_exp);
    CHECK(mismatches(out.download(*rt), theta.data(), n) == 0);
    CHECK(out_exp.download(*rt)[0] == theta_exp);

    for (std::size_t i = 0; i < n; ++i) p.grad[i] = static_cast<typename parameter<TestType>::grad_type>(g.uniform(-50, 50));
    opencl::device_buffer<typename parameter<TestType>::grad_type> grad;
    grad.upload(*rt, p.grad.data(), n);
    progressive<>::weight_grad(p, ctx);
    opencl::mask_saturated_values<TestType>(*rt, value, p.exp, n, v, grad);
    CHECK(mismatches(grad.download(*rt), p.grad.data(), n) == 0);
  }
}

TEMPLATE_TEST_CASE("OpenCL activation binarization and its gradients equal the CPU's", "[opencl][binarize]", fp32,
                   fixed<8>, fixed<16>) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  rng g(12);
  const auto x = random_tensor<TestType>(17, 59, 2.0f, g), dy = random_tensor<TestType>(17, 59, 0.5f, g);
  const auto x_dev = test_opencl::to_device(*rt, x), dy_dev = test_opencl::to_device(*rt, dy);
  batch_tensor<TestType> out;
  opencl::device_tensor<TestType> out_dev;

  detail::straight_through(x, dy, out);
  opencl::straight_through(*rt, x_dev, dy_dev, out_dev);
  CHECK(mismatches(out_dev.data.download(*rt), out.data.data(), out.size()) == 0);
  CHECK(out_dev.download_exp(*rt) == out.exp);

  context ctx;
  for (const float v : {1.0f, 3.0f, 31.622776f, 1000.0f}) {
    INFO("v = " << v);
    ctx.v = v;
    progressive<>::activate(x, out, ctx);
    out_dev.resize(*rt, x.rows(), x.cols());
    opencl::clamp_scale<TestType>(*rt, x_dev.data, x_dev.exp, x.size(), v, out_dev.data, out_dev.exp);
    CHECK(mismatches(out_dev.data.download(*rt), out.data.data(), out.size()) == 0);
    CHECK(out_dev.download_exp(*rt) == out.exp);

    rng draws = g;  // the stream the CPU will draw next
    ctx.gen = &g;
    progressive<log_schedule, activation_gradient::exact>::activate_grad(x, dy, out, ctx);
    opencl::progressive_grad(*rt, x_dev, dy_dev, out_dev, v, make_stream(draws));
    CHECK(mismatches(out_dev.data.download(*rt), out.data.data(), out.size()) == 0);
    CHECK(out_dev.download_exp(*rt) == out.exp);
  }
}
