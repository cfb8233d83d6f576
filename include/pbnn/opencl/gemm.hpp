#pragma once
// The three products of a dense or convolutional layer on an OpenCL device, as the CPU backend's
// detail/matmul.hpp has them (row-major; W is [n x k]):
//   matmul_xwt:  Y[b x n]  = X[b x k] W^T        matmul_dyw:  dX[b x k] = dY[b x n] W
//   matmul_dytx: dW[n x k] = dY^T X              (fp32: float results; int8/int16: int32 sums)
// Each enqueues its kernels (one, or two where k is split) without waiting. Tile sizes are build
// options (-DTS, -DWPT), so a device can be given its own (gemm_tuning).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <fmt/format.h>

#include "pbnn/opencl/buffer.hpp"
#include "pbnn/opencl/kernels/gemm_cl.hpp"
#include "pbnn/opencl/launch.hpp"
#include "pbnn/opencl/runtime.hpp"

namespace pbnn::opencl {

struct gemm_tuning {
  int tile = 0;             // TS: the work-group computes a tile x tile block of C; 0: 64 for large C, else 32
  int per_item = 4;         // WPT: each work-item computes per_item x per_item outputs
  // Long reductions over few output tiles (a convolution's weight gradient sums over every pixel of
  // the batch into a small C) leave most of a GPU idle: k is then split over work-groups until about
  // this many run, each summing at least min_split_k of it, and the slices are added up after.
  std::size_t target_groups = 1024;
  std::size_t min_split_k = 512;
};

namespace detail {

template <class T>
constexpr const char* cl_type_name() {
  if constexpr (std::is_same_v<T, float>) return "float";
  else if constexpr (std::is_same_v<T, std::int8_t>) return "char";
  else return "short";
}
template <class T>
using gemm_result_t = std::conditional_t<std::is_same_v<T, float>, float, std::int32_t>;

template <class T>
std::string gemm_options(bool a_kmajor, bool b_kmajor, const gemm_tuning& t) {
  return fmt::format("-DTA={} -DTACC={} -DA_KMAJOR={} -DB_KMAJOR={} -DTS={} -DWPT={}{}", cl_type_name<T>(),
                     std::is_same_v<T, float> ? "float" : "int", a_kmajor ? 1 : 0, b_kmajor ? 1 : 0, t.tile,
                     t.per_item, std::is_same_v<T, float> ? "" : " -DWIDE");
}

// The gemm kernel over p in [kbase + z kchunk, kbase + (z + 1) kchunk), p < kstop, for z < splits,
// split z into the z-th m x n slice of target.
template <class T>
void enqueue_gemm(runtime& rt, const cl::Program& program, std::size_t m, std::size_t n, std::size_t k,
                  const device_buffer<T>& A, const device_buffer<T>& B, const cl::Buffer& target, bool accumulate,
                  const gemm_tuning& t, std::size_t splits, std::size_t kchunk, std::size_t kbase, std::size_t kstop) {
  const auto tile = static_cast<std::size_t>(t.tile), items = static_cast<std::size_t>(t.tile / t.per_item);
  launch_range(rt, program, "gemm", cl::NDRange((n + tile - 1) / tile * items, (m + tile - 1) / tile * items, splits),
               cl::NDRange(items, items, 1), static_cast<cl_int>(m), static_cast<cl_int>(n), static_cast<cl_int>(k),
               A.handle(), B.handle(), target, cl_int{accumulate}, static_cast<cl_int>(kchunk),
               static_cast<cl_int>(kbase), static_cast<cl_int>(kstop));
}

// How many slices k is cut into (1: none): until about t.target_groups work-groups run, each slice a
// whole number of tiles and at least t.min_split_k long.
inline std::size_t split_count(std::size_t tiles, std::size_t k, std::size_t tile, const gemm_tuning& t) {
  if (tiles >= t.target_groups || k < 2 * t.min_split_k) return 1;
  const std::size_t wanted = (t.target_groups + tiles - 1) / tiles;
  const std::size_t most = k / std::max(t.min_split_k, tile);
  return std::max<std::size_t>(1, std::min(wanted, most));
}

// C[m x n] (=|+=) sum_p opA(i, p) opB(j, p); a_kmajor / b_kmajor: the operand is stored [k x rows].
template <class T>
void gemm(runtime& rt, std::size_t m, std::size_t n, std::size_t k, const device_buffer<T>& A, bool a_kmajor,
          const device_buffer<T>& B, bool b_kmajor, device_buffer<gemm_result_t<T>>& C, bool accumulate,
          const gemm_tuning& t) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, std::int8_t> || std::is_same_v<T, std::int16_t>,
                "pbnn::opencl::gemm: operands must be float, int8 or int16");
  if (t.tile == 0) {  // 64-wide tiles reuse operands twice as much, where C has enough of them to fill a GPU
    gemm_tuning chosen = t;
    chosen.tile = (m / 64) * (n / 64) >= 512 ? 64 : 32;
    return gemm(rt, m, n, k, A, a_kmajor, B, b_kmajor, C, accumulate, chosen);
  }
  if (t.tile < 0 || t.per_item <= 0 || t.tile % t.per_item)
    throw std::invalid_argument(fmt::format("pbnn::opencl::gemm: tile {} must be a positive multiple of per_item {}",
                                            t.tile, t.per_item));
  constexpr auto int_max = static_cast<std::size_t>(std::numeric_limits<int>::max());
  if (m > int_max || n > int_max || k > int_max || m * k > A.size() || n * k > B.size())
    throw std::invalid_argument(fmt::format("pbnn::opencl::gemm: ({} x {} x {}) does not fit operands of {} and {} "
                                            "elements",
                                            m, n, k, A.size(), B.size()));
  C.resize(rt, m * n);
  if (m == 0 || n == 0) return;
  const auto tile = static_cast<std::size_t>(t.tile);
  const std::size_t splits = split_count(((m + tile - 1) / tile) * ((n + tile - 1) / tile), k, tile, t);
  const std::size_t kchunk = (k + splits - 1) / splits;
  const cl::Program& program = rt.program(kernels::gemm_source, gemm_options<T>(a_kmajor, b_kmajor, t));
  if (splits == 1) return enqueue_gemm(rt, program, m, n, k, A, B, C.handle(), accumulate, t, 1, k, 0, k);
  const cl::Buffer& slices = rt.scratch(splits * m * n * sizeof(gemm_result_t<T>));
  enqueue_gemm(rt, program, m, n, k, A, B, slices, false, t, splits, kchunk, 0, k);
  launch(rt, program, "gemm_sum_splits", m * n, slices, static_cast<cl_int>(splits), checked_count(m * n), C.handle(),
         cl_int{accumulate});
}

}  // namespace detail

// Y[b x n] = X[b x k] W^T
template <class T>
void matmul_xwt(runtime& rt, const device_buffer<T>& X, const device_buffer<T>& W,
                device_buffer<detail::gemm_result_t<T>>& Y, std::size_t b, std::size_t n, std::size_t k,
                const gemm_tuning& t = {}) {
  detail::gemm(rt, b, n, k, X, false, W, false, Y, false, t);
}
// dX[b x k] = dY[b x n] W
template <class T>
void matmul_dyw(runtime& rt, const device_buffer<T>& dY, const device_buffer<T>& W,
                device_buffer<detail::gemm_result_t<T>>& dX, std::size_t b, std::size_t n, std::size_t k,
                const gemm_tuning& t = {}) {
  detail::gemm(rt, b, k, n, dY, false, W, true, dX, false, t);
}
// dW[n x k] = dY[b x n]^T X[b x k] in 64 bits, for integer operands whose int32 sums are exact only
// over exact_rows rows (int16): each run of exact_rows rows is summed in int32 by a work-group of
// its own, and the runs are added in 64 bits. The slices of at most 256 MB of scratch at a time.
template <class T>
void matmul_dytx_wide(runtime& rt, const device_buffer<T>& dY, const device_buffer<T>& X,
                      device_buffer<std::int64_t>& dW, std::size_t b, std::size_t n, std::size_t k,
                      std::size_t exact_rows, gemm_tuning t = {}) {
  static_assert(!std::is_same_v<T, float>, "pbnn::opencl::matmul_dytx_wide: integer operands");
  if (t.tile == 0) t.tile = 32;
  constexpr std::size_t scratch_cap = std::size_t{256} << 20;
  const std::size_t slice_bytes = n * k * sizeof(std::int32_t);
  const std::size_t runs_at_once = std::max<std::size_t>(1, scratch_cap / std::max<std::size_t>(slice_bytes, 1));
  if (exact_rows == 0 || b * n > dY.size() || b * k > X.size())
    throw std::invalid_argument("pbnn::opencl::matmul_dytx_wide: operands smaller than the shape, or no rows per run");
  dW.resize(rt, n * k);
  const cl::Program& program = rt.program(kernels::gemm_source, detail::gemm_options<T>(true, true, t));
  for (std::size_t r0 = 0; r0 < b; r0 += runs_at_once * exact_rows) {
    const std::size_t r1 = std::min(b, r0 + runs_at_once * exact_rows);
    const std::size_t runs = (r1 - r0 + exact_rows - 1) / exact_rows;
    const cl::Buffer& slices = rt.scratch(runs * slice_bytes);
    detail::enqueue_gemm(rt, program, n, k, b, dY, X, slices, false, t, runs, exact_rows, r0, r1);
    detail::launch(rt, program, "gemm_sum_splits_wide", n * k, slices, static_cast<cl_int>(runs),
                   detail::checked_count(n * k), dW.handle(), cl_int{r0 > 0});
  }
}

// dW[n x k] = dY[b x n]^T X[b x k]
template <class T>
void matmul_dytx(runtime& rt, const device_buffer<T>& dY, const device_buffer<T>& X,
                 device_buffer<detail::gemm_result_t<T>>& dW, std::size_t b, std::size_t n, std::size_t k,
                 const gemm_tuning& t = {}) {
  detail::gemm(rt, n, k, b, dY, true, X, true, dW, false, t);
}

}  // namespace pbnn::opencl
