// Convolution, pooling and batch norm over channels: gradient checks in fp32, the im2col layer
// against a direct convolution, the integer paths against fp32, the threshold path on images, and a
// small convolutional network that learns, exports and reloads.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include <pbnn/pbnn.hpp>

#include "gradcheck.hpp"
#include "temp_dir.hpp"

using namespace pbnn;
using namespace pbnn_test;

namespace {

template <class Scheme>
using pol = policy<fp32, Scheme>;

// y[n, oh, ow, o] by the definition (channels-last images, weight [Cout, (kh, kw, c)]).
template <std::size_t C, std::size_t H, std::size_t W, std::size_t Cout, std::size_t K, std::size_t S, std::size_t P>
std::vector<double> direct_conv(const std::vector<double>& x, const std::vector<double>& w, std::size_t b) {
  constexpr std::size_t Ho = (H + 2 * P - K) / S + 1, Wo = (W + 2 * P - K) / S + 1;
  std::vector<double> y(b * Ho * Wo * Cout, 0.0);
  for (std::size_t n = 0; n < b; ++n)
    for (std::size_t oh = 0; oh < Ho; ++oh)
      for (std::size_t ow = 0; ow < Wo; ++ow)
        for (std::size_t o = 0; o < Cout; ++o) {
          double s = 0;
          for (std::size_t kh = 0; kh < K; ++kh)
            for (std::size_t kw = 0; kw < K; ++kw) {
              const long ih = static_cast<long>(oh * S + kh) - static_cast<long>(P);
              const long iw = static_cast<long>(ow * S + kw) - static_cast<long>(P);
              if (ih < 0 || iw < 0 || ih >= static_cast<long>(H) || iw >= static_cast<long>(W)) continue;
              for (std::size_t c = 0; c < C; ++c)
                s += x[((n * H + static_cast<std::size_t>(ih)) * W + static_cast<std::size_t>(iw)) * C + c] *
                     w[o * K * K * C + (kh * K + kw) * C + c];
            }
          y[((n * Ho + oh) * Wo + ow) * Cout + o] = s;
        }
  return y;
}

// Distinct values, so that every pooling window has a unique maximum a small step cannot change.
tensor distinct_values(std::size_t rows, std::size_t cols, rng& g) {
  tensor t;
  t.resize(rows, cols);
  std::vector<float> v(t.size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = -1.0f + 0.05f * static_cast<float>(i);
  std::shuffle(v.begin(), v.end(), g);
  std::copy(v.begin(), v.end(), t.data.data());
  return t;
}

}  // namespace

TEST_CASE("conv2d equals a direct convolution, with padding and with stride", "[conv]") {
  rng g(21);
  conv2d_layer<pol<real>, shape<3, 6, 5>, 4, 3, 1, 1> same;
  conv2d_layer<pol<real>, shape<3, 6, 5>, 4, 3, 2, 0> strided;
  same.init(g);
  strided.init(g);
  const tensor x = random_tensor(2, 6 * 5 * 3, g, -1, 1);
  const std::vector<double> xd(x.data.begin(), x.data.end());
  context ctx;
  tensor y;
  same.forward(x, y, ctx);
  const auto ref = direct_conv<3, 6, 5, 4, 3, 1, 1>(xd, {same.weight().value.begin(), same.weight().value.end()}, 2);
  REQUIRE(y.size() == ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i) CHECK(y.data.data()[i] == Approx(ref[i]).margin(1e-5));
  strided.forward(x, y, ctx);
  const auto ref2 = direct_conv<3, 6, 5, 4, 3, 2, 0>(xd, {strided.weight().value.begin(), strided.weight().value.end()}, 2);
  REQUIRE(y.size() == ref2.size());  // 2 x 2 x 2 outputs of 4 channels
  for (std::size_t i = 0; i < ref2.size(); ++i) CHECK(y.data.data()[i] == Approx(ref2[i]).margin(1e-5));
}

TEST_CASE("gradient check: conv2d (real, padded and strided, and progressive weights)", "[conv][gradcheck]") {
  rng g(22);
  context ctx;
  conv2d_layer<pol<real>, shape<2, 5, 4>, 3, 3, 1, 1> same;
  same.init(g);
  check_layer(same, random_tensor(2, 5 * 4 * 2, g, -1, 1), ctx, 1e-2);
  conv2d_layer<pol<real>, shape<2, 5, 5>, 3, 3, 2, 1> strided;
  strided.init(g);
  check_layer(strided, random_tensor(2, 5 * 5 * 2, g, -1, 1), ctx, 1e-2);

  ctx.v = 2.0f;
  conv2d_layer<pol<progressive<>>, shape<2, 4, 4>, 3, 3, 1, 1> prog;
  prog.init(g);  // |P| <= 1/sqrt(18), inside the clamp at v = 2
  prog.weight().value[1] = 0.9f;  // saturated: gradient 0
  check_layer(prog, random_tensor(2, 4 * 4 * 2, g, -1, 1), ctx, 1e-3);
}

TEST_CASE("gradient check: max pooling and batch norm over channels", "[conv][gradcheck]") {
  rng g(23);
  context ctx;
  max_pool_layer<pol<real>, shape<3, 4, 6>, 2> pool;
  check_layer(pool, distinct_values(2, 4 * 6 * 3, g), ctx, 1e-3);
  max_pool_layer<pol<real>, shape<2, 3, 3>, 3> pool3;
  check_layer(pool3, distinct_values(2, 3 * 3 * 2, g), ctx, 1e-3);

  batch_norm_layer<pol<real>, shape<3, 2, 3>, 3> bn;
  bn.init(g);
  bn.gamma().value = {1.5f, -0.5f, 0.7f};
  bn.beta().value = {0.1f, -0.2f, 0.3f};
  check_layer(bn, random_tensor(3, 2 * 3 * 3, g, -2, 3), ctx, 1e-3);
}

TEST_CASE("max pooling picks each window's maximum per channel", "[conv]") {
  max_pool_layer<pol<real>, shape<2, 2, 4>, 2> pool;
  tensor x, y;
  x.resize(1, 16);
  // (h, w, c): channel 0 = h * 4 + w, channel 1 = -(h * 4 + w).
  for (std::size_t h = 0; h < 2; ++h)
    for (std::size_t w = 0; w < 4; ++w) {
      x.data.data()[(h * 4 + w) * 2] = static_cast<float>(h * 4 + w);
      x.data.data()[(h * 4 + w) * 2 + 1] = -static_cast<float>(h * 4 + w);
    }
  context ctx;
  pool.forward(x, y, ctx);
  REQUIRE(y.size() == 4);
  CHECK(y.data.data()[0] == 5.0f);   // window (0..1, 0..1): max of 0, 1, 4, 5
  CHECK(y.data.data()[1] == -0.0f);  // its channel 1: max of 0, -1, -4, -5
  CHECK(y.data.data()[2] == 7.0f);
  CHECK(y.data.data()[3] == -2.0f);
}

TEST_CASE("batch norm normalizes each channel over the batch and the positions", "[conv]") {
  batch_norm_layer<pol<real>, shape<2, 3, 3>, 0> bn;
  rng g(24);
  bn.init(g);
  const tensor x = random_tensor(4, 18, g, -3, 5);
  tensor y;
  context ctx;
  bn.forward(x, y, ctx);
  for (std::size_t c = 0; c < 2; ++c) {
    double s = 0, s2 = 0;
    for (std::size_t i = c; i < y.size(); i += 2) {
      s += y.data.data()[i];
      s2 += y.data.data()[i] * y.data.data()[i];
    }
    CHECK(s / 36 == Approx(0).margin(1e-5));
    CHECK(s2 / 36 == Approx(1).epsilon(1e-3));
  }
}

// The integer paths: fixed<8> and fixed<16> give what fp32 gives on the same quantized values,
// within the rounding of the result (forward, input gradient) and exactly in sum for dW, including
// the chunked int64 reduction (b Ho Wo = 2 x 24 x 24 = 1152 rows > 512 for fixed<16>), on every
// dx path: fixed<8>'s flipped-kernel convolution (stride 1) and dcols + col2im (strided, fixed<16>).
template <class TestType, std::size_t K, std::size_t Stride, std::size_t Pad, std::size_t Cout = 4>
void check_fixed_conv_against_fp32() {
  using P = policy<TestType, sign>;
  constexpr std::size_t C = 5, H = 24, W = 24;
  using layer_q = conv2d_layer<P, shape<C, H, W>, Cout, K, Stride, Pad>;
  layer_q q;
  conv2d_layer<policy<fp32, sign>, shape<C, H, W>, Cout, K, Stride, Pad> f;
  constexpr std::size_t Ho = layer_q::Ho, Wo = layer_q::Wo;
  INFO("kernel " << K << ", stride " << Stride << ", padding " << Pad);
  rng g(25);
  q.init(g);
  for (std::size_t i = 0; i < q.weight().size(); ++i) f.weight().value[i] = q.weight().real(i);

  const std::size_t b = 2, n = H * W * C;
  std::vector<float> xr(b * n), dyr(b * Ho * Wo * Cout);
  for (auto& v : xr) v = g.uniform(-1, 1);
  for (auto& v : dyr) v = g.uniform(-1, 1);
  batch_tensor<TestType> xq, yq, dyq, dxq;
  xq.resize(b, n);
  dyq.resize(b, Ho * Wo * Cout);
  constexpr auto qmax = format_traits<TestType>::operand_max;
  xq.exp = quantize_dynamic(xr.data(), xr.size(), xq.data.data(), qmax, rounding::nearest_even, stream{});
  dyq.exp = quantize_dynamic(dyr.data(), dyr.size(), dyq.data.data(), qmax, rounding::nearest_even, stream{});
  tensor xf, yf, dyf, dxf;
  xf.resize(b, n);
  dyf.resize(b, Ho * Wo * Cout);
  for (std::size_t i = 0; i < xf.size(); ++i) xf.data.data()[i] = xq.value(i);
  for (std::size_t i = 0; i < dyf.size(); ++i) dyf.data.data()[i] = dyq.value(i);

  context ctx;
  q.forward(xq, yq, ctx);
  f.forward(xf, yf, ctx);
  q.backward(xq, yq, dyq, &dxq, ctx);
  f.backward(xf, yf, dyf, &dxf, ctx);
  const auto max_abs = [](const auto& t) {
    float m = 0;
    for (std::size_t i = 0; i < t.size(); ++i) m = std::max(m, std::fabs(t.data.data()[i]));
    return m;
  };
  const float ystep = std::ldexp(1.0f, yq.exp), dxstep = std::ldexp(1.0f, dxq.exp);
  for (std::size_t i = 0; i < yf.size(); ++i) REQUIRE(std::fabs(yq.value(i) - yf.data.data()[i]) <= 0.5f * ystep + 1e-4f * max_abs(yf));
  for (std::size_t i = 0; i < dxf.size(); ++i) REQUIRE(std::fabs(dxq.value(i) - dxf.data.data()[i]) <= dxstep + 1e-4f * max_abs(dxf));
  for (std::size_t i = 0; i < f.weight().size(); ++i)
    REQUIRE(q.weight().gradient(i) == Approx(f.weight().gradient(i)).margin(1e-3).epsilon(1e-4));
}

TEMPLATE_TEST_CASE("conv2d in fixed point matches fp32 on the same values", "[conv][fixed]", fixed<8>, fixed<16>) {
  check_fixed_conv_against_fp32<TestType, 3, 1, 1>();  // fixed<8>: dx by the flipped kernel
  check_fixed_conv_against_fp32<TestType, 5, 1, 2>();
  check_fixed_conv_against_fp32<TestType, 3, 1, 0>();  // 'valid': dy padded by 2 for dx
  check_fixed_conv_against_fp32<TestType, 3, 2, 1>();  // strided: dx through dcols and col2im
}

TEST_CASE("a widening fixed<8> convolution takes the dcols path and matches fp32", "[conv][fixed]") {
  using P = policy<fixed<8>, sign>;
  static_assert(conv2d_layer<P, shape<5, 24, 24>, 4, 3, 1, 1>::dx_by_flipped_kernel);
  static_assert(!conv2d_layer<P, shape<5, 24, 24>, 6, 3, 1, 1>::dx_by_flipped_kernel);
  check_fixed_conv_against_fp32<fixed<8>, 3, 1, 1, 6>();
}

TEST_CASE("batch norm over channels as a threshold equals sign of the explicit one", "[conv][threshold]") {
  using P = policy<fixed<16>, progressive<>>;
  batch_norm_layer<P, shape<3, 4, 4>, 0> bn;
  rng g(26);
  bn.init(g);
  saturation_counter sat;
  const float gammas[] = {1.3f, -0.8f, 0.0f}, betas[] = {0.25f, -0.5f, 0.75f};
  for (std::size_t c = 0; c < 3; ++c) {
    bn.gamma().store(c, gammas[c], 0.0f, sat);
    bn.beta().store(c, betas[c], 0.0f, sat);
  }
  batch_tensor<fixed<16>> x, y, t;
  x.resize(8, 48);
  std::vector<float> real(x.size());
  for (auto& v : real) v = g.uniform(-2, 2);
  x.exp = quantize_dynamic(real.data(), real.size(), x.data.data(), 2047, rounding::nearest_even, stream{});
  context ctx;
  bn.forward(x, y, ctx);
  bn.sign_by_threshold(x, t, ctx);
  std::size_t compared = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (std::fabs(y.value(i)) < 1e-3f) continue;
    ++compared;
    CHECK(t.data.data()[i] == (y.value(i) > 0 ? 1 : -1));
  }
  CHECK(compared > 300);
}

namespace {

// Four classes of 8x8 two-channel images: a bright quadrant per class, plus noise.
dataset quadrant_images(std::size_t count, std::uint64_t seed) {
  rng g(seed);
  dataset d;
  d.count = count;
  d.features = 8 * 8 * 2;
  d.classes = 4;
  d.x.resize(count * d.features);
  d.label.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    const auto c = static_cast<std::uint8_t>(g.below(4));
    d.label[i] = c;
    for (std::size_t h = 0; h < 8; ++h)
      for (std::size_t w = 0; w < 8; ++w)
        for (std::size_t ch = 0; ch < 2; ++ch) {
          const bool bright = (h / 4) * 2 + (w / 4) == c;
          d.x[i * d.features + (h * 8 + w) * 2 + ch] = (bright ? 0.8f : 0.2f) + g.uniform(-0.3f, 0.3f);
        }
  }
  return d;
}

template <class F, class S, class Act>
using small_cnn = sequential<policy<F, S>, input<2, 8, 8>, conv2d<8>, batch_norm<>, Act, max_pool<>, conv2d<16>,
                             batch_norm<>, Act, max_pool<>, dense<32>, batch_norm<>, Act, dense<4, real>, batch_norm<>>;

template <class Net>
double train_cnn(Net& net, int epochs) {
  const dataset tr = quadrant_images(800, 31), te = quadrant_images(200, 32);
  train_options o;
  o.epochs = epochs;
  o.batch = 20;
  trainer<Net> t(net, o);
  epoch_stats st;
  for (int e = 0; e < epochs; ++e) st = t.run_epoch(tr, &te, e);
  return st.test_accuracy;
}

}  // namespace

// Chance is 25 %; the quadrant is plain to see through the noise.
TEMPLATE_TEST_CASE("a small convolutional network learns with progressive binarization in every format", "[conv][training]",
                   fp32, fixed<16>, fixed<8>) {
  auto net = std::make_unique<small_cnn<TestType, progressive<>, binary_act>>();
  CHECK(train_cnn(*net, 4) > 0.9);
}

TEST_CASE("a convolutional binary network exports and reloads exactly", "[conv][export]") {
  using Net = small_cnn<fixed<8>, progressive<>, binary_act>;
  auto net = std::make_unique<Net>();
  train_cnn(*net, 1);
  const pbnn_test::temp_dir dir("pbnn_test_conv_export_");
  const auto file = dir / "cnn.safetensors";
  save_binary_network(*net, file);
  const io::safetensors st = io::read_safetensors(file);
  CHECK(st.at("0.conv2d.weight_sign").shape == std::vector<std::int64_t>{8, 2, 3, 3});

  auto reloaded = std::make_unique<Net>();
  load_binary_network(*reloaded, file);
  const dataset te = quadrant_images(100, 33);
  context ctx;
  ctx.mode = mode::eval;
  batch_tensor<fixed<8>> x;
  std::vector<std::uint8_t> labels;
  std::vector<float> scratch;
  std::vector<std::size_t> idx(te.count);
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  gather_batch(te, idx.data(), te.count, x, labels, scratch);
  const auto a = net->forward(x, ctx);
  const auto b = reloaded->forward(x, ctx);
  CHECK(a.exp == b.exp);
  CHECK(std::equal(a.data.begin(), a.data.end(), b.data.begin()));
}
