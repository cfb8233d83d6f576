// Integer GEMM correctness: every path against an int64 reference, and SIMD against portable.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "pbnn/detail/int_gemm.hpp"

namespace {

using pbnn::detail::gemm_nt;
using pbnn::detail::gemm_nt_portable;

template <class T>
std::vector<T> random_matrix(std::size_t rows, std::size_t ld, T lim, std::mt19937& rng) {
  std::uniform_int_distribution<int> d(-lim, lim);
  std::vector<T> v(rows * ld);
  for (auto& x : v) x = static_cast<T>(d(rng));
  return v;
}

// Index of the first difference, or -1: keeps failure messages short (Catch would print whole vectors).
std::ptrdiff_t mismatch(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b) {
  if (a.size() != b.size()) return 0;
  const auto it = std::mismatch(a.begin(), a.end(), b.begin());
  return it.first == a.end() ? -1 : it.first - a.begin();
}

// int64 reference; int16 results clamp the exact total (valid whenever nothing saturates midway).
template <class T>
std::vector<std::int32_t> reference(std::size_t m, std::size_t n, std::size_t k, const std::vector<T>& A,
                                    std::size_t lda, const std::vector<T>& B, std::size_t ldb,
                                    std::vector<std::int32_t> C, std::size_t ldc, bool accumulate) {
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      std::int64_t s = accumulate ? C[i * ldc + j] : 0;
      for (std::size_t p = 0; p < k; ++p) s += std::int64_t{A[i * lda + p]} * B[j * ldb + p];
      C[i * ldc + j] = static_cast<std::int32_t>(
          std::clamp<std::int64_t>(s, std::numeric_limits<std::int32_t>::min(), std::numeric_limits<std::int32_t>::max()));
    }
  return C;
}

template <class T>
void check_shape(std::size_t m, std::size_t n, std::size_t k, T lim, std::mt19937& rng, std::size_t pad = 0,
                 bool accumulate = false) {
  const std::size_t lda = k + pad, ldb = k + 2 * pad, ldc = n + 3 * pad;
  const auto A = random_matrix<T>(m, lda, lim, rng);
  const auto B = random_matrix<T>(n, ldb, lim, rng);
  std::vector<std::int32_t> C0(m * ldc);
  std::uniform_int_distribution<std::int32_t> dc(-1000000, 1000000);
  for (auto& x : C0) x = dc(rng);
  const auto want = reference(m, n, k, A, lda, B, ldb, C0, ldc, accumulate);
  auto got = C0, port = C0;
  gemm_nt(m, n, k, A.data(), lda, B.data(), ldb, got.data(), ldc, accumulate);
  gemm_nt_portable(m, n, k, A.data(), lda, B.data(), ldb, port.data(), ldc, accumulate);
  INFO("m=" << m << " n=" << n << " k=" << k << " pad=" << pad << " acc=" << accumulate << " elem=" << sizeof(T));
  CHECK(mismatch(got, want) == -1);  // also checks that padding between rows of C is untouched
  CHECK(mismatch(port, want) == -1);
}

constexpr std::size_t kSmall[] = {1, 3, 17, 33, 100};


}  // namespace

TEST_CASE("int8 gemm_nt matches the int64 reference on odd shapes", "[int_gemm]") {
  std::mt19937 rng(1);
  for (auto m : kSmall)
    for (auto n : kSmall)
      for (auto k : kSmall) check_shape<std::int8_t>(m, n, k, 127, rng);
  for (std::size_t k : {1, 2, 3, 4, 5, 63, 64, 65, 127, 129, 1283, 2600})  // k-block boundaries and tails
    check_shape<std::int8_t>(13, 37, k, 127, rng, 5);
}

TEST_CASE("int16 gemm_nt matches the int64 reference on odd shapes", "[int_gemm]") {
  std::mt19937 rng(2);
  for (auto m : kSmall)
    for (auto n : kSmall)
      for (auto k : kSmall) check_shape<std::int16_t>(m, n, k, 2047, rng);
  for (std::size_t k : {1, 2, 3, 63, 64, 65, 511, 512, 513, 641, 1283})
    check_shape<std::int16_t>(13, 37, k, 2047, rng, 5);
}

TEST_CASE("int gemm_nt on the MLP shapes", "[int_gemm]") {
  std::mt19937 rng(3);
  const std::size_t shapes[][3] = {{100, 1000, 784}, {100, 500, 1000}, {100, 10, 500}, {100, 784, 1000},
                                   {1000, 784, 100}, {500, 1000, 100}, {200, 128, 1152}};
  for (const auto& s : shapes) {
    check_shape<std::int8_t>(s[0], s[1], s[2], 127, rng);
    check_shape<std::int16_t>(s[0], s[1], s[2], 2047, rng, 0, true);  // random signs: no saturation
  }
}

TEST_CASE("int gemm_nt with strides and accumulate", "[int_gemm]") {
  std::mt19937 rng(4);
  for (auto m : {1, 7, 29})
    for (auto n : {1, 16, 31, 33, 70})
      for (auto k : {1, 6, 77, 300}) {
        check_shape<std::int8_t>(m, n, k, 127, rng, 3, true);
        check_shape<std::int8_t>(m, n, k, 127, rng, 9, false);
        check_shape<std::int16_t>(m, n, k, 2047, rng, 3, true);
        check_shape<std::int16_t>(m, n, k, 2047, rng, 9, false);
      }
  // Large enough to take the threaded path with ragged tiles; n = 10 splits the rows between threads.
  check_shape<std::int8_t>(131, 333, 517, 127, rng, 7, true);
  check_shape<std::int16_t>(131, 333, 517, 2047, rng, 7, true);
  check_shape<std::int8_t>(400, 10, 700, 127, rng, 1, true);
  check_shape<std::int16_t>(400, 10, 700, 2047, rng, 1, false);
  // Several k-blocks and several row blocks per thread.
  check_shape<std::int8_t>(900, 20, 1283, 127, rng, 2, true);
  check_shape<std::int16_t>(900, 20, 1283, 2047, rng, 2, true);
}

TEST_CASE("int gemm_nt is safe to call from concurrent threads", "[int_gemm]") {
  // Inside a parallel region each call runs on its caller's thread with its own scratch buffers.
  constexpr int kCalls = 8;
  const std::size_t m = 37, n = 71, k = 333;
  std::mt19937 rng(7);
  std::vector<std::vector<std::int8_t>> As, Bs;
  std::vector<std::vector<std::int32_t>> want, got(kCalls, std::vector<std::int32_t>(m * n));
  for (int c = 0; c < kCalls; ++c) {
    As.push_back(random_matrix<std::int8_t>(m, k, 127, rng));
    Bs.push_back(random_matrix<std::int8_t>(n, k, 127, rng));
    want.push_back(reference(m, n, k, As[c], k, Bs[c], k, std::vector<std::int32_t>(m * n), n, false));
  }
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic)
#endif
  for (int c = 0; c < kCalls; ++c) gemm_nt(m, n, k, As[c].data(), k, Bs[c].data(), k, got[c].data(), n);
  for (int c = 0; c < kCalls; ++c) CHECK(mismatch(got[c], want[c]) == -1);
}

TEST_CASE("int gemm_nt at the extreme operand values", "[int_gemm]") {
  std::mt19937 rng(5);
  for (int sa : {-1, 1})
    for (int sb : {-1, 1}) {
      const std::size_t m = 19, n = 45, k = 1037;
      std::vector<std::int8_t> A8(m * k, static_cast<std::int8_t>(127 * sa)), B8(n * k, static_cast<std::int8_t>(127 * sb));
      std::vector<std::int32_t> C(m * n, 7);
      gemm_nt(m, n, k, A8.data(), k, B8.data(), k, C.data(), n);
      for (auto c : C) REQUIRE(c == sa * sb * 127 * 127 * static_cast<int>(k));
      const std::size_t k16 = 512;  // the largest k that can never saturate
      std::vector<std::int16_t> A16(m * k16, static_cast<std::int16_t>(2047 * sa)),
          B16(n * k16, static_cast<std::int16_t>(2047 * sb));
      gemm_nt(m, n, k16, A16.data(), k16, B16.data(), k16, C.data(), n);
      for (auto c : C) REQUIRE(c == sa * sb * 2047 * 2047 * static_cast<int>(k16));
    }
  // Random +-max signs over a long k: exact for int8 up to the documented k.
  std::bernoulli_distribution coin;
  const std::size_t m = 5, n = 21, k = 65000;
  std::vector<std::int8_t> A(m * k), B(n * k);
  for (auto& x : A) x = coin(rng) ? 127 : -127;
  for (auto& x : B) x = coin(rng) ? 127 : -127;
  for (std::size_t i = 0; i < m * k; i += 3) A[i] = 127;  // bias towards large positive sums
  for (std::size_t i = 0; i < n * k; i += 3) B[i] = 127;
  std::vector<std::int32_t> C(m * n), Cp(m * n);
  gemm_nt(m, n, k, A.data(), k, B.data(), k, C.data(), n);
  gemm_nt_portable(m, n, k, A.data(), k, B.data(), k, Cp.data(), n);
  CHECK(mismatch(C, reference(m, n, k, A, k, B, k, std::vector<std::int32_t>(m * n), n, false)) == -1);
  CHECK(mismatch(C, Cp) == -1);
}

TEST_CASE("int16 gemm_nt saturates instead of wrapping", "[int_gemm]") {
  const std::size_t m = 3, n = 20, k = 1000;  // 1000 * 2047^2 ~ 4.2e9 > INT32_MAX
  std::vector<std::int16_t> A(m * k, 2047), B(n * k, 2047), Bneg(n * k, -2047);
  std::vector<std::int32_t> C(m * n), Cp(m * n);
  gemm_nt(m, n, k, A.data(), k, B.data(), k, C.data(), n);
  gemm_nt_portable(m, n, k, A.data(), k, B.data(), k, Cp.data(), n);
  for (auto c : C) REQUIRE(c == std::numeric_limits<std::int32_t>::max());
  CHECK(mismatch(C, Cp) == -1);
  gemm_nt(m, n, k, A.data(), k, Bneg.data(), k, C.data(), n);
  gemm_nt_portable(m, n, k, A.data(), k, Bneg.data(), k, Cp.data(), n);
  for (auto c : C) REQUIRE(c == std::numeric_limits<std::int32_t>::min());
  CHECK(mismatch(C, Cp) == -1);
  // Accumulating onto a large C saturates too.
  std::fill(C.begin(), C.end(), std::numeric_limits<std::int32_t>::max() - 5);
  gemm_nt(m, n, 4, A.data(), k, B.data(), k, C.data(), n, true);
  for (auto c : C) REQUIRE(c == std::numeric_limits<std::int32_t>::max());
}

TEST_CASE("int gemm_nt SIMD path equals the portable path", "[int_gemm]") {
  if (!pbnn::detail::int_gemm_has_simd) {
    WARN("built without AVX-512 VNNI: gemm_nt is the portable path");
    return;
  }
  std::mt19937 rng(6);
  std::uniform_int_distribution<std::size_t> dim(1, 300);
  for (int rep = 0; rep < 40; ++rep) {
    const std::size_t m = dim(rng), n = dim(rng), k = dim(rng) * (rep % 4 + 1);
    const bool acc = rep % 2;
    const auto A8 = random_matrix<std::int8_t>(m, k, 127, rng);
    const auto B8 = random_matrix<std::int8_t>(n, k, 127, rng);
    std::vector<std::int32_t> C(m * n, 11), Cp(m * n, 11);
    gemm_nt(m, n, k, A8.data(), k, B8.data(), k, C.data(), n, acc);
    gemm_nt_portable(m, n, k, A8.data(), k, B8.data(), k, Cp.data(), n, acc);
    REQUIRE(mismatch(C, Cp) == -1);
    const auto A16 = random_matrix<std::int16_t>(m, k, 2047, rng);
    const auto B16 = random_matrix<std::int16_t>(n, k, 2047, rng);
    gemm_nt(m, n, k, A16.data(), k, B16.data(), k, C.data(), n, acc);
    gemm_nt_portable(m, n, k, A16.data(), k, B16.data(), k, Cp.data(), n, acc);
    REQUIRE(mismatch(C, Cp) == -1);
  }
}
