#pragma once
// OpenCL C source of the int8 GEMM on NVIDIA tensor cores: the gemm kernel of gemm_cl.hpp (same
// arguments, same split-k slices, same operand orders) for char operands and int sums, each warp
// multiplying through PTX mma.sync.m16n8k32.s8 (sm_80 and later). Integer products are exact, so
// its sums equal the portable kernel's bit for bit. Built only for NVIDIA devices, and only used
// where the build succeeds (gemm.hpp); the portable kernel stays the reference.
// Build options: A_KMAJOR / B_KMAJOR as gemm_cl.hpp; BM = BN: the work-group's tile of C (32, 64 or
// 128; each warp computes a 32 x 32 block); A_WORDS / B_WORDS: 1 where the host has checked that the
// operand can be read in aligned 4-byte words, A_ALIGN16 / B_ALIGN16 (row-major operands) in 16-byte
// ones (see gemm.hpp), else byte by byte.
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

// Operand tiles travel from global to local memory in 16-byte slots, each work-item holding its
// slots in registers while the warps multiply the previous tile (one local buffer, no second
// barrier pair). A row-major slot is 16 consecutive k of one row; a k-major slot is 4 rows x 4 k,
// read as 4 words along the rows (coalesced) and transposed into 4 row words before the store.
// Local tiles are [row][k] with k contiguous, the fragments' order. Outside [0, rows) x [p0, kend): 0.
#define SLOTS(ROWS) ((ROWS) * (BK / 16) / THREADS)

#define FETCH_TILE(R, P0, AT, KMAJOR, WORDS, ALIGN16, ROWS, row0, rows_total, ld, G)                 \
  for (int s = 0; s < SLOTS(ROWS); ++s) {                                                          \
    const int l = tid + s * THREADS;                                                               \
    if (!KMAJOR) {                                                                                 \
      const int r = l / (BK / 16), gi = row0 + r, gp = P0 + 16 * (l % (BK / 16));                  \
      if (ALIGN16) {                                                                               \
        R[s] = (gi < rows_total && gp < kend) ? *(__global const int4*)(G + (size_t)gi * ld + gp) : (int4)0; \
      } else {                                                                                     \
        int w[4];                                                                                  \
        for (int q = 0; q < 4; ++q) {                                                              \
          if (WORDS) {                                                                             \
            w[q] = (gi < rows_total && gp + 4 * q < kend) ? *(__global const int*)(G + (size_t)gi * ld + gp + 4 * q) : 0; \
          } else {                                                                                 \
            uchar4 b = (uchar4)0;                                                                  \
            if (gi < rows_total) {                                                                 \
              if (gp + 4 * q + 0 < kend) b.x = (uchar)AT(gi, gp + 4 * q + 0);                      \
              if (gp + 4 * q + 1 < kend) b.y = (uchar)AT(gi, gp + 4 * q + 1);                      \
              if (gp + 4 * q + 2 < kend) b.z = (uchar)AT(gi, gp + 4 * q + 2);                      \
              if (gp + 4 * q + 3 < kend) b.w = (uchar)AT(gi, gp + 4 * q + 3);                      \
            }                                                                                      \
            w[q] = as_int(b);                                                                      \
          }                                                                                        \
        }                                                                                          \
        R[s] = (int4)(w[0], w[1], w[2], w[3]);                                                     \
      }                                                                                            \
    } else {                                                                                       \
      /* lanes take 8 consecutive row words (one 32-byte sector) at 4 k each */                     \
      const int rb = l % 8 + 8 * (l / (8 * (BK / 4))), pb = (l / 8) % (BK / 4);                     \
      const int gi = row0 + 4 * rb, gp = P0 + 4 * pb;                                              \
      int w[4];                                                                                    \
      for (int q = 0; q < 4; ++q) {                                                                \
        if (WORDS) {                                                                               \
          w[q] = (gi < rows_total && gp + q < kend) ? *(__global const int*)(G + (size_t)(gp + q) * rows_total + gi) : 0; \
        } else {                                                                                   \
          uchar4 b = (uchar4)0;                                                                    \
          if (gp + q < kend) {                                                                     \
            if (gi + 0 < rows_total) b.x = (uchar)AT(gi + 0, gp + q);                              \
            if (gi + 1 < rows_total) b.y = (uchar)AT(gi + 1, gp + q);                              \
            if (gi + 2 < rows_total) b.z = (uchar)AT(gi + 2, gp + q);                              \
            if (gi + 3 < rows_total) b.w = (uchar)AT(gi + 3, gp + q);                              \
          }                                                                                        \
          w[q] = as_int(b);                                                                        \
        }                                                                                          \
      }                                                                                            \
      R[s] = (int4)(w[0], w[1], w[2], w[3]);                                                       \
    }                                                                                              \
  }

#define STORE_TILE(L, R, KMAJOR, ROWS)                                                              \
  for (int s = 0; s < SLOTS(ROWS); ++s) {                                                          \
    const int l = tid + s * THREADS;                                                               \
    if (!KMAJOR) {                                                                                 \
      *(__local int4*)(L + (l / (BK / 16)) * BKW + 4 * (l % (BK / 16))) = R[s];                     \
    } else {                                                                                       \
      const int rb = l % 8 + 8 * (l / (8 * (BK / 4))), pb = (l / 8) % (BK / 4);                     \
      const uchar4 k0 = as_uchar4(R[s].x), k1 = as_uchar4(R[s].y), k2 = as_uchar4(R[s].z), k3 = as_uchar4(R[s].w); \
      L[(4 * rb + 0) * BKW + pb] = as_int((uchar4)(k0.x, k1.x, k2.x, k3.x));                       \
      L[(4 * rb + 1) * BKW + pb] = as_int((uchar4)(k0.y, k1.y, k2.y, k3.y));                       \
      L[(4 * rb + 2) * BKW + pb] = as_int((uchar4)(k0.z, k1.z, k2.z, k3.z));                       \
      L[(4 * rb + 3) * BKW + pb] = as_int((uchar4)(k0.w, k1.w, k2.w, k3.w));                       \
    }                                                                                              \
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
  __local int As[BM * BKW] __attribute__((aligned(16)));
  __local int Bs[BN * BKW] __attribute__((aligned(16)));
  int acc[2][4][4];  // the warp's 2 x 4 blocks of 16 x 8, in registers
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;

  int4 a_regs[SLOTS(BM)], b_regs[SLOTS(BN)];
  int p0 = kbegin;
  if (p0 < kend) {
    FETCH_TILE(a_regs, p0, A_AT, A_KMAJOR, A_WORDS, A_ALIGN16, BM, row0, m, k, A)
    FETCH_TILE(b_regs, p0, B_AT, B_KMAJOR, B_WORDS, B_ALIGN16, BN, col0, n, k, B)
  }
  for (; p0 < kend; p0 += BK) {
    STORE_TILE(As, a_regs, A_KMAJOR, BM)
    STORE_TILE(Bs, b_regs, B_KMAJOR, BN)
    barrier(CLK_LOCAL_MEM_FENCE);
    if (p0 + BK < kend) {  // the next tile's loads are in flight while this one is multiplied
      FETCH_TILE(a_regs, p0 + BK, A_AT, A_KMAJOR, A_WORDS, A_ALIGN16, BM, row0, m, k, A)
      FETCH_TILE(b_regs, p0 + BK, B_AT, B_KMAJOR, B_WORDS, B_ALIGN16, BN, col0, n, k, B)
    }
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
