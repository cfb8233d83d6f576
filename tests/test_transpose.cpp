// The SIMD-tiled transpose against the element formula, on sizes that leave partial tiles on both
// edges and sizes large enough to take the threaded path.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <vector>

#include "pbnn/detail/transpose.hpp"

namespace {

template <class T>
void check_transpose(std::size_t rows, std::size_t cols) {
  std::mt19937 g(static_cast<unsigned>(rows * 131 + cols));
  std::uniform_int_distribution<int> d(-30000, 30000);
  std::vector<T> in(rows * cols), out(rows * cols, T{0});
  for (auto& v : in) v = static_cast<T>(d(g));
  pbnn::detail::transpose(in.data(), rows, cols, out.data());
  std::size_t wrong = 0;
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) wrong += out[c * rows + r] != in[r * cols + c];
  INFO(rows << " x " << cols << ", " << sizeof(T) << "-byte elements");
  CHECK(wrong == 0);
}

}  // namespace

TEMPLATE_TEST_CASE("transpose matches out[c][r] = in[r][c] on every shape", "", std::int8_t, std::int16_t, float) {
  for (const std::size_t rows : {1, 7, 16, 17, 63, 64, 65, 200})
    for (const std::size_t cols : {1, 5, 8, 16, 31, 64, 129}) check_transpose<TestType>(rows, cols);
  check_transpose<TestType>(3000, 1152);  // threaded, several bands and column blocks
  check_transpose<TestType>(4099, 27);    // the first convolution's im2col shape, odd row count
}
