#pragma once
// OpenCL C 1.2 source of the float products of a small batch's dense layers (opencl/gemm.hpp's
// few_rows): a batch of a few rows makes the tiled kernels compute mostly padding and read the
// weights through more work-groups than their size needs, where these read every weight once, in
// whole 16-byte words, and do plain fp32 arithmetic. Set by the host: -DFR_M, the rows (1 to 8)
// of the operand that has few of them (gemm_short_k: any; it takes 4 output rows per item).
//   gemm_few_rows_dot   C[m x n] (=|+=) A[m x k] B[n x k]^T    (Y = X W^T; k % 4 == 0)
//   gemm_few_rows_axpy  C[m x n] (=|+=) A[m x k] B[k x n]      (dX = dY W; n % 4 == 0)
//   gemm_short_k        C[m x n] (=|+=) A[k x m]^T B[k x n]   (dW = dY^T X; n % 4 == 0, k small)
//   gemm_few_rows_backward  dX = dY W and dW = dY^T X of one dense layer in one launch
// Each output is summed in a fixed order: the results do not depend on the schedule.

namespace pbnn::opencl::kernels {

inline constexpr char gemm_few_rows_source[] = R"CLC(
#define FR_ITEMS 256  // work-group size of gemm_few_rows_axpy
#define FR_DOT_ITEMS 256  // work-group size of gemm_few_rows_dot
#define FR_COLS 4         // gemm_few_rows_dot: columns of C per work-group
#define FR_OUT (FR_M * FR_COLS)
#define FR_QUADS 8  // gemm_few_rows_axpy: 4-column words of C per work-group
#define FR_PARTS (FR_ITEMS / FR_QUADS)

float dot4(const float4 a, const float4 b, float s) {
  return fma(a.w, b.w, fma(a.z, b.z, fma(a.y, b.y, fma(a.x, b.x, s))));
}

// Work-group per FR_COLS columns of C (rows of B); its items split k in 4-float words, then add
// their partial sums in local memory (item t's partial at t = r * 8 + q, added by part q then over q).
__kernel __attribute__((reqd_work_group_size(FR_DOT_ITEMS, 1, 1)))
void gemm_few_rows_dot(const int m, const int n, const int k, __global const float4* restrict A,
                       __global const float4* restrict B, __global float* restrict C, const int accumulate) {
  __local float partial[FR_OUT][FR_DOT_ITEMS + 8];  // + 8: the 4 outputs a warp reads in different banks
  __local float parts[FR_OUT][8];
  const int t = get_local_id(0), j0 = get_group_id(0) * FR_COLS, kw = k / 4;
  float acc[FR_M][FR_COLS];
  for (int i = 0; i < FR_M; ++i)
    for (int c = 0; c < FR_COLS; ++c) acc[i][c] = 0.0f;
#pragma unroll 2
  for (int p = t; p < kw; p += FR_DOT_ITEMS) {
    float4 b[FR_COLS];
    for (int c = 0; c < FR_COLS; ++c) b[c] = j0 + c < n ? B[(size_t)(j0 + c) * kw + p] : (float4)(0.0f);
    for (int i = 0; i < FR_M; ++i) {
      const float4 a = A[(size_t)i * kw + p];
      for (int c = 0; c < FR_COLS; ++c) acc[i][c] = dot4(a, b[c], acc[i][c]);
    }
  }
  for (int i = 0; i < FR_M; ++i)
    for (int c = 0; c < FR_COLS; ++c) partial[i * FR_COLS + c][t] = acc[i][c];
  barrier(CLK_LOCAL_MEM_FENCE);
  // 8 items per output, each adding every 8th partial, then one item per output adds the 8.
  const int q = t % 8;
  for (int o = t / 8; o < FR_OUT; o += FR_DOT_ITEMS / 8) {
    float s = 0.0f;
    for (int r = 0; r < FR_DOT_ITEMS / 8; ++r) s += partial[o][r * 8 + q];
    parts[o][q] = s;
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int o = t; o < FR_OUT; o += FR_DOT_ITEMS) {
    const int i = o / FR_COLS, j = j0 + o % FR_COLS;
    if (j >= n) continue;
    float s = 0.0f;
    for (int r = 0; r < 8; ++r) s += parts[o][r];
    __global float* out = C + (size_t)i * n + j;
    *out = accumulate ? *out + s : s;
  }
}

// Work-group `group` per FR_QUADS 4-column words of C; item t takes word t % FR_QUADS over the rows p
// of B of its part (p % FR_PARTS == t / FR_QUADS), then the parts add up in local memory, in order.
// partial: the kernel's local [FR_PARTS][FR_M][FR_QUADS].
void few_rows_axpy(const int group, const int m, const int n, const int k, __global const float* restrict A,
                   __global const float4* restrict B, __global float4* restrict C, const int accumulate,
                   __local float4 (*partial)[FR_M][FR_QUADS]) {
  const int t = get_local_id(0), q = t % FR_QUADS, part = t / FR_QUADS, nw = n / 4;
  const int jw = group * FR_QUADS + q;
  float4 acc[FR_M];
  for (int i = 0; i < FR_M; ++i) acc[i] = (float4)(0.0f);
  if (jw < nw)
#pragma unroll 4
    for (int p = part; p < k; p += FR_PARTS) {
      const float4 b = B[(size_t)p * nw + jw];
      for (int i = 0; i < FR_M; ++i) acc[i] = fma((float4)(A[(size_t)i * k + p]), b, acc[i]);
    }
  for (int i = 0; i < FR_M; ++i) partial[part][i][q] = acc[i];
  barrier(CLK_LOCAL_MEM_FENCE);
  // Item t adds output word (i, q) = (t / FR_QUADS, t % FR_QUADS) over the parts.
  if (t >= FR_M * FR_QUADS) return;
  const int i = t / FR_QUADS, ow = group * FR_QUADS + t % FR_QUADS;
  if (ow >= nw) return;
  float4 s = (float4)(0.0f);
  for (int r = 0; r < FR_PARTS; ++r) s += partial[r][i][t % FR_QUADS];
  __global float4* out = C + (size_t)i * nw + ow;
  *out = accumulate ? *out + s : s;
}

__kernel __attribute__((reqd_work_group_size(FR_ITEMS, 1, 1)))
void gemm_few_rows_axpy(const int m, const int n, const int k, __global const float* restrict A,
                        __global const float4* restrict B, __global float4* restrict C, const int accumulate) {
  __local float4 partial[FR_PARTS][FR_M][FR_QUADS];
  few_rows_axpy(get_group_id(0), m, n, k, A, B, C, accumulate, partial);
}

// Item per 4-column word jw of FR_SHORT_K_ROWS rows of C from row i0: sums over the k rows of A and B
// (no reduction between items).
#define FR_SHORT_K_ROWS 4
void short_k(const int jw, const int i0, const int m, const int n, const int k, __global const float* restrict A,
             __global const float4* restrict B, __global float4* restrict C, const int accumulate) {
  const int nw = n / 4;
  if (jw >= nw || i0 >= m) return;
  float4 acc[FR_SHORT_K_ROWS];
  for (int r = 0; r < FR_SHORT_K_ROWS; ++r) acc[r] = (float4)(0.0f);
#pragma unroll 8
  for (int p = 0; p < k; ++p) {
    const float4 b = B[(size_t)p * nw + jw];
    for (int r = 0; r < FR_SHORT_K_ROWS; ++r)
      if (i0 + r < m) acc[r] = fma((float4)(A[(size_t)p * m + i0 + r]), b, acc[r]);
  }
  for (int r = 0; r < FR_SHORT_K_ROWS; ++r) {
    if (i0 + r >= m) break;
    __global float4* out = C + (size_t)(i0 + r) * nw + jw;
    *out = accumulate ? *out + acc[r] : acc[r];
  }
}

__kernel void gemm_short_k(const int m, const int n, const int k, __global const float* restrict A,
                           __global const float4* restrict B, __global float4* restrict C, const int accumulate) {
  short_k(get_global_id(0), get_global_id(1) * FR_SHORT_K_ROWS, m, n, k, A, B, C, accumulate);
}

// A dense layer's backward pass over a batch of FR_M rows in one launch: dX[FR_M x kin] = dY W
// (few_rows_axpy, the first axpy_groups work-groups) and dW[n x kin] = dY^T X (short_k, the others,
// an item per 4-column word of 4 rows); dY [FR_M x n], X [FR_M x kin], W [n x kin].
__kernel __attribute__((reqd_work_group_size(FR_ITEMS, 1, 1)))
void gemm_few_rows_backward(const int n, const int kin, __global const float* restrict dY,
                            __global const float4* restrict X, __global const float4* restrict W,
                            __global float4* restrict dX, __global float4* restrict dW, const int axpy_groups) {
  __local float4 partial[FR_PARTS][FR_M][FR_QUADS];
  const int group = get_group_id(0);
  if (group < axpy_groups) {
    few_rows_axpy(group, FR_M, kin, n, dY, W, dX, 0, partial);
    return;
  }
  const int words = (kin / 4 + FR_ITEMS - 1) / FR_ITEMS * FR_ITEMS;  // a row block's items
  const int item = (group - axpy_groups) * FR_ITEMS + get_local_id(0);
  short_k(item % words, item / words * FR_SHORT_K_ROWS, n, kin, FR_M, dY, X, dW, 0);
}
)CLC";

}  // namespace pbnn::opencl::kernels
