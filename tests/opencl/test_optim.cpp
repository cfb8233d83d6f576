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

TEMPLATE_TEST_CASE("OpenCL Adam over many parameters per launch equals one launch per parameter", "[opencl][optim]",
                   fp32, fixed<8>, fixed<16>) {
  using F = TestType;
  auto* rt = test_opencl::shared_runtime();
  if (!rt) return;
  // Sizes around the 256-item work-group and every role; the binarized ones progressive weights whose
  // gradient mask and theta for v are left to the update (v = their gradient factor); in fp32 four
  // gradients (of 256, 255, 257 and 3 values: whole 16-byte words and not) left as a split product's
  // slices, which the update adds as it reads them.
  const std::vector<std::size_t> sizes{1, 255, 256, 257, 1000, 3, 4096};
  const std::vector<param_role> roles{param_role::binarized, param_role::real, param_role::norm, param_role::binarized,
                                      param_role::real, param_role::norm, param_role::binarized};
  const std::vector<float> factors{31.622776f, 1.0f, 1.0f, 2.0f, 1.0f, 1.0f, 5.623413f};
  const std::size_t count = sizes.size();
  for (const std::size_t per_launch : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
    INFO("at most " << per_launch << " parameters per launch (0: the device's limit)");
    adam opt;
    opt.lr = 0.01f;
    opt.binarized_lr_scale = 3.0f;
    rng g(5);
    std::vector<opencl::device_parameter<F>> grouped(count), single(count);
    std::vector<opencl::device_buffer<float>> m1(count), v1(count), m2(count), v2(count);
    std::vector<opencl::device_buffer<storage_t<F>>> theta1(count), theta2(count);
    std::vector<opencl::device_buffer<int>> theta_exp1(count), theta_exp2(count);
    opencl::device_buffer<std::uint32_t> saturation1, saturation2;
    for (long step = 1; step <= 3; ++step) {
      std::vector<opencl::adam_slot<F>> slots;
      for (std::size_t k = 0; k < count; ++k) {
        parameter<F> p("w", roles[k], {sizes[k]});
        saturation_counter sat;
        for (std::size_t i = 0; i < sizes[k]; ++i) p.store(i, g.uniform(-0.9f, 0.9f), g.uniform(), sat);
        fill_gradient(p, g, factors[k]);
        auto fresh1 = opencl::device_parameter<F>::from_host(*rt, p, factors[k]);
        auto fresh2 = opencl::device_parameter<F>::from_host(*rt, p, factors[k]);
        if (step == 1) {  // p's values; later steps keep those of the last
          grouped[k] = fresh1;
          single[k] = fresh2;
          theta1[k].resize(*rt, sizes[k]);
          theta_exp1[k].resize(*rt, 1);
          theta_exp2[k].resize(*rt, 1);
        }
        for (auto [d, fresh] : {std::pair{&grouped[k], &fresh1}, std::pair{&single[k], &fresh2}}) {
          d->grad = fresh->grad;
          d->grad_exp = fresh->grad_exp;
          d->grad_factor = fresh->grad_factor;
        }
        grouped[k].grad_pending.count = 0;
        if constexpr (!is_fixed_v<F>) {
          if (k % 2 == 1 || k == 2) {  // slices whose sum in slice order is the gradient
            constexpr std::size_t splits = 3;
            std::vector<float> slices(splits * sizes[k]), sums(sizes[k], 0.0f);
            for (std::size_t z = 0; z < splits; ++z)
              for (std::size_t i = 0; i < sizes[k]; ++i) {
                slices[z * sizes[k] + i] = g.uniform(-1000.0f, 1000.0f);
                sums[i] += slices[z * sizes[k] + i];
              }
            single[k].grad.upload(*rt, sums);
            grouped[k].grad_pending.slices.upload(*rt, slices);
            grouped[k].grad_pending.count = splits;
          }
        }
        const stream rnd{static_cast<std::uint32_t>(0x700 + 10 * step + k)};
        const bool progressive = roles[k] == param_role::binarized;
        if (progressive) {
          grouped[k].deferred_v = factors[k];
          grouped[k].deferred_theta = &theta1[k];
          grouped[k].deferred_theta_exp = &theta_exp1[k];
          opencl::mask_saturated_values<F>(*rt, single[k].value, single[k].exp, sizes[k], factors[k], single[k].grad);
        }
        slots.push_back({&grouped[k], &m1[k], &v1[k], rnd});
        opencl::adam_update(*rt, opt, single[k], m2[k], v2[k], step, rnd, saturation2);
        if (progressive)
          opencl::clamp_scale<F>(*rt, single[k].value, single[k].value_exp, sizes[k], factors[k], theta2[k],
                                 theta_exp2[k]);
      }
      opencl::adam_update_all<F>(*rt, opt, slots, step, saturation1, per_launch);
      for (std::size_t k = 0; k < count; ++k) {
        INFO("step " << step << ", parameter " << k << " of " << sizes[k] << " values");
        CHECK(grouped[k].value.download(*rt) == single[k].value.download(*rt));
        CHECK(m1[k].download(*rt) == m2[k].download(*rt));
        CHECK(v1[k].download(*rt) == v2[k].download(*rt));
        if (roles[k] == param_role::binarized) {
          CHECK(theta1[k].download(*rt) == theta2[k].download(*rt));
          CHECK(theta_exp1[k].download(*rt) == theta_exp2[k].download(*rt));
          CHECK(grouped[k].theta_v == factors[k]);  // the layer's next forward pass at this v keeps theta
          CHECK(grouped[k].deferred_v == 0);
        } else {
          CHECK(grouped[k].theta_v == 0);
          // The gradient the update added up from its slices, now into grad.
          opencl::sum_pending_grad(*rt, grouped[k]);
          CHECK(grouped[k].grad_pending.count == 0);
          CHECK(grouped[k].grad.download(*rt) == single[k].grad.download(*rt));
        }
      }
    }
    CHECK(saturation1.download(*rt) == saturation2.download(*rt));
  }
}
