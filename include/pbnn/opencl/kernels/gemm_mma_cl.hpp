#pragma once
// OpenCL C source of the int8 GEMM on NVIDIA tensor cores: the gemm kernel of gemm_cl.hpp (same
// arguments, same split-k slices, same operand orders) for char operands and int sums, each warp
// multiplying through PTX mma.sync.m16n8k32.s8 (sm_80 and later). Integer products are exact, so
// its sums equal the portable kernel's bit for bit. Built only for NVIDIA devices, and only used
// where the build succeeds (gemm.hpp); the portable kernel stays the reference.
// Build options: A_KMAJOR / B_KMAJOR as gemm_cl.hpp; BM, BN: the work-group's tile of C (multiples of
// 32; each warp computes a 32 x 32 block); A_WORDS / B_WORDS: 1 where the host has checked that the
// operand can be read as aligned 4-byte words (see gemm.hpp), else byte by byte.
namespace pbnn::opencl::kernels {

inline constexpr const char* gemm_mma_source = R"CLC(
#define BK 64                   // k per local tile: two mma steps of 32
#define BKW ((BK + 16) / 4)     // words per local row; the 16-byte pad spreads a fragment over all banks
#define WARPS_N (BN / 32)
#define THREADS ((BM / 32) * (BN / 32) * 32)

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

// D = A B + C for one 16 x 8 block, k = 32: a holds 4 words of A's fragment, b 2 of B's, c 4 sums.
#define MMA_S8(c, a, b)                                                                              \
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "      \
               "{%8,%9}, {%10,%11,%12,%13};"                                                         \
               : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])                                      \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(c[0]),         \
                 "r"(c[1]), "r"(c[2]), "r"(c[3]))

// Copies the rows x BK tile of an operand at (row0, p0) into local memory, stored [row][k] with k
// contiguous (the fragments' order) and zeros outside [0, rows_total) x [p0, kend).
#define LOAD_TILE(L, AT, KMAJOR, WORDS, ROWS, row0, rows_total, ld, G)                                \
  if (WORDS && !KMAJOR) {                                                                            \
    __global const int* Gw = (__global const int*)G;                                                 \
    for (int l = tid; l < ROWS * (BK / 4); l += THREADS) {                                           \
      const int r = l / (BK / 4), w = l % (BK / 4), gi = row0 + r, gp = p0 + 4 * w;                  \
      L[r * BKW + w] = (gi < rows_total && gp < kend) ? Gw[((size_t)gi * ld + gp) / 4] : 0;          \
    }                                                                                                \
  } else if (WORDS) {                                                                                \
    __global const int* Gw = (__global const int*)G;                                                 \
    __local char* L8 = (__local char*)L;                                                             \
    for (int l = tid; l < (ROWS / 4) * BK; l += THREADS) {                                           \
      const int r = 4 * (l % (ROWS / 4)), p = l / (ROWS / 4), gi = row0 + r, gp = p0 + p;            \
      const int word = (gi < rows_total && gp < kend) ? Gw[((size_t)gp * rows_total + gi) / 4] : 0;  \
      for (int e = 0; e < 4; ++e) L8[(r + e) * (4 * BKW) + p] = (char)(word >> (8 * e));             \
    }                                                                                                \
  } else {                                                                                           \
    __local char* L8 = (__local char*)L;                                                             \
    for (int l = tid; l < ROWS * BK; l += THREADS) {                                                 \
      const int r = KMAJOR ? l % ROWS : l / BK, p = KMAJOR ? l / ROWS : l % BK;                       \
      const int gi = row0 + r, gp = p0 + p;                                                          \
      L8[r * (4 * BKW) + p] = (gi < rows_total && gp < kend) ? AT(gi, gp) : (char)0;                 \
    }                                                                                                \
  }

__kernel __attribute__((reqd_work_group_size(THREADS, 1, 1)))
void gemm_mma(const int m, const int n, const int k, __global const char* restrict A, __global const char* restrict B,
              __global int* restrict C, const int accumulate, const int kchunk, const int kbase, const int kstop) {
  const int tid = get_local_id(0), lane = tid % 32, warp = tid / 32;
  const int group = lane / 4, in_group = lane % 4;  // the fragment coordinates of PTX's mma layouts
  const int wrow = (warp / WARPS_N) * 32, wcol = (warp % WARPS_N) * 32;
  const int col0 = get_group_id(0) * BN, row0 = get_group_id(1) * BM;
  const int kbegin = kbase + get_group_id(2) * kchunk, kend = min(kstop, kbegin + kchunk);
  C += (size_t)get_group_id(2) * m * n;
  __local int As[BM * BKW];
  __local int Bs[BN * BKW];
  int acc[2][4][4];  // the warp's 2 x 4 blocks of 16 x 8, in registers
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;

  for (int p0 = kbegin; p0 < kend; p0 += BK) {
    LOAD_TILE(As, A_AT, A_KMAJOR, A_WORDS, BM, row0, m, k, A)
    LOAD_TILE(Bs, B_AT, B_KMAJOR, B_WORDS, BN, col0, n, k, B)
    barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
    for (int ks = 0; ks < BK / 4; ks += 8) {  // word offset of each k-step of 32 bytes
      int a[2][4], b[4][2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int r = (wrow + 16 * i + group) * BKW + ks + in_group;
        a[i][0] = As[r];
        a[i][1] = As[r + 8 * BKW];
        a[i][2] = As[r + 4];
        a[i][3] = As[r + 8 * BKW + 4];
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int c = (wcol + 8 * j + group) * BKW + ks + in_group;
        b[j][0] = Bs[c];
        b[j][1] = Bs[c + 4];
      }
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) MMA_S8(acc[i][j], a[i], b[j]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = row0 + wrow + 16 * i + group + (e >= 2 ? 8 : 0), c = col0 + wcol + 8 * j + 2 * in_group + (e & 1);
        if (r < m && c < n) {
          __global int* out = C + (size_t)r * n + c;
          *out = accumulate ? *out + acc[i][j][e] : acc[i][j][e];
        }
      }
}
)CLC";

}  // namespace pbnn::opencl::kernels
