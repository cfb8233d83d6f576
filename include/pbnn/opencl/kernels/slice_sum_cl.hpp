#pragma once
// OpenCL C shared by every kernel that adds a product's split-k slices: gemm_sum_splits, and the
// readers that add them as they read (batch norm's fused passes, Adam). One definition of the order,
// slice 0 first, so that a tensor is the same bit for bit whichever of them adds its slices.
namespace pbnn::opencl::kernels {

inline constexpr char slice_sum_source[] = R"CLC(
// Defines T NAME(T s, slices, splits, stride, i): s + slice 0 + slice 1 + ... + slice splits - 1 at
// element i, slice z starting at slices + z stride; LOAD(p, j) reads the T at element j of p (E*).
#define DEFINE_SLICE_SUM(NAME, T, E, LOAD)                                                         \
  T NAME(T s, __global const E* slices, const uint splits, const size_t stride, const size_t i) { \
    for (uint z = 0; z < splits; ++z) s += LOAD(slices, (size_t)z * stride + i);                 \
    return s;                                                                                    \
  }
#define SLICE_ELEMENT(p, j) ((p)[j])
)CLC";

}  // namespace pbnn::opencl::kernels
