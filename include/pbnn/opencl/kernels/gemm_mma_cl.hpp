#pragma once
// OpenCL C source of the GEMM on NVIDIA tensor cores: the gemm kernel of gemm_cl.hpp (same arguments,
// same split-k slices, same operand orders), each warp multiplying through PTX mma.sync (sm_80 and
// later). Built only for NVIDIA devices, and only used where the build succeeds (gemm.hpp); the
// portable kernel stays the reference.
//  - char operands, int sums: mma.m16n8k32.s8. Integer products are exact, so the sums equal the
//    portable kernel's bit for bit.
//  - float operands and sums (-DFLOAT_OPERANDS): mma.m16n8k8.tf32 three times per block ("3xTF32"):
//    each operand x = big + small, big = x with its 13 lowest mantissa bits cleared (a TF32 value),
//    small = x - big exactly, and A B ~ As Bb + Ab Bs + Ab Bb. The dropped As Bs and the TF32
//    truncation of the small parts leave about 2^-21 of each product, near fp32's own rounding.
// Build options: A_KMAJOR / B_KMAJOR as gemm_cl.hpp; BM x BN: the work-group's tile of C, WM x WN
// each warp's block of it (32 or 64; BM, BN >= 32), KW: 4-byte words of k per local tile (16 or 32),
// STAGES: local tiles (1: store, barrier, multiply, barrier; 2: one barrier per tile);
// A_WORDS / B_WORDS: 1 where the host has checked that the operand can be read in aligned 4-byte
// words (always for float), A_ALIGN16 / B_ALIGN16 (row-major operands) in 16-byte ones (see
// gemm.hpp), else element by element. A_IMAGE (row-major A) / B_IMAGE (k-major B): the operand is
// the im2col of a channels-last image batch (conv.hpp), read in place: rows of A / k of B are output
// pixels, k of A / rows of B (kh, kw, c) entries; geometry IMG_H, IMG_W, IMG_C, OUT_H, OUT_W, KSIZE,
// STRIDE, PAD, and IMG_C a multiple of the channels in 16 bytes (the host's check), so that a slot of
// a row-major tile, or a 4-row word of a k-major one, lies within one kernel tap. B_FLIPPED (k-major
// B): a convolution's weights read as the flipped kernel of its dx product (W_COUT, W_CIN).
// TRACK_MAX (char operands): as gemm_cl.hpp's.
#include "pbnn/opencl/kernels/gemm_cl.hpp"
#include "pbnn/opencl/kernels/join.hpp"

namespace pbnn::opencl::kernels {

inline constexpr char gemm_mma_body_source[] = R"CLC(
#if FLOAT_OPERANDS
#define TA float
#define TACC float
#define KPW 1                   // k per 4-byte word of a local tile
#else
#define TA char
#define TACC int
#define KPW 4
#endif
#define BK (KW * KPW)           // k per local tile: KW / 8 mma steps
#define BKW (KW + 4)            // words per local row; the 4-word pad spreads a fragment over all banks
#define FM (WM / 16)            // the warp's mma blocks of 16 x 8: FM x FN
#define FN (WN / 8)
#define WARPS_N (BN / WN)
#define THREADS ((BM / WM) * (BN / WN) * 32)

// D = A B + C for one 16 x 8 block over 8 words of k: a holds 4 words of A's fragment, b 2 of B's,
// c 4 sums.
#if FLOAT_OPERANDS
#define MMA(c, a, b)                                                                                 \
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "  \
               "{%8,%9}, {%10,%11,%12,%13};"                                                         \
               : "=f"(c[0]), "=f"(c[1]), "=f"(c[2]), "=f"(c[3])                                      \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),         \
                 "f"(c[1]), "f"(c[2]), "f"(c[3]))
#else
#define MMA(c, a, b)                                                                                 \
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "      \
               "{%8,%9}, {%10,%11,%12,%13};"                                                         \
               : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])                                      \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(c[0]),         \
                 "r"(c[1]), "r"(c[2]), "r"(c[3]))
#endif
#define TF32_BIG(x) ((x) & (int)0xffffe000)
#define TF32_SMALL(x) as_int(as_float(x) - as_float(TF32_BIG(x)))

// Operand tiles travel from global to local memory in 16-byte slots, each work-item holding its
// slots in registers while the warps multiply the previous tile (STAGES 1: one local tile, so the
// registers wait for the next barrier; 2: they go to the other tile at once). A row-major slot is 4
// words of one row (16 char or 4 float k); a k-major slot is one word column of 4 rows: for float
// one 4-row vector at one k, for char 4 words along the rows at 4 consecutive k, transposed into 4
// row words before the store.
// Local tiles of row-major operands are [row][k word], of k-major ones [k word][row] (KROW below);
// a fragment reads the words of 4 k of one row either way. Outside [0, rows) x [p0, kend): 0.
#define SLOTS(ROWS) ((ROWS) * KW / 4 / THREADS)

#if FLOAT_OPERANDS
#define ROW_WORD(AT, WORDS, gi, gp, rows_total) \
  ((gi) < rows_total && (gp) < kend ? as_int(AT(gi, gp)) : 0)
#define COLUMN_WORDS(AT, WORDS, gi, gp, rows_total, G, w)                                           \
  if (WORDS) {                                                                                     \
    const int4 v = (gi < rows_total && gp < kend) ? as_int4(vload4(0, G + (size_t)gp * rows_total + gi)) : (int4)0; \
    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;                                                \
  } else {                                                                                         \
    for (int e = 0; e < 4; ++e) w[e] = (gi + e < rows_total && gp < kend) ? as_int(AT(gi + e, gp)) : 0; \
  }
#define ROW_WORDS(v) (v)
#else
#define ROW_WORD(AT, WORDS, gi, gp, rows_total) row_word_char(gi < rows_total, gp, kend, WORDS, &AT(gi, 0))
#define COLUMN_WORDS(AT, WORDS, gi, gp, rows_total, G, w)                                           \
  for (int q = 0; q < 4; ++q) {                                                                    \
    if (WORDS) {                                                                                   \
      w[q] = (gi < rows_total && gp + q < kend) ? *(__global const int*)(G + (size_t)(gp + q) * rows_total + gi) : 0; \
    } else {                                                                                       \
      uchar4 b = (uchar4)0;                                                                        \
      if (gp + q < kend) {                                                                         \
        if (gi + 0 < rows_total) b.x = (uchar)AT(gi + 0, gp + q);                                  \
        if (gi + 1 < rows_total) b.y = (uchar)AT(gi + 1, gp + q);                                  \
        if (gi + 2 < rows_total) b.z = (uchar)AT(gi + 2, gp + q);                                  \
        if (gi + 3 < rows_total) b.w = (uchar)AT(gi + 3, gp + q);                                  \
      }                                                                                            \
      w[q] = as_int(b);                                                                            \
    }                                                                                              \
  }
// A k-major slot's 4 words (4 rows at each of 4 k) as its 4 rows' words (4 k each): a 4 x 4 byte transpose.
int4 row_words(const int4 v) {
  const uchar4 k0 = as_uchar4(v.x), k1 = as_uchar4(v.y), k2 = as_uchar4(v.z), k3 = as_uchar4(v.w);
  return (int4)(as_int((uchar4)(k0.x, k1.x, k2.x, k3.x)), as_int((uchar4)(k0.y, k1.y, k2.y, k3.y)),
                as_int((uchar4)(k0.z, k1.z, k2.z, k3.z)), as_int((uchar4)(k0.w, k1.w, k2.w, k3.w)));
}
#define ROW_WORDS(v) row_words(v)

// The word of k gp .. gp + 3 of a row (row points at its k = 0), zeros outside the row or kend.
inline int row_word_char(const bool row_inside, const int gp, const int kend, const int words, __global const char* row) {
  if (!row_inside) return 0;
  if (words) return gp < kend ? *(__global const int*)(row + gp) : 0;
  uchar4 b = (uchar4)0;
  if (gp + 0 < kend) b.x = (uchar)row[gp + 0];
  if (gp + 1 < kend) b.y = (uchar)row[gp + 1];
  if (gp + 2 < kend) b.z = (uchar)row[gp + 2];
  if (gp + 3 < kend) b.w = (uchar)row[gp + 3];
  return as_int(b);
}
#endif

#ifndef A_IMAGE
#define A_IMAGE 0
#endif
#ifndef B_IMAGE
#define B_IMAGE 0
#endif
#ifndef B_FLIPPED
#define B_FLIPPED 0
#endif
#define B_GATHERED (B_IMAGE || B_FLIPPED)
#if A_IMAGE || B_IMAGE
// Where im2col's entry (pixel, patch) lies in the image: its offset, or -1 in the padding.
int image_offset(const int pixel, const int patch) {
  const int ow = pixel % OUT_W, rest = pixel / OUT_W, oh = rest % OUT_H, img = rest / OUT_H;
  const int c = patch % IMG_C, tap = patch / IMG_C, kw = tap % KSIZE, kh = tap / KSIZE;
  const int ih = oh * STRIDE - PAD + kh, iw = ow * STRIDE - PAD + kw;
  return ih >= 0 && ih < IMG_H && iw >= 0 && iw < IMG_W ? ((img * IMG_H + ih) * IMG_W + iw) * IMG_C + c : -1;
}
// The row-major image operand's 16-byte slot of row (pixel) gi at k gp.
#define IMAGE_ROW_SLOT(slot, gi, gp, rows_total, G)                                               \
  {                                                                                                \
    const int off = gi < rows_total && gp < kend ? image_offset(gi, gp) : -1;                      \
    slot = off >= 0 ? *(__global const int4*)(G + off) : (int4)0;                                  \
  }
#else
#define IMAGE_ROW_SLOT(slot, gi, gp, rows_total, G)
#endif

#if B_FLIPPED
// dX = dY W of a stride-1 convolution computed as a convolution of dY (A_IMAGE: dY's im2col with
// padding KSIZE - 1 - pad, taps (kh, kw) standing for the kernel's (KSIZE - 1 - kh, KSIZE - 1 - kw)):
// B's row c at k = (tap, co) is the weight W[co, KSIZE KSIZE - 1 - tap, c] of W [W_COUT x KSIZE KSIZE
// W_CIN], read in place.
int flipped_weight_offset(const int k, const int row) {
  const int co = k % W_COUT, tap = k / W_COUT;
  return (co * (KSIZE * KSIZE) + (KSIZE * KSIZE - 1 - tap)) * W_CIN + row;
}
#define GATHER_OFFSET(k, row) flipped_weight_offset(k, row)
#else
#define GATHER_OFFSET(k, row) image_offset(k, row)
#endif

#if B_GATHERED
// The gathered k-major operand's words as COLUMN_WORDS reads them from the matrix it stands for: rows
// gi .. gi + 3 (consecutive channels) at k = gp (float), or at k = gp .. gp + 3 (char).
#if FLOAT_OPERANDS
#define GATHERED_COLUMN_WORDS(gi, gp, rows_total, G, w)                                           \
  {                                                                                                \
    const int off = gi < rows_total && gp < kend ? GATHER_OFFSET(gp, gi) : -1;                     \
    const int4 v = off >= 0 ? as_int4(vload4(0, G + off)) : (int4)0;                              \
    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;                                                \
  }
#else
#define GATHERED_COLUMN_WORDS(gi, gp, rows_total, G, w)                                           \
  for (int q = 0; q < 4; ++q) {                                                                    \
    const int off = gi < rows_total && gp + q < kend ? GATHER_OFFSET(gp + q, gi) : -1;             \
    w[q] = off >= 0 ? *(__global const int*)(G + off) : 0;                                         \
  }
#endif
#else
#define GATHERED_COLUMN_WORDS(gi, gp, rows_total, G, w)
#endif

#define FETCH_TILE(R, P0, AT, KMAJOR, WORDS, ALIGN16, IMAGE, ROWS, row0, rows_total, ld, G)          \
  for (int s = 0; s < SLOTS(ROWS); ++s) {                                                          \
    const int l = tid + s * THREADS;                                                               \
    if (IMAGE && !KMAJOR) {                                                                        \
      const int r = l / (KW / 4), gi = row0 + r, gp = P0 + 4 * KPW * (l % (KW / 4));               \
      IMAGE_ROW_SLOT(R[s], gi, gp, rows_total, G)                                                  \
    } else if (IMAGE) {                                                                            \
      const int rb = l % 8 + 8 * (l / (8 * KW)), pb = (l / 8) % KW;                                 \
      const int gi = row0 + 4 * rb, gp = P0 + KPW * pb;                                            \
      int w[4];                                                                                    \
      GATHERED_COLUMN_WORDS(gi, gp, rows_total, G, w)                                              \
      R[s] = (int4)(w[0], w[1], w[2], w[3]);                                                       \
    } else if (!KMAJOR) {                                                                          \
      const int r = l / (KW / 4), gi = row0 + r, gp = P0 + 4 * KPW * (l % (KW / 4));               \
      if (ALIGN16) {                                                                               \
        R[s] = (gi < rows_total && gp < kend) ? *(__global const int4*)(G + (size_t)gi * ld + gp) : (int4)0; \
      } else {                                                                                     \
        int w[4];                                                                                  \
        for (int q = 0; q < 4; ++q) w[q] = ROW_WORD(AT, WORDS, gi, gp + KPW * q, rows_total);       \
        R[s] = (int4)(w[0], w[1], w[2], w[3]);                                                     \
      }                                                                                            \
    } else {                                                                                       \
      /* lanes take 8 consecutive 4-row words (32 or 128 contiguous bytes) */                      \
      const int rb = l % 8 + 8 * (l / (8 * KW)), pb = (l / 8) % KW;                                 \
      const int gi = row0 + 4 * rb, gp = P0 + KPW * pb;                                            \
      int w[4];                                                                                    \
      COLUMN_WORDS(AT, WORDS, gi, gp, rows_total, G, w)                                            \
      R[s] = (int4)(w[0], w[1], w[2], w[3]);                                                       \
    }                                                                                              \
  }

// A k-major operand keeps its local tile k-major, [k word][row] with KROW(ROWS) words per k word (8
// more than the rows: a fragment's 8 rows x 4 k words then fall in 32 different banks): a slot (4 rows
// at one k word, ROW_WORDS) is one 16-byte store, where a [row][k] tile would take four conflicting ones.
#define KROW(ROWS) ((ROWS) + 8)
#if A_KMAJOR
#define A_TILE_WORDS (KW * KROW(BM))
#else
#define A_TILE_WORDS (BM * BKW)
#endif
#if B_KMAJOR
#define B_TILE_WORDS (KW * KROW(BN))
#else
#define B_TILE_WORDS (BN * BKW)
#endif

#define STORE_TILE(L, R, KMAJOR, ROWS)                                                              \
  for (int s = 0; s < SLOTS(ROWS); ++s) {                                                          \
    const int l = tid + s * THREADS;                                                               \
    if (!KMAJOR) {                                                                                 \
      *(__local int4*)(L + (l / (KW / 4)) * BKW + 4 * (l % (KW / 4))) = R[s];                       \
    } else {                                                                                       \
      const int rb = l % 8 + 8 * (l / (8 * KW)), pb = (l / 8) % KW;                                 \
      *(__local int4*)(L + pb * KROW(ROWS) + 4 * rb) = ROW_WORDS(R[s]);                            \
    }                                                                                              \
  }

__kernel __attribute__((reqd_work_group_size(THREADS, 1, 1)))
void gemm_mma(const int m, const int n, const int k, __global const TA* restrict A, __global const TA* restrict B,
              __global TACC* restrict C, const int accumulate, const int kchunk, const int kbase, const int kstop
              TRACK_MAX_ARGS) {
  const int tid = get_local_id(0), lane = tid % 32, warp = tid / 32;
  const int group = lane / 4, in_group = lane % 4;  // the fragment coordinates of PTX's mma layouts
  const int wrow = (warp / WARPS_N) * WM, wcol = (warp % WARPS_N) * WN;
  const int col0 = get_group_id(0) * BN, row0 = get_group_id(1) * BM;
  const int kbegin = kbase + get_group_id(2) * kchunk, kend = min(kstop, kbegin + kchunk);
  C += (size_t)get_group_id(2) * m * n;
  __local int As[STAGES * A_TILE_WORDS] __attribute__((aligned(16)));
  __local int Bs[STAGES * B_TILE_WORDS] __attribute__((aligned(16)));
  TACC acc[FM][FN][4];  // the warp's blocks of 16 x 8, in registers
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;

  int4 a_regs[SLOTS(BM)], b_regs[SLOTS(BN)];
  int p0 = kbegin, stage = 0;
  if (p0 < kend) {
    FETCH_TILE(a_regs, p0, A_AT, A_KMAJOR, A_WORDS, A_ALIGN16, A_IMAGE, BM, row0, m, k, A)
    FETCH_TILE(b_regs, p0, B_AT, B_KMAJOR, B_WORDS, B_ALIGN16, B_GATHERED, BN, col0, n, k, B)
#if STAGES == 2
    STORE_TILE(As, a_regs, A_KMAJOR, BM)
    STORE_TILE(Bs, b_regs, B_KMAJOR, BN)
    barrier(CLK_LOCAL_MEM_FENCE);
#endif
  }
  for (; p0 < kend; p0 += BK) {
#if STAGES == 1
    __local const int* At = As;
    __local const int* Bt = Bs;
    STORE_TILE(As, a_regs, A_KMAJOR, BM)
    STORE_TILE(Bs, b_regs, B_KMAJOR, BN)
    barrier(CLK_LOCAL_MEM_FENCE);
#else  // two local tiles: the next one is stored while others may still read this one
    __local const int* At = As + stage * A_TILE_WORDS;
    __local const int* Bt = Bs + stage * B_TILE_WORDS;
#endif
    const bool more = p0 + BK < kend;
    if (more) {  // the next tile's loads are in flight while this one is multiplied
      FETCH_TILE(a_regs, p0 + BK, A_AT, A_KMAJOR, A_WORDS, A_ALIGN16, A_IMAGE, BM, row0, m, k, A)
      FETCH_TILE(b_regs, p0 + BK, B_AT, B_KMAJOR, B_WORDS, B_ALIGN16, B_GATHERED, BN, col0, n, k, B)
    }
#pragma unroll
    for (int ks = 0; ks < KW; ks += 8) {  // word offset of each mma step
      int a[FM][4], b[FN][2];
#pragma unroll
      for (int i = 0; i < FM; ++i) {
#if A_KMAJOR
        const int r = (ks + in_group) * KROW(BM) + wrow + 16 * i + group;
        a[i][0] = At[r];
        a[i][1] = At[r + 8];
        a[i][2] = At[r + 4 * KROW(BM)];
        a[i][3] = At[r + 4 * KROW(BM) + 8];
#else
        const int r = (wrow + 16 * i + group) * BKW + ks + in_group;
        a[i][0] = At[r];
        a[i][1] = At[r + 8 * BKW];
        a[i][2] = At[r + 4];
        a[i][3] = At[r + 8 * BKW + 4];
#endif
      }
#pragma unroll
      for (int j = 0; j < FN; ++j) {
#if B_KMAJOR
        const int c = (ks + in_group) * KROW(BN) + wcol + 8 * j + group;
        b[j][0] = Bt[c];
        b[j][1] = Bt[c + 4 * KROW(BN)];
#else
        const int c = (wcol + 8 * j + group) * BKW + ks + in_group;
        b[j][0] = Bt[c];
        b[j][1] = Bt[c + 4];
#endif
      }
#if FLOAT_OPERANDS
      int a_small[FM][4], b_small[FN][2];
#pragma unroll
      for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) a_small[i][e] = TF32_SMALL(a[i][e]), a[i][e] = TF32_BIG(a[i][e]);
#pragma unroll
      for (int j = 0; j < FN; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) b_small[j][e] = TF32_SMALL(b[j][e]), b[j][e] = TF32_BIG(b[j][e]);
#pragma unroll
      for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int j = 0; j < FN; ++j) {
          MMA(acc[i][j], a_small[i], b[j]);
          MMA(acc[i][j], a[i], b_small[j]);
          MMA(acc[i][j], a[i], b[j]);
        }
#else
#pragma unroll
      for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int j = 0; j < FN; ++j) MMA(acc[i][j], a[i], b[j]);
#endif
    }
#if STAGES == 2
    stage ^= 1;
    if (more) {
      __local int* An = As + stage * A_TILE_WORDS;
      __local int* Bn = Bs + stage * B_TILE_WORDS;
      STORE_TILE(An, a_regs, A_KMAJOR, BM)
      STORE_TILE(Bn, b_regs, B_KMAJOR, BN)
    }
#endif
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  uint largest = 0;  // of the sums written, where TRACK_MAX
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = row0 + wrow + 16 * i + group + (e >= 2 ? 8 : 0), c = col0 + wcol + 8 * j + 2 * in_group + (e & 1);
        if (r < m && c < n) {
          __global TACC* out = C + (size_t)r * n + c;
          const TACC sum = accumulate ? *out + acc[i][j][e] : acc[i][j][e];
          *out = sum;
#if TRACK_MAX && !FLOAT_OPERANDS
          largest = max(largest, (uint)abs(sum));
#endif
        }
      }
#if TRACK_MAX && !FLOAT_OPERANDS
  group_max_into(largest, (__local uint*)As, THREADS, tid, maxima, slot);  // As: at least THREADS words
#endif
}
)CLC";

inline constexpr auto gemm_mma_joined = join_sources(track_max_source, operand_at_source, gemm_mma_body_source);
inline constexpr const char* gemm_mma_source = gemm_mma_joined.data();

}  // namespace pbnn::opencl::kernels
