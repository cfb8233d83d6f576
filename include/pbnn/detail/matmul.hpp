#pragma once
// The three products of a dense layer, per number format. Matrices are row-major; W is [n x k]
// (PyTorch's layout). fp32 goes through Eigen (threaded by OpenMP); the fixed formats through pbnn's
// integer GEMM (int8/int16 operands, int32 accumulation).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "pbnn/detail/int_gemm.hpp"
#include "pbnn/detail/transpose.hpp"

namespace pbnn::detail {

struct empty {};

template <class T>
using row_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using cmap = Eigen::Map<const row_matrix<T>>;
template <class T>
using mmap = Eigen::Map<row_matrix<T>>;

// Y[b x n] = X[b x k] * W^T
inline void matmul_xwt(const float* X, const float* W, float* Y, std::size_t b, std::size_t n, std::size_t k) {
  mmap<float>(Y, b, n).noalias() = cmap<float>(X, b, k) * cmap<float>(W, n, k).transpose();
}
// dX[b x k] = dY[b x n] * W
inline void matmul_dyw(const float* dY, const float* W, float* dX, std::size_t b, std::size_t n, std::size_t k) {
  mmap<float>(dX, b, k).noalias() = cmap<float>(dY, b, n) * cmap<float>(W, n, k);
}
// dW[n x k] = dY^T * X
inline void matmul_dytx(const float* dY, const float* X, float* dW, std::size_t b, std::size_t n, std::size_t k) {
  mmap<float>(dW, n, k).noalias() = cmap<float>(dY, b, n).transpose() * cmap<float>(X, b, k);
}

// Integer versions: same products, int32 results. Operands are transposed into scratch so that the
// one integer kernel (dot products along contiguous k) serves all three.
template <class S>
struct int_matmul_scratch {
  std::vector<S> a, b;
};

template <class S>
void matmul_xwt(const S* X, const S* W, std::int32_t* Y, std::size_t b, std::size_t n, std::size_t k,
                int_matmul_scratch<S>&) {
  gemm_nt(b, n, k, X, k, W, k, Y, n);
}
template <class S>
void matmul_dyw(const S* dY, const S* W, std::int32_t* dX, std::size_t b, std::size_t n, std::size_t k,
                int_matmul_scratch<S>& s) {
  s.a.resize(n * k);
  transpose(W, n, k, s.a.data());  // W^T: [k x n]
  gemm_nt(b, k, n, dY, n, s.a.data(), n, dX, k);
}
template <class S>
void matmul_dytx(const S* dY, const S* X, std::int32_t* dW, std::size_t b, std::size_t n, std::size_t k,
                 int_matmul_scratch<S>& s) {
  s.a.resize(n * b);
  s.b.resize(k * b);
  transpose(dY, b, n, s.a.data());  // [n x b]
  transpose(X, b, k, s.b.data());   // [k x b]
  gemm_nt(n, k, b, s.a.data(), b, s.b.data(), b, dW, k);
}

}  // namespace pbnn::detail
