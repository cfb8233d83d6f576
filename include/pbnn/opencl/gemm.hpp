#pragma once
// The three products of a dense or convolutional layer on an OpenCL device, as the CPU backend's
// detail/matmul.hpp has them (row-major; W is [n x k]):
//   matmul_xwt:  Y[b x n]  = X[b x k] W^T        matmul_dyw:  dX[b x k] = dY[b x n] W
//   matmul_dytx: dW[n x k] = dY^T X              (fp32: float results; int8/int16: int32 sums)
// All three enqueue one kernel without waiting. Tile sizes are build options (-DTS, -DWPT), so a
// device can be given its own (gemm_tuning).
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
  int tile = 32;            // TS: the work-group computes a tile x tile block of C
  int per_item = 4;         // WPT: each work-item computes per_item x per_item outputs
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

// C[m x n] (=|+=) sum_p opA(i, p) opB(j, p); a_kmajor / b_kmajor: the operand is stored [k x rows].
template <class T>
void gemm(runtime& rt, std::size_t m, std::size_t n, std::size_t k, const device_buffer<T>& A, bool a_kmajor,
          const device_buffer<T>& B, bool b_kmajor, device_buffer<gemm_result_t<T>>& C, bool accumulate,
          const gemm_tuning& t) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, std::int8_t> || std::is_same_v<T, std::int16_t>,
                "pbnn::opencl::gemm: operands must be float, int8 or int16");
  if (t.tile <= 0 || t.per_item <= 0 || t.tile % t.per_item)
    throw std::invalid_argument(fmt::format("pbnn::opencl::gemm: tile {} must be a positive multiple of per_item {}",
                                            t.tile, t.per_item));
  constexpr auto int_max = static_cast<std::size_t>(std::numeric_limits<int>::max());
  if (m > int_max || n > int_max || k > int_max || m * k > A.size() || n * k > B.size())
    throw std::invalid_argument(fmt::format("pbnn::opencl::gemm: ({} x {} x {}) does not fit operands of {} and {} "
                                            "elements",
                                            m, n, k, A.size(), B.size()));
  C.resize(rt, m * n);
  if (m == 0 || n == 0) return;
  const std::string options =
      fmt::format("-DTA={} -DTACC={} -DA_KMAJOR={} -DB_KMAJOR={} -DTS={} -DWPT={}", cl_type_name<T>(),
                  std::is_same_v<T, float> ? "float" : "int", a_kmajor ? 1 : 0, b_kmajor ? 1 : 0, t.tile, t.per_item);
  const auto tile = static_cast<std::size_t>(t.tile), items = static_cast<std::size_t>(t.tile / t.per_item);
  launch_range(rt, rt.program(kernels::gemm_source, options), "gemm",
               cl::NDRange((n + tile - 1) / tile * items, (m + tile - 1) / tile * items), cl::NDRange(items, items),
               static_cast<cl_int>(m), static_cast<cl_int>(n), static_cast<cl_int>(k), A.handle(), B.handle(),
               C.handle(), cl_int{accumulate});
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
// dW[n x k] = dY[b x n]^T X[b x k]
template <class T>
void matmul_dytx(runtime& rt, const device_buffer<T>& dY, const device_buffer<T>& X,
                 device_buffer<detail::gemm_result_t<T>>& dW, std::size_t b, std::size_t n, std::size_t k,
                 const gemm_tuning& t = {}) {
  detail::gemm(rt, n, k, b, dY, true, X, true, dW, false, t);
}

}  // namespace pbnn::opencl
