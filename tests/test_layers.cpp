// Numerical gradient checks (gradcheck.hpp) for every dense-network layer and binarizer in fp32, and
// the batch-norm threshold path against the explicit one.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include <pbnn/pbnn.hpp>

#include "gradcheck.hpp"

using namespace pbnn;
using namespace pbnn_test;

namespace {

template <class Scheme>
using pol = policy<F, Scheme>;

// Inputs kept away from the kinks (0 for relu, +-1/v for the clamps) so that differences are smooth.
tensor away_from_kinks(std::size_t rows, std::size_t cols, rng& g, float v) {
  tensor t;
  t.resize(rows, cols);
  for (std::size_t i = 0; i < t.size(); ++i) {
    float a;
    do a = g.uniform(-1.6f / v, 1.6f / v);
    while (std::fabs(std::fabs(a) * v - 1) < 0.05f || std::fabs(a) * v < 0.05f);
    t.data.data()[i] = a;
  }
  return t;
}

}  // namespace

TEST_CASE("gradient check: dense (real, with and without bias)", "[layers][gradcheck]") {
  rng g(1);
  context ctx;
  dense_layer<pol<real>, shape<7>, 5, false> d;
  d.init(g);
  check_layer(d, random_tensor(4, 7, g, -1, 1), ctx);
  dense_layer<pol<real>, shape<7>, 5, true> db;
  db.init(g);
  check_layer(db, random_tensor(4, 7, g, -1, 1), ctx);
}

TEST_CASE("gradient check: dense with progressive weights, inside and outside the clamp", "[layers][gradcheck]") {
  rng g(2);
  context ctx;
  ctx.v = 2.0f;
  dense_layer<pol<progressive<>>, shape<9>, 4, false> d;
  d.init(g);  // |P| <= 1/3, so |v P| <= 2/3: inside
  auto& w = d.weight();
  w.value[0] = 0.8f;   // v P = 1.6: saturated, gradient 0 (checked numerically too)
  w.value[5] = -0.7f;
  check_layer(d, random_tensor(3, 9, g, -1, 1), ctx, 1e-3);
}

TEST_CASE("sign and stochastic weights pass dL/dtheta straight through to P", "[layers][gradcheck][binarize]") {
  rng g(3);
  const tensor x = random_tensor(4, 6, g, -1, 1);
  const tensor r = random_tensor(4, 3, g, -1, 1);
  context ctx;
  dense_layer<pol<sign>, shape<6>, 3, false> bin;
  bin.init(g);
  // The real layer holding theta = sign(P): its own gradient is checked numerically, and the sign
  // layer's gradient for P must equal it (the straight-through estimator of eq. 2).
  dense_layer<pol<real>, shape<6>, 3, false> ref;
  for (std::size_t i = 0; i < 18; ++i) ref.weight().value[i] = bin.weight().value[i] > 0 ? 1.0f : -1.0f;
  check_layer(ref, x, ctx);
  tensor y, yr, dx, dxr;
  bin.forward(x, y, ctx);
  ref.forward(x, yr, ctx);
  for (std::size_t i = 0; i < y.size(); ++i) CHECK(y.data.data()[i] == yr.data.data()[i]);
  bin.backward(x, y, r, &dx, ctx);
  ref.backward(x, yr, r, &dxr, ctx);
  for (std::size_t i = 0; i < 18; ++i) CHECK(bin.weight().gradient(i) == Approx(ref.weight().gradient(i)));

  // Stochastic weights: every theta is +-1, and the same straight-through gradient for its theta.
  dense_layer<pol<stochastic>, shape<6>, 3, false> st;
  st.init(g);
  ctx.gen = &g;
  st.forward(x, y, ctx);
  st.backward(x, y, r, &dx, ctx);
  for (std::size_t i = 0; i < 18; ++i) CHECK(std::isfinite(st.weight().gradient(i)));
}

TEST_CASE("stochastic binarization is +1 with probability hard_sigmoid(w)", "[binarize]") {
  parameter<F> p("p", param_role::binarized, {100000});
  for (auto& v : p.value) v = 0.4f;  // P(+1) = 0.7
  std::vector<float> theta(p.size());
  int e = 0;
  rng g(5);
  context ctx;
  ctx.gen = &g;
  stochastic::weights(p, theta.data(), e, ctx);
  double plus = 0;
  for (float t : theta) {
    REQUIRE((t == 1.0f || t == -1.0f));
    plus += t > 0;
  }
  CHECK(plus / theta.size() == Approx(0.7).margin(0.01));  // 7 sigma
  ctx.mode = mode::eval;  // evaluation: the deterministic binary network
  stochastic::weights(p, theta.data(), e, ctx);
  for (float t : theta) CHECK(t == 1.0f);
}

TEST_CASE("gradient check: batch norm, relu, hardtanh", "[layers][gradcheck]") {
  rng g(4);
  context ctx;
  batch_norm_layer<pol<real>, shape<5>, 0> bn;
  bn.init(g);
  bn.gamma().value = {1.5f, -0.5f, 0.7f, 2.0f, 1.0f};
  bn.beta().value = {0.1f, -0.2f, 0.3f, 0.0f, 1.0f};
  check_layer(bn, random_tensor(6, 5, g, -2, 3), ctx, 1e-3);

  relu_layer<pol<real>, shape<8>> re;
  check_layer(re, away_from_kinks(3, 8, g, 1.0f), ctx, 1e-3);
  hardtanh_layer<pol<real>, shape<8>> ht;
  check_layer(ht, away_from_kinks(3, 8, g, 1.0f), ctx, 1e-3);
}

TEST_CASE("gradient check: binary activations", "[layers][gradcheck][binarize]") {
  rng g(6);
  context ctx;
  ctx.v = 3.0f;
  // clamp(v x) with its exact gradient, checked numerically.
  binary_act_layer<pol<progressive<log_schedule, activation_gradient::exact>>, shape<10>> prog;
  check_layer(prog, away_from_kinks(4, 10, g, 3.0f), ctx, 1e-3);

  // sign and stochastic activations: the straight-through gradient is hardtanh's (checked above).
  const tensor x = away_from_kinks(4, 10, g, 1.0f), dy = random_tensor(4, 10, g, -1, 1);
  hardtanh_layer<pol<real>, shape<10>> ht;
  tensor y, dref, d;
  ht.forward(x, y, ctx);
  ht.backward(x, y, dy, &dref, ctx);
  binary_act_layer<pol<sign>, shape<10>> sg;
  sg.forward(x, y, ctx);
  for (std::size_t i = 0; i < y.size(); ++i) CHECK(y.data.data()[i] == (x.data.data()[i] > 0 ? 1.0f : -1.0f));
  sg.backward(x, y, dy, &d, ctx);
  for (std::size_t i = 0; i < d.size(); ++i) CHECK(d.data.data()[i] == dref.data.data()[i]);
  ctx.gen = &g;
  binary_act_layer<pol<stochastic>, shape<10>> st;
  st.forward(x, y, ctx);
  st.backward(x, y, dy, &d, ctx);
  for (std::size_t i = 0; i < d.size(); ++i) CHECK(d.data.data()[i] == dref.data.data()[i]);
  // The default progressive activation: forward clamp(v x), gradient hardtanh's whatever v is.
  ctx.v = 3.0f;
  binary_act_layer<pol<progressive<>>, shape<10>> prog_ste;
  prog_ste.forward(x, y, ctx);
  for (std::size_t i = 0; i < y.size(); ++i) CHECK(y.data.data()[i] == std::clamp(3.0f * x.data.data()[i], -1.0f, 1.0f));
  prog_ste.backward(x, y, dy, &d, ctx);
  for (std::size_t i = 0; i < d.size(); ++i) CHECK(d.data.data()[i] == dref.data.data()[i]);
}

TEST_CASE("gradient check: softmax cross-entropy", "[layers][gradcheck]") {
  rng g(7);
  tensor z = random_tensor(5, 4, g, -3, 3), dz;
  const std::uint8_t labels[] = {0, 3, 2, 1, 3};
  context ctx;
  softmax_cross_entropy(z, labels, dz, ctx);
  const double h = 1e-3;
  for (std::size_t i = 0; i < z.size(); ++i) {
    tensor zp = z, zm = z, unused;
    zp.data.data()[i] += static_cast<float>(h);
    zm.data.data()[i] -= static_cast<float>(h);
    const double fp = softmax_cross_entropy(zp, labels, unused, ctx).loss_sum / 5;
    const double fm = softmax_cross_entropy(zm, labels, unused, ctx).loss_sum / 5;
    CHECK(dz.data.data()[i] == Approx((fp - fm) / (2 * h)).margin(1e-3));
  }
}

TEMPLATE_TEST_CASE("batch norm as a threshold equals sign of the explicit batch norm", "[layers][threshold]", fp32,
                   fixed<16>) {
  using P = policy<TestType, progressive<>>;
  rng g(8);
  batch_norm_layer<P, shape<6>, 0> bn;
  bn.init(g);
  // Positive, negative and zero gamma; beta of both signs (gamma == 0: the output is sign(beta)).
  const float gammas[] = {1.3f, -0.8f, 0.0f, 0.0f, 2.0f, -1.5f};
  const float betas[] = {0.25f, -0.5f, 0.75f, -0.25f, 0.0f, 0.5f};
  saturation_counter sat;
  for (std::size_t c = 0; c < 6; ++c) {
    bn.gamma().store(c, gammas[c], 0.0f, sat);
    bn.beta().store(c, betas[c], 0.0f, sat);
  }
  batch_tensor<TestType> x, y, via_threshold;
  x.resize(64, 6);
  std::vector<float> real(x.size());
  for (auto& v : real) v = g.uniform(-2, 2);
  x.exp = is_fixed_v<TestType> ? quantize_dynamic(real.data(), real.size(), x.data.data(), 2047, rounding::nearest_even, stream{}) : 0;
  if constexpr (!is_fixed_v<TestType>) std::copy(real.begin(), real.end(), x.data.data());

  for (const auto m : {mode::train, mode::eval}) {
    context ctx;
    ctx.mode = m;
    bn.forward(x, y, ctx);  // training: batch statistics; evaluation: running ones
    bn.sign_by_threshold(x, via_threshold, ctx);
    std::size_t compared = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
      const float yv = y.value(i);
      if (std::fabs(yv) < 1e-3f) continue;  // on the boundary, rounding may decide either way
      ++compared;
      INFO("element " << i << " y = " << yv);
      CHECK(via_threshold.data.data()[i] == (yv > 0 ? 1 : -1));
    }
    CHECK(compared > 300);
    for (std::size_t r = 0; r < 64; ++r) {  // gamma == 0 rows: sign(beta) whatever x is
      CHECK(via_threshold.data.data()[r * 6 + 2] == 1);
      CHECK(via_threshold.data.data()[r * 6 + 3] == -1);
    }
  }
}
