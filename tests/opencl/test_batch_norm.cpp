// Batch norm on the device against the CPU layer, in training, evaluation and as a threshold, with
// its backward pass; and the fp32 passes fused with an activation (and a max pool in front), in one
// launch each way where the device allows, against the separate layers, also reading a product's
// unsummed k slices. The statistics are float computations in another order than the CPU's double
// ones, so values agree to a relative 1e-4 (fp32), or within one step of the format (fixed; the
// exponents equal); threshold signs may differ only where BN(x) is within rounding of zero.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <utility>
#include <vector>

#include <pbnn/layers/batch_norm.hpp>
#include <pbnn/opencl/activation.hpp>
#include <pbnn/opencl/batch_norm.hpp>
#include <pbnn/opencl/binarize.hpp>
#include <pbnn/opencl/conv.hpp>
#include <pbnn/policy.hpp>

#include "opencl/opencl_device.hpp"
#include "opencl/parity.hpp"

namespace {

using namespace pbnn;
using test_opencl::random_tensor;

// Values of the device tensor against the CPU's: same exponent, each within tol (relative, fp32)
// or one step (fixed).
template <class F>
void check_close(opencl::runtime& rt, const opencl::device_tensor<F>& d, const batch_tensor<F>& h, float tol) {
  CHECK(d.download_exp(rt) == h.exp);
  const auto got = d.data.download(rt);
  REQUIRE(got.size() == h.size());
  float scale = 0;
  for (std::size_t i = 0; i < h.size(); ++i) scale = std::max(scale, std::fabs(static_cast<float>(h.data.data()[i])));
  std::size_t bad = 0;
  for (std::size_t i = 0; i < h.size(); ++i) {
    const float diff = std::fabs(static_cast<float>(got[i]) - static_cast<float>(h.data.data()[i]));
    bad += is_fixed_v<F> ? diff > 1.0f : diff > tol * scale;
  }
  CHECK(bad == 0);
}

// A per-channel fp32 parameter of C values drawn from [low, high), every ninth (from the fifth) 0.
parameter<fp32> channel_parameter(std::size_t C, float low, float high, rng& g) {
  parameter<fp32> p("p", param_role::real, {C});
  saturation_counter sat;
  for (std::size_t c = 0; c < C; ++c) p.store(c, c % 9 == 4 ? 0.0f : g.uniform(low, high), 0.0f, sat);
  return p;
}

}  // namespace

TEMPLATE_TEST_CASE("OpenCL batch norm equals the CPU layer", "[opencl][batch_norm]", fp32, fixed<8>, fixed<16>) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  constexpr std::size_t C = 5, H = 4, W = 3;
  // 72 positions: one work-group per channel tile; 7 200: partial sums over slices, then added.
  const std::size_t B = GENERATE(6, 600);
  CAPTURE(B);
  batch_norm_layer<policy<TestType, progressive<>>, shape<C, H, W>, 0> bn;
  rng g(41);
  bn.init(g);
  saturation_counter sat;
  const float gammas[C] = {1.3f, -0.8f, 0.0f, 0.5f, 2.0f}, betas[C] = {0.25f, -0.5f, 0.75f, 0.0f, -1.0f};
  for (std::size_t c = 0; c < C; ++c) {
    bn.gamma().store(c, gammas[c], 0.0f, sat);
    bn.beta().store(c, betas[c], 0.0f, sat);
  }
  const auto x = random_tensor<TestType>(B, H * W * C, -1.5f, 2.5f, g);
  const auto dy = random_tensor<TestType>(B, H * W * C, -0.3f, 0.3f, g);

  opencl::device_batch_norm<TestType> dbn(*rt, C);
  auto gamma = opencl::device_parameter<TestType>::from_host(*rt, bn.gamma());
  auto beta = opencl::device_parameter<TestType>::from_host(*rt, bn.beta());
  const auto x_dev = test_opencl::to_device(*rt, x), ddy = test_opencl::to_device(*rt, dy);
  opencl::device_tensor<TestType> dout, ddx;

  // Training: batch statistics, output, running statistics.
  context ctx;
  batch_tensor<TestType> y, dx, signs;
  bn.forward(x, y, ctx);
  dbn.train_forward(*rt, x_dev, gamma, beta, dout);  // fp32: in one launch, where the device allows
  check_close(*rt, dout, y, 1e-4f);
  const auto rm = dbn.running_mean.download(*rt), rv = dbn.running_var.download(*rt);
  for (std::size_t c = 0; c < C; ++c) {
    CHECK(rm[c] == Approx(bn.running_mean()[c]).epsilon(1e-4).margin(1e-6));
    CHECK(rv[c] == Approx(bn.running_var()[c]).epsilon(1e-4));
  }

  // Backward: gamma's and beta's gradients and dx.
  rng draws = g;
  ctx.gen = &g;
  bn.backward(x, y, dy, &dx, ctx);
  dbn.backward(*rt, x_dev, ddy, gamma, beta, &ddx, make_stream(draws));
  check_close(*rt, ddx, dx, 1e-4f);
  for (const auto& [device, host] : {std::pair{&gamma, &bn.gamma()}, std::pair{&beta, &bn.beta()}}) {
    const auto want = test_opencl::real_gradient(*host), got = test_opencl::real_gradient(*rt, *device);
    for (std::size_t c = 0; c < C; ++c) CHECK(got[c] == Approx(want[c]).epsilon(1e-4).margin(1e-5));
  }

  // Threshold in evaluation (running statistics), against the CPU's.
  context eval;
  eval.mode = mode::eval;
  bn.sign_by_threshold(x, signs, eval);
  dbn.statistics(*rt, x_dev, gamma, beta, mode::eval);
  dbn.threshold(*rt, x_dev, dout);
  const auto got = dout.data.download(*rt);
  std::size_t differ = 0;
  for (std::size_t i = 0; i < got.size(); ++i) differ += got[i] != signs.data.data()[i];
  CHECK(differ <= got.size() / 200);
  CHECK(dout.download_exp(*rt) == 0);
}

TEST_CASE("OpenCL fp32 batch norm fused with the activation after it computes what the two layers do",
          "[opencl][batch_norm]") {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  // Two channel tiles; 100 positions: one launch each way on any device, one work-group per tile; 300:
  // several position slices, in one launch on devices whose work-groups run all at once.
  constexpr std::size_t C = 40;
  const std::size_t B = GENERATE(100, 300);
  CAPTURE(B);
  rng g(7);
  const auto x = random_tensor<fp32>(B, C, -1.5f, 2.5f, g);
  const auto dy = random_tensor<fp32>(B, C, -0.3f, 0.3f, g);
  std::vector<float> gammas(C), betas(C);
  for (std::size_t c = 0; c < C; ++c) {
    gammas[c] = c % 7 == 3 ? 0.0f : g.uniform(-2.0f, 2.0f);  // gamma 0 and negative gammas included
    betas[c] = g.uniform(-1.0f, 1.0f);
  }
  const auto parameter_on_device = [&](const std::vector<float>& values) {
    parameter<fp32> p("p", param_role::real, {C});
    saturation_counter sat;
    for (std::size_t c = 0; c < C; ++c) p.store(c, values[c], 0.0f, sat);
    return opencl::device_parameter<fp32>::from_host(*rt, p);
  };
  const auto x_dev = test_opencl::to_device(*rt, x), dy_dev = test_opencl::to_device(*rt, dy);
  const auto close = [](const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < a.size(); ++i) bad += !(std::fabs(a[i] - b[i]) <= 1e-6f * (1.0f + std::fabs(b[i])));
    return bad;
  };

  using act = opencl::fused_activation;
  for (const act kind : {act::progressive, act::sign, act::relu}) {
    INFO("activation " << static_cast<int>(kind) << " (0 ReLU, 1 sign, 2 progressive with v = 3)");
    const float v = 3.0f;
    auto gamma = parameter_on_device(gammas), beta = parameter_on_device(betas);
    auto gamma2 = parameter_on_device(gammas), beta2 = parameter_on_device(betas);
    opencl::device_batch_norm<fp32> separate(*rt, C), fused(*rt, C);
    separate.single_launch = false;

    // Two layers: normalized y, then the activation; backward through its gradient.
    opencl::device_tensor<fp32> y, out, d_act, dx;
    separate.statistics(*rt, x_dev, gamma, beta, mode::train);
    separate.forward(*rt, x_dev, y);
    out.resize(*rt, B, C);
    if (kind == act::progressive)
      opencl::clamp_scale<fp32>(*rt, y.data, y.exp, y.size(), v, out.data, out.exp);
    else if (kind == act::sign)
      opencl::sign_values<fp32>(*rt, y.data, y.size(), out.data, &out.exp);
    else
      opencl::relu(*rt, y, out);
    if (kind == act::relu)
      opencl::relu_grad(*rt, y, dy_dev, d_act);
    else
      opencl::straight_through(*rt, y, dy_dev, d_act);
    separate.backward(*rt, x_dev, d_act, gamma, beta, &dx, stream{});

    // One pass each way (one launch each where the device allows); the gradient replaces dy in place.
    opencl::device_tensor<fp32> out2, d = test_opencl::to_device(*rt, dy);
    fused.train_forward_activate(*rt, x_dev, gamma2, beta2, out2, kind, v);
    fused.backward_through_activation(*rt, x_dev, d, gamma2, beta2, kind, true);

    // Statistics summed in another order (one launch): equal to rounding.
    CHECK(close(out2.data.download(*rt), out.data.download(*rt)) == 0);
    CHECK(close(d.data.download(*rt), dx.data.download(*rt)) == 0);
    CHECK(close(gamma2.grad.download(*rt), gamma.grad.download(*rt)) == 0);
    CHECK(close(beta2.grad.download(*rt), beta.grad.download(*rt)) == 0);
  }
}

TEMPLATE_TEST_CASE("OpenCL fixed batch norm with the progressive activation in its passes computes what the two "
                   "layers do",
                   "[opencl][batch_norm]", fixed<8>, fixed<16>) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  constexpr std::size_t C = 40;
  // 4 000 values: one launch quantizes them; 40 000: the maximum comes from the affine pass.
  const std::size_t B = GENERATE(100, 1000);
  CAPTURE(B);
  batch_norm_layer<policy<TestType, progressive<>>, shape<C>, 0> bn;
  rng g(9);
  bn.init(g);
  const auto x = random_tensor<TestType>(B, C, -1.5f, 2.5f, g);
  const auto dy = random_tensor<TestType>(B, C, -0.3f, 0.3f, g);
  const auto x_dev = test_opencl::to_device(*rt, x);
  auto gamma = opencl::device_parameter<TestType>::from_host(*rt, bn.gamma());
  auto beta = opencl::device_parameter<TestType>::from_host(*rt, bn.beta());
  auto gamma2 = opencl::device_parameter<TestType>::from_host(*rt, bn.gamma());
  auto beta2 = opencl::device_parameter<TestType>::from_host(*rt, bn.beta());
  for (const float v : {1.0f, 3.0f, 40.0f}) {
    CAPTURE(v);
    opencl::device_batch_norm<TestType> separate(*rt, C), fused(*rt, C);
    opencl::device_tensor<TestType> y, theta, y2, theta2;
    separate.statistics(*rt, x_dev, gamma, beta, mode::train);
    separate.forward(*rt, x_dev, y);
    theta.resize(*rt, B, C);
    opencl::clamp_scale<TestType>(*rt, y.data, y.exp, y.size(), v, theta.data, theta.exp);
    fused.statistics(*rt, x_dev, gamma, beta, mode::train);
    fused.forward_progressive(*rt, x_dev, y2, theta2, v);
    CHECK(y2.data.download(*rt) == y.data.download(*rt));
    CHECK(y2.download_exp(*rt) == y.download_exp(*rt));
    CHECK(theta2.data.download(*rt) == theta.data.download(*rt));
    CHECK(theta2.download_exp(*rt) == theta.download_exp(*rt));

    // Backward: the straight-through gradient, then the layer's; folded, dx in place of dy.
    const stream rnd{0x5eedu};
    opencl::device_tensor<TestType> d_act, dx, d = test_opencl::to_device(*rt, dy);
    opencl::straight_through(*rt, y, d, d_act);
    separate.backward(*rt, x_dev, d_act, gamma, beta, &dx, rnd);
    fused.backward_straight_through(*rt, x_dev, y2, d, gamma2, beta2, &d, rnd);
    CHECK(d.data.download(*rt) == dx.data.download(*rt));
    CHECK(d.download_exp(*rt) == dx.download_exp(*rt));
    CHECK(gamma2.grad.download(*rt) == gamma.grad.download(*rt));
    CHECK(beta2.grad.download(*rt) == beta.grad.download(*rt));
    CHECK(gamma2.grad_exp.download(*rt) == gamma.grad_exp.download(*rt));
    CHECK(beta2.grad_exp.download(*rt) == beta.grad_exp.download(*rt));
  }
}

TEST_CASE("OpenCL fp32 max pool, batch norm and activation trained together compute what the three layers do",
          "[opencl][batch_norm]") {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  constexpr std::size_t C = 40, H = 8, W = 8, pool = 2;  // two channel tiles
  // 4 images: 64 pooled positions, one launch each way on any device; 40: 640, several position slices
  // in one launch on devices whose work-groups run all at once, else the layers' launches.
  const std::size_t B = GENERATE(4, 40);
  CAPTURE(B);
  rng g(11);
  const auto image = random_tensor<fp32>(B, H * W * C, -1.5f, 2.5f, g);
  const std::size_t pooled_size = B * (H / pool) * (W / pool) * C;
  const auto dy = random_tensor<fp32>(B, pooled_size / B, -0.3f, 0.3f, g);
  const auto host_gamma = channel_parameter(C, -2.0f, 2.0f, g), host_beta = channel_parameter(C, -1.0f, 1.0f, g);
  using device_parameter = opencl::device_parameter<fp32>;
  auto gamma = device_parameter::from_host(*rt, host_gamma), beta = device_parameter::from_host(*rt, host_beta);
  auto gamma2 = device_parameter::from_host(*rt, host_gamma), beta2 = device_parameter::from_host(*rt, host_beta);
  const auto close = [](const std::vector<float>& a, const std::vector<float>& b, float tol = 1e-6f) {
    REQUIRE(a.size() == b.size());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < a.size(); ++i) bad += !(std::fabs(a[i] - b[i]) <= tol * (1.0f + std::fabs(b[i])));
    return bad;
  };
  const auto image_dev = test_opencl::to_device(*rt, image), dy_dev = test_opencl::to_device(*rt, dy);
  const opencl::conv_geometry geometry{B, H, W, C, pool, pool, 0};
  using act = opencl::fused_activation;
  const act kind = act::progressive;
  const float v = 3.0f;

  // Three layers: the pool (arg-max kept), the batch norm, the activation; and back.
  opencl::device_batch_norm<fp32> separate(*rt, C), together(*rt, C);
  separate.single_launch = false;
  opencl::device_tensor<fp32> pooled, y, out, d_act, d_pooled, dimage;
  opencl::device_buffer<std::uint8_t> argmax, argmax2;
  pooled.resize(*rt, B, pooled_size / B);
  opencl::max_pool(*rt, image_dev.data, geometry, pool, pooled.data, &argmax);
  separate.statistics(*rt, pooled, gamma, beta, mode::train);
  separate.forward(*rt, pooled, y);
  out.resize(*rt, B, pooled_size / B);
  opencl::clamp_scale<fp32>(*rt, y.data, y.exp, y.size(), v, out.data, out.exp);
  opencl::straight_through(*rt, y, dy_dev, d_act);
  separate.backward(*rt, pooled, d_act, gamma, beta, &d_pooled, stream{});
  dimage.resize(*rt, B, H * W * C);
  opencl::max_pool_grad(*rt, d_pooled.data, argmax, geometry, pool, dimage.data);

  // Together: one launch each way where the device allows; d (the activation's dy) is scratch.
  opencl::device_tensor<fp32> pooled2, out2, dimage2, d = test_opencl::to_device(*rt, dy);
  const opencl::device_batch_norm<fp32>::max_pool_input input{geometry, pool, &argmax2};
  together.train_pool_forward_activate(*rt, image_dev, input, pooled2, gamma2, beta2, out2, kind, v);
  together.pool_backward_through_activation(*rt, pooled2, input, d, &dimage2, gamma2, beta2, kind);

  CHECK(pooled2.data.download(*rt) == pooled.data.download(*rt));
  CHECK(argmax2.download(*rt) == argmax.download(*rt));
  // Statistics summed in another order in one launch: y to rounding, times v in the activation (seen: 3e-6).
  CHECK(close(out2.data.download(*rt), out.data.download(*rt), 1e-5f) == 0);
  CHECK(close(dimage2.data.download(*rt), dimage.data.download(*rt)) == 0);
  // Sums over up to 640 positions in another order (one launch, slices of its own): to 1e-5.
  CHECK(close(gamma2.grad.download(*rt), gamma.grad.download(*rt), 1e-5f) == 0);
  CHECK(close(beta2.grad.download(*rt), beta.grad.download(*rt), 1e-5f) == 0);
}

// A convolution's product may leave its k slices to the batch norm trained with it (gemm's
// `unsummed`): the fused passes add them as they read x (or the pooled image, or dy), in the order
// gemm_sum_splits adds them, and compute exactly what they compute from the sums; the passes that
// cannot (two launches) add them first.
TEST_CASE("OpenCL fp32 batch norm's fused passes add a product's unsummed slices as they read them",
          "[opencl][batch_norm]") {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  constexpr std::size_t C = 40, H = 8, W = 8, pool = 2, splits = 3;
  const std::size_t B = GENERATE(4, 40);  // one position slice, several (as the single launches above)
  CAPTURE(B);
  rng g(13);
  // The product's slices and their sums in slice order, from 0 as gemm_sum_splits adds them.
  const auto sliced = [&](std::size_t rows, std::size_t cols, float lo, float hi) {
    const std::size_t n = rows * cols;
    std::vector<float> slices(splits * n), sums(n, 0.0f);
    for (std::size_t z = 0; z < splits; ++z)
      for (std::size_t i = 0; i < n; ++i) {
        slices[z * n + i] = g.uniform(lo, hi);
        sums[i] += slices[z * n + i];
      }
    return std::pair{slices, sums};
  };
  const auto unsummed = [&](std::size_t rows, std::size_t cols, const std::vector<float>& slices) {
    opencl::device_tensor<fp32> t;
    t.resize(*rt, rows, cols);
    t.pending.slices.upload(*rt, slices);
    t.pending.count = splits;
    return t;
  };
  const auto summed = [&](std::size_t rows, std::size_t cols, const std::vector<float>& sums) {
    opencl::device_tensor<fp32> t;
    t.upload(*rt, rows, cols, sums.data(), 0);
    return t;
  };
  const auto host_gamma = channel_parameter(C, -2.0f, 2.0f, g), host_beta = channel_parameter(C, -1.0f, 1.0f, g);
  using device_parameter = opencl::device_parameter<fp32>;
  using act = opencl::fused_activation;
  const float v = 3.0f;
  const std::size_t P = B * H * W;  // positions without the pool

  for (const bool single_launch : {true, false}) {
    INFO("single launch allowed: " << single_launch);
    auto gamma = device_parameter::from_host(*rt, host_gamma), beta = device_parameter::from_host(*rt, host_beta);
    auto gamma2 = device_parameter::from_host(*rt, host_gamma), beta2 = device_parameter::from_host(*rt, host_beta);
    opencl::device_batch_norm<fp32> from_sums(*rt, C), from_slices(*rt, C);
    from_sums.single_launch = from_slices.single_launch = single_launch;

    // Batch norm + activation: x, then dy, left as slices.
    const auto [x_slices, x_sums] = sliced(P, C, -1.5f, 2.5f);
    const auto [dy_slices, dy_sums] = sliced(P, C, -0.3f, 0.3f);
    auto x = summed(P, C, x_sums), x2 = unsummed(P, C, x_slices);
    auto d = summed(P, C, dy_sums), d2 = unsummed(P, C, dy_slices);
    opencl::device_tensor<fp32> out, out2;
    from_sums.train_forward_activate(*rt, x, gamma, beta, out, act::progressive, v);
    from_slices.train_forward_activate(*rt, x2, gamma2, beta2, out2, act::progressive, v);
    CHECK(x2.pending.count == 0);
    CHECK(x2.data.download(*rt) == x_sums);
    CHECK(out2.data.download(*rt) == out.data.download(*rt));
    from_sums.backward_through_activation(*rt, x, d, gamma, beta, act::progressive, true);
    from_slices.backward_through_activation(*rt, x2, d2, gamma2, beta2, act::progressive, true);
    CHECK(d2.pending.count == 0);
    CHECK(d2.data.download(*rt) == d.data.download(*rt));
    CHECK(gamma2.grad.download(*rt) == gamma.grad.download(*rt));
    CHECK(beta2.grad.download(*rt) == beta.grad.download(*rt));

    // Max pool + batch norm + activation: the image left as slices, then the activation's dy.
    const auto [image_slices, image_sums] = sliced(B, H * W * C, -1.5f, 2.5f);
    const auto [pdy_slices, pdy_sums] = sliced(B, H * W * C / (pool * pool), -0.3f, 0.3f);
    const opencl::conv_geometry geometry{B, H, W, C, pool, pool, 0};
    opencl::device_buffer<std::uint8_t> argmax, argmax2;
    const opencl::device_batch_norm<fp32>::max_pool_input input{geometry, pool, &argmax},
        input2{geometry, pool, &argmax2};
    auto image = summed(B, H * W * C, image_sums), image2 = unsummed(B, H * W * C, image_slices);
    opencl::device_tensor<fp32> pooled, pooled2, dimage, dimage2;
    from_sums.train_pool_forward_activate(*rt, image, input, pooled, gamma, beta, out, act::sign, v);
    from_slices.train_pool_forward_activate(*rt, image2, input2, pooled2, gamma2, beta2, out2, act::sign, v);
    CHECK(pooled2.data.download(*rt) == pooled.data.download(*rt));
    CHECK(argmax2.download(*rt) == argmax.download(*rt));
    CHECK(out2.data.download(*rt) == out.data.download(*rt));
    auto pd = summed(B, H * W * C / (pool * pool), pdy_sums), pd2 = unsummed(B, H * W * C / (pool * pool), pdy_slices);
    from_sums.pool_backward_through_activation(*rt, pooled, input, pd, &dimage, gamma, beta, act::sign);
    from_slices.pool_backward_through_activation(*rt, pooled2, input2, pd2, &dimage2, gamma2, beta2, act::sign);
    CHECK(pd2.pending.count == 0);
    CHECK(dimage2.data.download(*rt) == dimage.data.download(*rt));
    CHECK(gamma2.grad.download(*rt) == gamma.grad.download(*rt));
    CHECK(beta2.grad.download(*rt) == beta.grad.download(*rt));

    // Evaluation's threshold comparison (no fused pass) adds them first.
    auto x3 = unsummed(P, C, x_slices);
    opencl::device_tensor<fp32> signs, signs3;
    from_sums.threshold(*rt, x, signs);
    from_sums.threshold(*rt, x3, signs3);
    CHECK(x3.pending.count == 0);
    CHECK(signs3.data.download(*rt) == signs.data.download(*rt));
  }
}
