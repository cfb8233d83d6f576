// The device dense layer against the CPU's dense_layer, every format and scheme, forward and backward
// from the same weights, inputs and random streams: identical in fixed formats (integer products and
// the same rounding), to a relative 1e-5 in fp32.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <pbnn/layers/dense.hpp>
#include <pbnn/opencl/dense.hpp>
#include <pbnn/policy.hpp>

#include "opencl/opencl_device.hpp"
#include "opencl/parity.hpp"

namespace {

using namespace pbnn;
using test_opencl::differences;

template <class F, class Scheme, bool Bias = false>
void check_dense(opencl::runtime& rt) {
  INFO("scheme " << Scheme::name << (Bias ? ", with a bias" : ""));
  constexpr std::size_t In = 70, Out = 37, B = 9;
  dense_layer<policy<F, Scheme>, shape<In>, Out, Bias> host;
  rng g(61);
  host.init(g);
  using device_type = opencl::device_dense<policy<F, Scheme>, In, Out, Bias>;
  device_type dev = [&] {
    if constexpr (Bias) return device_type(rt, host.weight(), host.bias());
    else return device_type(rt, host.weight());
  }();
  const auto x = test_opencl::random_tensor<F>(B, In, -1.0f, 1.0f, g);
  const auto dy = test_opencl::random_tensor<F>(B, Out, -0.2f, 0.2f, g);
  opencl::device_tensor<F> x_dev, dy_dev, y_dev, dx_dev;
  x_dev.upload(rt, B, In, x.data.data(), x.exp);
  dy_dev.upload(rt, B, Out, dy.data.data(), dy.exp);

  for (const float v : {1.0f, 31.622776f}) {
    INFO("v = " << v);
    rng host_gen = g, dev_gen = g;
    context hc, dc;
    hc.v = dc.v = v;
    hc.gen = &host_gen;
    dc.gen = &dev_gen;
    batch_tensor<F> y, dx;
    host.forward(x, y, hc);
    dev.forward(rt, x_dev, y_dev, dc);
    CHECK(y_dev.download_exp(rt) == y.exp);
    CHECK(differences(y_dev.data.download(rt), y.data.data(), y.size()) == 0);

    host.backward(x, y, dy, &dx, hc);
    dev.backward(rt, x_dev, dy_dev, &dx_dev, dc);
    CHECK(dx_dev.download_exp(rt) == dx.exp);
    CHECK(differences(dx_dev.data.download(rt), dx.data.data(), dx.size()) == 0);
    const auto host_grad = test_opencl::real_gradient(host.weight());
    CHECK(differences(test_opencl::real_gradient(rt, dev.weight()), host_grad.data(), host_grad.size()) == 0);
    if constexpr (Bias) {
      const auto host_bias_grad = test_opencl::real_gradient(host.bias());
      CHECK(differences(test_opencl::real_gradient(rt, dev.bias()), host_bias_grad.data(), host_bias_grad.size()) == 0);
    }
  }
}

}  // namespace

TEMPLATE_TEST_CASE("OpenCL dense layer equals the CPU layer in every scheme", "[opencl][dense]", fp32, fixed<8>,
                   fixed<16>) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  check_dense<TestType, real>(*rt);
  check_dense<TestType, sign>(*rt);
  check_dense<TestType, stochastic>(*rt);
  check_dense<TestType, progressive<>>(*rt);
  check_dense<TestType, real, true>(*rt);
  check_dense<TestType, progressive<>, true>(*rt);
}
