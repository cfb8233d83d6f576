#pragma once
// The numerical gradient checker shared by the layer tests (dlib's test_layer habit: gradients are
// pre-filled with NaN so that an entry never written fails the check).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include <pbnn/pbnn.hpp>

namespace pbnn_test {

using namespace pbnn;
using F = fp32;
using tensor = batch_tensor<F>;

inline tensor random_tensor(std::size_t rows, std::size_t cols, rng& g, float lo, float hi) {
  tensor t;
  t.resize(rows, cols);
  for (std::size_t i = 0; i < t.size(); ++i) t.data.data()[i] = g.uniform(lo, hi);
  return t;
}

// sum(r * layer(x)) in double: the scalar whose gradient the checker compares.
template <class Layer>
inline double probe(Layer& layer, const tensor& x, const tensor& r, context& ctx) {
  tensor y;
  layer.forward(x, y, ctx);
  double s = 0;
  for (std::size_t i = 0; i < y.size(); ++i) s += static_cast<double>(r.data.data()[i]) * y.data.data()[i];
  return s;
}

inline void fill_nan(tensor& t) {
  for (std::size_t i = 0; i < t.size(); ++i) t.data.data()[i] = std::numeric_limits<float>::quiet_NaN();
}

// Checks the layer's input and parameter gradients against central differences.
template <class Layer>
inline void check_layer(Layer& layer, const tensor& x, context ctx, double h = 1e-2, double tol = 2e-2) {
  rng g(99);
  tensor y;
  layer.forward(x, y, ctx);
  const tensor r = random_tensor(y.rows(), y.cols(), g, -1, 1);
  tensor dx;
  dx.resize(x.rows(), x.cols());
  fill_nan(dx);
  layer.for_each_parameter([](auto& p) { std::fill(p.grad.begin(), p.grad.end(), std::numeric_limits<float>::quiet_NaN()); });
  layer.backward(x, y, r, &dx, ctx);

  tensor xp = x;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float orig = xp.data.data()[i];
    xp.data.data()[i] = orig + static_cast<float>(h);
    const double fp = probe(layer, xp, r, ctx);
    xp.data.data()[i] = orig - static_cast<float>(h);
    const double fm = probe(layer, xp, r, ctx);
    xp.data.data()[i] = orig;
    INFO(Layer::describe() << ": d/dx[" << i << "]");
    CHECK(dx.data.data()[i] == Approx((fp - fm) / (2 * h)).margin(tol).epsilon(tol));
  }
  layer.for_each_parameter([&](auto& p) {
    for (std::size_t i = 0; i < p.size(); ++i) {
      const float orig = p.value[i];
      p.value[i] = orig + static_cast<float>(h);
      const double fp = probe(layer, x, r, ctx);
      p.value[i] = orig - static_cast<float>(h);
      const double fm = probe(layer, x, r, ctx);
      p.value[i] = orig;
      INFO(Layer::describe() << ": d/d" << p.name << "[" << i << "]");
      CHECK(p.gradient(i) == Approx((fp - fm) / (2 * h)).margin(tol).epsilon(tol));
    }
  });
}

}  // namespace pbnn_test
