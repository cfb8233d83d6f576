#pragma once
// A learnable tensor on an OpenCL device, as pbnn::parameter is on the host: values in the format's
// storage with the role's fixed exponent, the gradient in the format's accumulator, and the
// gradient's scale as 2^grad_exp (a device int: it comes from the exponents of the tensors whose
// product gave the gradient) times a host factor (v for progressive weights).
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "pbnn/format.hpp"
#include "pbnn/opencl/buffer.hpp"
#include "pbnn/opencl/tensor.hpp"
#include "pbnn/parameter.hpp"

namespace pbnn::opencl {

template <class Format>
struct device_parameter {
  using format = Format;
  using value_type = storage_t<Format>;
  using grad_type = typename format_traits<Format>::accum;

  std::string name;
  param_role role = param_role::real;
  int exp = 0;  // value = q 2^exp (fixed formats), as parameter<Format>::exp
  device_buffer<int> value_exp;  // the same exponent on the device, for kernels that read tensors' exponents
  device_buffer<value_type> value;
  device_buffer<grad_type> grad;
  device_buffer<int> grad_exp;  // one int
  float grad_factor = 1.0f;

  // Element-wise work the optimizer takes over (adam_update_all) where defer_to_update is set:
  // - progressive weights: the backward pass leaves the gradient's mask (zero where |v P| > 1) to the
  //   update, naming its v and the layer's theta buffers, and the update then writes
  //   theta = clamp(v P, -1, 1) for the next forward pass, which theta_v (0: none) records;
  // - fp32 gradients of a product whose k is split: the product leaves its slices in grad_pending
  //   (count > 0: grad is unwritten and the gradient is their sum, which the update adds as it reads
  //   them; sum_pending_grad writes it into grad).
  bool defer_to_update = false;
  float deferred_v = 0;
  device_buffer<value_type>* deferred_theta = nullptr;
  device_buffer<int>* deferred_theta_exp = nullptr;
  float theta_v = 0;
  unsummed_slices grad_pending;

  std::size_t size() const noexcept { return value.size(); }

  // A device copy of a host parameter (values, gradient and its scale, which must be a power of two
  // times grad_factor).
  static device_parameter from_host(runtime& rt, const parameter<Format>& p, float factor = 1.0f) {
    device_parameter d;
    d.name = p.name;
    d.role = p.role;
    d.exp = p.exp;
    d.value_exp.upload(rt, &p.exp, 1);
    d.value.upload(rt, p.value.data(), p.size());
    d.grad.upload(rt, p.grad.data(), p.size());
    if constexpr (is_fixed_v<Format>) {
      int e = 0;
      if (std::frexp(p.grad_scale / factor, &e) != 0.5f)  // grad_scale / factor = 0.5 2^e
        throw std::invalid_argument(
            "pbnn::opencl::device_parameter: the gradient scale is not a power of two times the factor");
      const int ge = e - 1;
      d.grad_exp.upload(rt, &ge, 1);
      d.grad_factor = factor;
    } else {  // fp32 gradients keep exponent 0 (layers do not reset it): the whole scale is the factor
      const int zero = 0;
      d.grad_exp.upload(rt, &zero, 1);
      d.grad_factor = p.grad_scale;
    }
    return d;
  }
};

}  // namespace pbnn::opencl
