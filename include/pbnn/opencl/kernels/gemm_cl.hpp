#pragma once
// OpenCL C 1.2 source of pbnn's GEMM: C[m x n] (=|+=) sum_p opA(i, p) opB(j, p), one kernel for
// the three products of a layer (X W^T, dY W, dY^T X) through the storage order of each operand.
// Portable on purpose (no vendor extensions): local-memory tiles of TS x TS, each work-item
// accumulating WPT x WPT outputs in registers. Set by the host as -D options:
//   TA    operand type (float, char, short)     TACC  accumulator and result type (float, int)
//   A_KMAJOR / B_KMAJOR  0: operand stored [rows x k] (k contiguous), 1: stored [k x rows]
//   TS, WPT  tile side and outputs per work-item per dimension (TS % WPT == 0)
// Integer sums wrap modulo 2^32 like int32 arithmetic; the callers keep them exact (see int_gemm.hpp).
// Split k: work-group z of the third dimension sums p in [kbase + z kchunk, kbase + (z + 1) kchunk),
// p < kstop, into its own m x n slice of C (a workspace), and gemm_sum_splits adds the slices up
// (gemm_sum_splits_wide in 64 bits); with one split from 0 to k, C itself.
// -DTRACK_MAX=1 (int sums): the kernel that writes the final sums (gemm, or gemm_sum_splits after a
// split) also reduces their largest magnitude into maxima[slot], as quantize_cl.hpp's max_abs_int
// would after it (track_max_source).
#include "pbnn/opencl/kernels/join.hpp"
#include "pbnn/opencl/kernels/slice_sum_cl.hpp"

namespace pbnn::opencl::kernels {

// OpenCL C shared by the GEMM sources: a work-group's largest |sum| into maxima[slot] (one atomic).
inline constexpr char track_max_source[] = R"CLC(
#ifndef TRACK_MAX
#define TRACK_MAX 0
#endif
#if TRACK_MAX
#define TRACK_MAX_ARGS , volatile __global uint* maxima, const uint slot
// The largest of the group's `mine` into maxima[slot]: items (the group's size, a power of two)
// uints of scratch, item this work-item's index in the group. Uniform barriers.
void group_max_into(const uint mine, __local uint* scratch, const int items, const int item,
                    volatile __global uint* maxima, const uint slot) {
  barrier(CLK_LOCAL_MEM_FENCE);  // scratch may be a tile the group has just read
  scratch[item] = mine;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = items / 2; s > 0; s >>= 1) {
    if (item < s) scratch[item] = max(scratch[item], scratch[item + s]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (item == 0) atomic_max(maxima + slot, scratch[0]);
}
#else
#define TRACK_MAX_ARGS
#endif
)CLC";

// OpenCL C shared by the GEMM sources: element (i, p) of A and (j, p) of B, each stored [rows x k]
// or, with A_KMAJOR / B_KMAJOR, [k x rows].
inline constexpr char operand_at_source[] = R"CLC(
#if A_KMAJOR
#define A_AT(i, p) A[(size_t)(p) * m + (i)]
#else
#define A_AT(i, p) A[(size_t)(i) * k + (p)]
#endif
#if B_KMAJOR
#define B_AT(j, p) B[(size_t)(p) * n + (j)]
#else
#define B_AT(j, p) B[(size_t)(j) * k + (p)]
#endif
)CLC";

inline constexpr char gemm_body_source[] = R"CLC(
#ifndef TS
#define TS 32
#endif
#ifndef WPT
#define WPT 4
#endif
#define RTS (TS / WPT)

__kernel __attribute__((reqd_work_group_size(RTS, RTS, 1)))
void gemm(const int m, const int n, const int k, __global const TA* restrict A, __global const TA* restrict B,
          __global TACC* restrict C, const int accumulate, const int kchunk, const int kbase, const int kstop
          TRACK_MAX_ARGS) {
  const int tx = get_local_id(0), ty = get_local_id(1);  // tx: columns of C, ty: rows
  const int col0 = get_group_id(0) * TS, row0 = get_group_id(1) * TS;
  const int kbegin = kbase + get_group_id(2) * kchunk, kend = min(kstop, kbegin + kchunk);
  C += (size_t)get_group_id(2) * m * n;
  __local TA As[TS][TS + 1];  // As[r][p] = opA(row0 + r, p0 + p); +1 avoids bank conflicts
  __local TA Bs[TS][TS + 1];  // Bs[c][p] = opB(col0 + c, p0 + p)
  TACC acc[WPT][WPT];
  for (int wi = 0; wi < WPT; ++wi)
    for (int wj = 0; wj < WPT; ++wj) acc[wi][wj] = 0;

  // Every work-item of the group runs the same number of iterations of both loops, so the
  // barriers are uniform (PoCL requires it).
  for (int p0 = kbegin; p0 < kend; p0 += TS) {
    for (int l = ty * RTS + tx; l < TS * TS; l += RTS * RTS) {
#if A_KMAJOR
      const int r = l % TS, p = l / TS;  // consecutive work-items read consecutive rows
#else
      const int r = l / TS, p = l % TS;  // consecutive work-items read consecutive k
#endif
      const int gi = row0 + r, gp = p0 + p;
      As[r][p] = (gi < m && gp < kend) ? A_AT(gi, gp) : (TA)0;
#if B_KMAJOR
      const int c = l % TS, q = l / TS;
#else
      const int c = l / TS, q = l % TS;
#endif
      const int gj = col0 + c, gq = p0 + q;
      Bs[c][q] = (gj < n && gq < kend) ? B_AT(gj, gq) : (TA)0;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int p = 0; p < TS; ++p) {
      TACC a[WPT], b[WPT];
      for (int w = 0; w < WPT; ++w) {
        a[w] = (TACC)As[ty + w * RTS][p];
        b[w] = (TACC)Bs[tx + w * RTS][p];
      }
      for (int wi = 0; wi < WPT; ++wi)
        for (int wj = 0; wj < WPT; ++wj) acc[wi][wj] += a[wi] * b[wj];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  uint largest = 0;  // of the sums written, where TRACK_MAX
  for (int wi = 0; wi < WPT; ++wi) {
    const int i = row0 + ty + wi * RTS;
    if (i >= m) continue;
    for (int wj = 0; wj < WPT; ++wj) {
      const int j = col0 + tx + wj * RTS;
      if (j < n) {
        __global TACC* c = C + (size_t)i * n + j;
        const TACC sum = accumulate ? *c + acc[wi][wj] : acc[wi][wj];
        *c = sum;
#if TRACK_MAX
        largest = max(largest, (uint)abs(sum));
#endif
      }
    }
  }
#if TRACK_MAX
  __local uint scratch[RTS * RTS];
  group_max_into(largest, scratch, RTS * RTS, ty * RTS + tx, maxima, slot);
#endif
}

DEFINE_SLICE_SUM(slice_sum, TACC, TACC, SLICE_ELEMENT)

// C[i] (=|+=) the sum of the splits' slices W[z mn + i], z = 0 .. splits - 1 in order. TRACK_MAX:
// work-groups of 256.
__kernel void gemm_sum_splits(__global const TACC* restrict W, const int splits, const uint mn,
                              __global TACC* restrict C, const int accumulate TRACK_MAX_ARGS) {
  const uint i = get_global_id(0);
  uint largest = 0;
  if (i < mn) {
    const TACC s = slice_sum(accumulate ? C[i] : (TACC)0, W, (uint)splits, mn, i);
    C[i] = s;
#if TRACK_MAX
    largest = abs(s);
#endif
  }
#if TRACK_MAX
  __local uint scratch[256];
  group_max_into(largest, scratch, 256, get_local_id(0), maxima, slot);
#endif
}

#ifdef WIDE
DEFINE_SLICE_SUM(slice_sum_wide, long, int, SLICE_ELEMENT)

// wide[i] (=|+=) the sum of the splits' int32 slices, in 64 bits.
__kernel void gemm_sum_splits_wide(__global const int* restrict W, const int splits, const uint mn,
                                   __global long* restrict wide, const int accumulate) {
  const uint i = get_global_id(0);
  if (i >= mn) return;
  wide[i] = slice_sum_wide(accumulate ? wide[i] : 0, W, (uint)splits, mn, i);
}
#endif
)CLC";

inline constexpr auto gemm_joined = join_sources(track_max_source, operand_at_source, slice_sum_source, gemm_body_source);
inline constexpr const char* gemm_source = gemm_joined.data();

}  // namespace pbnn::opencl::kernels
