// The device convolution against the CPU's conv2d_layer, every format and the weight schemes,
// forward and backward from the same weights, inputs and random streams: identical in fixed formats,
// to a relative 1e-5 in fp32. Shapes cover padding, stride, inputs whose products read them in place
// of im2col (16 and 32 channels, on tensor cores), and weight-gradient reductions longer
// than the int32 GEMM sums exactly (chunked in 64 bits: 720 rows for fixed<16>, 65 536 for fixed<8>).
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <pbnn/layers/conv2d.hpp>
#include <pbnn/opencl/conv2d.hpp>
#include <pbnn/policy.hpp>

#include "opencl/opencl_device.hpp"
#include "opencl/parity.hpp"

namespace {

using namespace pbnn;
using test_opencl::differences;

template <class F, class Scheme, std::size_t B, std::size_t C, std::size_t H, std::size_t Cout, std::size_t K,
          std::size_t Stride, std::size_t Pad>
void check_conv(opencl::runtime& rt) {
  INFO("scheme " << Scheme::name << ", " << C << "x" << H << "x" << H << " -> " << Cout << ", k" << K << " s" << Stride
                 << " p" << Pad << ", batch " << B);
  using host_layer = conv2d_layer<policy<F, Scheme>, shape<C, H, H>, Cout, K, Stride, Pad>;
  auto host = std::make_unique<host_layer>();
  rng g(71);
  host->init(g);
  opencl::device_conv2d<policy<F, Scheme>, C, H, H, Cout, K, Stride, Pad> dev(rt, host->weight());
  constexpr std::size_t Ho = host_layer::Ho;
  const auto x = test_opencl::random_tensor<F>(B, H * H * C, -1.0f, 1.0f, g);
  const auto dy = test_opencl::random_tensor<F>(B, Ho * Ho * Cout, -0.2f, 0.2f, g);
  opencl::device_tensor<F> x_dev, dy_dev, y_dev, dx_dev;
  x_dev.upload(rt, B, H * H * C, x.data.data(), x.exp);
  dy_dev.upload(rt, B, Ho * Ho * Cout, dy.data.data(), dy.exp);

  rng host_gen = g, dev_gen = g;
  context hc, dc;
  hc.v = dc.v = 5.623413f;
  hc.gen = &host_gen;
  dc.gen = &dev_gen;
  batch_tensor<F> y, dx;
  host->forward(x, y, hc);
  dev.forward(rt, x_dev, y_dev, dc);
  CHECK(y_dev.download_exp(rt) == y.exp);
  CHECK(differences(y_dev.data.download(rt), y.data.data(), y.size()) == 0);

  host->backward(x, y, dy, C > 1 ? &dx : nullptr, hc);
  dev.backward(rt, x_dev, dy_dev, C > 1 ? &dx_dev : nullptr, dc);
  if (C > 1) {
    CHECK(dx_dev.download_exp(rt) == dx.exp);
    CHECK(differences(dx_dev.data.download(rt), dx.data.data(), dx.size()) == 0);
  }
  const auto host_grad = test_opencl::real_gradient(host->weight());
  CHECK(differences(test_opencl::real_gradient(rt, dev.weight()), host_grad.data(), host_grad.size()) == 0);
}

}  // namespace

TEMPLATE_TEST_CASE("OpenCL conv2d equals the CPU layer", "[opencl][conv2d]", fp32, fixed<8>, fixed<16>) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  check_conv<TestType, progressive<>, 5, 4, 12, 6, 3, 1, 1>(*rt);
  check_conv<TestType, sign, 3, 3, 9, 5, 3, 2, 1>(*rt);
  check_conv<TestType, stochastic, 2, 5, 8, 4, 5, 1, 2>(*rt);
  check_conv<TestType, real, 2, 4, 7, 3, 3, 1, 0>(*rt);
  // Channels in whole 16-byte words: on tensor cores the products read x in place of im2col.
  check_conv<TestType, progressive<>, 3, 16, 6, 8, 3, 1, 1>(*rt);
  check_conv<TestType, sign, 2, 32, 7, 4, 3, 2, 1>(*rt);
}

TEST_CASE("OpenCL conv2d chunks a fixed<8> weight gradient beyond 65 000 rows as the CPU does", "[opencl][conv2d]") {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  check_conv<fixed<8>, progressive<>, 16, 1, 64, 2, 1, 1, 0>(*rt);
}
