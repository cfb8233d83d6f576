// Adam and SGD on the device against the CPU optimizers, over several steps from the same values,
// gradients and streams. fp32 agrees to a relative 1e-5. Fixed formats store q = floor(x 2^-exp + u):
// the fp32 update x may differ in its last bit between the CPU (whose compiler may fuse a multiply
// and an add) and the device (which rounds each), and that moves q by one step when x 2^-exp + u lies
// within an ulp of an integer; so q must agree exactly but for at most 0.2 % of the values, by one
// step (on PoCL with GCC 12 on the development machine every value agreed exactly).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include <pbnn/opencl/optim.hpp>
#include <pbnn/optim.hpp>

#include "opencl/opencl_device.hpp"

namespace {

using namespace pbnn;

template <class F>
void fill_gradient(parameter<F>& p, rng& g, float factor) {
  for (auto& x : p.grad) x = static_cast<typename parameter<F>::grad_type>(g.uniform(-3000, 3000));
  p.grad_scale = std::ldexp(1.0f, -14) * factor;
}

template <class F>
void compare_values(const std::vector<storage_t<F>>& device, const parameter<F>& host) {
  REQUIRE(device.size() == host.size());
  std::size_t off_by_one = 0, worse = 0;
  for (std::size_t i = 0; i < host.size(); ++i) {
    if constexpr (is_fixed_v<F>) {
      const int d = std::abs(static_cast<int>(device[i]) - static_cast<int>(host.value[i]));
      off_by_one += d == 1;
      worse += d > 1;
    } else {
      worse += std::fabs(device[i] - host.value[i]) > 1e-5f * std::max(1.0f, std::fabs(host.value[i]));
    }
  }
  CHECK(worse == 0);
  CHECK(off_by_one <= host.size() / 500);
}

template <class F, class Optimizer>
void check_optimizer(opencl::runtime& rt, param_role role, float factor) {
  INFO("role " << static_cast<int>(role) << ", gradient factor " << factor);
  const std::size_t n = 5000;
  rng g(21);
  parameter<F> p("w", role, {n});
  saturation_counter sat;
  for (std::size_t i = 0; i < n; ++i) p.store(i, g.uniform(-0.9f, 0.9f), g.uniform(), sat);
  Optimizer opt;
  opt.lr = 0.01f;
  opt.binarized_lr_scale = 3.0f;
  typename Optimizer::state state;
  opencl::device_parameter<F> d;
  opencl::device_buffer<float> s1, s2;
  opencl::device_buffer<std::uint32_t> saturation;
  for (long step = 1; step <= 3; ++step) {
    fill_gradient(p, g, factor);
    d = opencl::device_parameter<F>::from_host(rt, p, factor);
    const stream rnd{static_cast<std::uint32_t>(0x51 + step)};
    opt.update(p, state, step, sat, rnd);
    if constexpr (std::is_same_v<Optimizer, adam>) opencl::adam_update(rt, opt, d, s1, s2, step, rnd, saturation);
    else opencl::sgd_update(rt, opt, d, s1, rnd, saturation);
    compare_values(d.value.download(rt), p);  // the next step starts again from the CPU's values
  }
  CHECK(saturation.download(rt).at(0) == sat.events);
}

}  // namespace

TEMPLATE_TEST_CASE("OpenCL Adam and SGD updates equal the CPU's", "[opencl][optim]", fp32, fixed<8>, fixed<16>) {
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  check_optimizer<TestType, adam>(*rt, param_role::binarized, 31.622776f);
  check_optimizer<TestType, adam>(*rt, param_role::real, 1.0f);
  check_optimizer<TestType, adam>(*rt, param_role::norm, 1.0f);
  check_optimizer<TestType, sgd>(*rt, param_role::binarized, 5.623413f);
  check_optimizer<TestType, sgd>(*rt, param_role::real, 1.0f);
}
