#pragma once
// A 2-D convolution without bias on an OpenCL device, computed as the CPU's conv2d_layer computes it
// (im2col + GEMM; the same rounding and random streams, drawn from the context at the same points).
// Where the device allows (reads_image_in_place: tensor cores, channels in whole 16-byte words) the
// products read x in place of its im2col, which is then never formed (the same sums), and a stride-1
// layer's dx is a convolution of dy with the flipped kernel (no dcols, no col2im; the same products,
// summed in another order: identical in fixed formats, within rounding in fp32).
// Elsewhere dx goes through dcols and col2im. Either way its int32 sums equal those of the CPU's
// flipped-kernel path, integer sums being exact. Fixed formats sum the weight gradient over b Ho Wo
// rows in runs the int32 GEMM sums exactly, added in 64 bits, then narrow them with one shift, as the
// CPU does. fp32 products whose k is split may leave their slices to the one kernel that reads their
// result (gemm's `unsummed`): the output and dx where a batch norm trained with its activation reads
// them next (context::read_by_fused_batch_norm), the weight gradient where the optimizer takes it
// over (device_parameter::defer_to_update).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <fmt/format.h>

#include "pbnn/context.hpp"
#include "pbnn/layers/conv2d.hpp"
#include "pbnn/opencl/binarize.hpp"
#include "pbnn/opencl/conv.hpp"
#include "pbnn/opencl/gemm.hpp"
#include "pbnn/opencl/parameter.hpp"
#include "pbnn/opencl/quantize.hpp"
#include "pbnn/opencl/tensor.hpp"
#include "pbnn/policy.hpp"

namespace pbnn::opencl {

template <class Policy, std::size_t C, std::size_t H, std::size_t W, std::size_t Cout, std::size_t K,
          std::size_t Stride, std::size_t Pad>
class device_conv2d {
 public:
  using format = typename Policy::format;
  using scheme = typename Policy::scheme;
  using value_type = storage_t<format>;
  static constexpr std::size_t Ho = (H + 2 * Pad - K) / Stride + 1, Wo = (W + 2 * Pad - K) / Stride + 1,
                               patch = K * K * C;

  device_conv2d(runtime& rt, const parameter<format>& weight) : weight_(device_parameter<format>::from_host(rt, weight)) {
    if (weight.size() != Cout * patch)
      throw std::invalid_argument(fmt::format("pbnn::opencl::device_conv2d: a {}-element weight for {} x {}",
                                              weight.size(), Cout, patch));
    theta_exp_.resize(rt, 1);
  }

  device_parameter<format>& weight() noexcept { return weight_; }

  void forward(runtime& rt, const device_tensor<format>& x, device_tensor<format>& y, context& ctx) {
    const std::size_t b = x.rows(), m = b * Ho * Wo;
    y.resize(rt, b, Ho * Wo * Cout);
    scheme_weights<scheme>(rt, weight_, theta_, theta_exp_, ctx);
    const conv_geometry g = geometry(b);
    in_place_ = reads_image_in_place<value_type>(rt, g);
    if (!in_place_) im2col(rt, x.data, g, cols_);
    // unsummed: where the in-place product may leave its slices (float).
    const auto product = [&](auto& out, const maximum_target& track, unsummed_slices* unsummed) {
      if (in_place_) matmul_image_xwt(rt, x.data, g, weights(), out, Cout, {}, track, unsummed);
      else matmul_xwt(rt, cols_, weights(), out, m, Cout, patch, {}, track);
    };
    if constexpr (!is_fixed_v<format>) {  // fp32 exponents stay 0 (tensor.hpp)
      y.pending.count = 0;  // the batch norm trained next adds the slices as it reads them
      product(y.data, {}, ctx.read_by_fused_batch_norm ? &y.pending : nullptr);
    } else {  // the product reduces the sums' largest magnitude for their requantization
      const maximum_reservation reserved = reserve_maximum(rt, y.size(), y.maxima);
      product(acc_, tracked_maximum(y.maxima, reserved), nullptr);
      requantize_reserved(rt, acc_, {&x.exp, &theta_exp_, 0}, y, rounding::nearest_even, stream{}, reserved);
    }
  }

  // x is forward()'s (whose im2col cols still holds, unless the products read x in place).
  void backward(runtime& rt, const device_tensor<format>& x, const device_tensor<format>& dy, device_tensor<format>* dx,
                context& ctx) {
    const std::size_t b = x.rows(), m = b * Ho * Wo;
    weight_.grad_factor = 1.0f;
    if constexpr (!is_fixed_v<format>) {
      // The optimizer may add the product's slices as it reads them (device_parameter::defer_to_update).
      unsummed_slices* slices = weight_.defer_to_update ? &weight_.grad_pending : nullptr;
      weight_.grad_pending.count = 0;
      if (in_place_) matmul_dytx_image(rt, dy.data, x.data, geometry(b), weight_.grad, Cout, {}, slices);
      else matmul_dytx(rt, dy.data, cols_, weight_.grad, m, Cout, patch, {}, slices);
      if (dx) {
        dx->resize(rt, b, H * W * C);
        dx->pending.count = 0;
        input_gradient(rt, dy, dx->data, b, {}, ctx.read_by_fused_batch_norm ? &dx->pending : nullptr);
      }
    } else {
      weight_gradient_int(rt, dy, x, m);
      if (dx) {  // the product reduces the sums' largest magnitude for their requantization
        dx->resize(rt, b, H * W * C);
        const maximum_reservation reserved = reserve_maximum(rt, dx->size(), dx->maxima);
        input_gradient(rt, dy, dx_acc_, b, tracked_maximum(dx->maxima, reserved));
        requantize_reserved(rt, dx_acc_, {&dy.exp, &theta_exp_, 0}, *dx, format_traits<format>::error_rounding,
                            ctx.next_stream(), reserved);
      }
    }
    if constexpr (is_progressive_v<scheme>) {
      mask_saturated(rt, weight_, theta_, theta_exp_, ctx.v);
    }
  }

 private:
  static conv_geometry geometry(std::size_t b) { return {b, H, W, C, K, Stride, Pad}; }

  // dX = dY W as sums over the input's pixels: a convolution of dY read in place where the device
  // allows (dx_reads_image_in_place), else through dcols and col2im; their largest magnitude reduced
  // into track (integer sums); the in-place product's slices left in unsummed (float) where given.
  template <class Sum>
  void input_gradient(runtime& rt, const device_tensor<format>& dy, device_buffer<Sum>& out, std::size_t b,
                      const maximum_target& track, unsummed_slices* unsummed = nullptr) {
    const conv_geometry g = geometry(b);
    if (dx_reads_image_in_place<value_type>(rt, g, Cout))
      return matmul_dyw_image(rt, dy.data, weights(), g, Cout, out, {}, track, unsummed);
    matmul_dyw(rt, dy.data, weights(), dcols_, b * Ho * Wo, Cout, patch);
    col2im(rt, dcols_, g, out, track);
  }

  // dW = dy^T cols over m rows, in runs of the exact int32 reduction added in 64 bits, then narrowed
  // with one shift (conv2d.hpp's contract).
  void weight_gradient_int(runtime& rt, const device_tensor<format>& dy, const device_tensor<format>& x, std::size_t m) {
    constexpr std::size_t chunk = pbnn::detail::exact_int_reduction<value_type>;
    const std::size_t n = Cout * patch;
    const conv_geometry g = geometry(x.rows());
    if (m <= chunk) {
      if (in_place_) matmul_dytx_image(rt, dy.data, x.data, g, weight_.grad, Cout);
      else matmul_dytx(rt, dy.data, cols_, weight_.grad, m, Cout, patch);
      sum_exponents(rt, {&dy.exp, &x.exp, 0}, weight_.grad_exp);
      return;
    }
    if (in_place_) im2col(rt, x.data, g, cols_);  // the 64-bit reduction reads im2col itself
    matmul_dytx_wide(rt, dy.data, cols_, wide_, m, Cout, patch, chunk);
    weight_.grad.resize(rt, n);
    detail::launch_range(rt, detail::quantize_program<value_type>(rt), "narrow_wide", cl::NDRange(detail::reduction_group),
                         cl::NDRange(detail::reduction_group), wide_.handle(), detail::checked_count(n),
                         weight_.grad.handle(), dy.exp.handle(), x.exp.handle(), weight_.grad_exp.handle());
  }

  using grad_value = std::conditional_t<is_fixed_v<format>, std::int32_t, float>;
  device_parameter<format> weight_;
  const device_buffer<value_type>& weights() const noexcept { return product_weights<scheme>(weight_, theta_); }

  device_buffer<value_type> theta_, cols_;
  device_buffer<int> theta_exp_;
  device_buffer<std::int32_t> acc_, dx_acc_;
  device_buffer<grad_value> dcols_;
  device_buffer<std::int64_t> wide_;
  bool in_place_ = false;  // forward()'s products read x in place: cols_ was not formed
};

}  // namespace pbnn::opencl
