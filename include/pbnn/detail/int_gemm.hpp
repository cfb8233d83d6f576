#pragma once
// Integer GEMMs for the quantized layers: C (=|+=) A * B^T with int8 or int16 operands and int32
// results. Both operands are row-major with the reduction dimension k contiguous, which is how
// activations (batch x features) and weights (out x in) are stored, so no caller-side transposes.
//
// Contracts
//   int8 : operands in [-127, 127]. The result is exact for k <= 65000. With accumulate, C + A*B^T
//          is formed modulo 2^32 (like int32 wrap-around) on every path.
//   int16: operands in [-2047, 2047]. Products are summed in int32 with saturating adds: if a
//          running sum leaves the int32 range the result is clamped to INT32_MIN / INT32_MAX
//          instead of wrapping. No partial sum can overflow for k <= 512, so that is always
//          exact. (The SIMD path clamps each step like vpdpwssds, the portable path clamps the
//          exact total; they can only differ when a sum overflows and comes back into range.)
//   Whenever nothing saturates, every path returns bit-identical results.
//
// Paths (chosen at compile time)
//   AVX-512 VNNI + BW : packed-panel micro-kernels on vpdpbusd (int8) / vpdpwssds (int16), threaded
//                       with OpenMP over a 2-D grid of row/column blocks.
//   otherwise         : gemm_nt_portable, a cache-blocked loop nest that compilers auto-vectorize.
// gemm_nt_portable is always available, so tests can compare the two paths.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>

#if defined(_OPENMP)
#include <omp.h>
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define PBNN_INT_GEMM_VNNI 1
#include <immintrin.h>
#else
#define PBNN_INT_GEMM_VNNI 0
#endif

namespace pbnn::detail {

// Which implementation gemm_nt runs in this translation unit (for tests, benchmarks and logs).
inline constexpr bool int_gemm_has_simd = PBNN_INT_GEMM_VNNI != 0;
inline constexpr const char* int_gemm_path = PBNN_INT_GEMM_VNNI ? "avx512-vnni" : "portable";

namespace int_gemm_impl {

// Problems below this many multiply-adds finish in a few microseconds on one core; a parallel
// region would cost more than it saves.
inline constexpr std::size_t kParallelMacs = std::size_t{1} << 21;

inline int max_threads(std::size_t macs) noexcept {
#if defined(_OPENMP)
  if (macs < kParallelMacs || omp_in_parallel()) return 1;
  // At least kParallelMacs / 2 of work per thread, so wide machines do not drown small problems.
  const std::size_t useful = macs / (kParallelMacs / 2);
  return static_cast<int>(std::clamp<std::size_t>(useful, 1, static_cast<std::size_t>(std::max(1, omp_get_max_threads()))));
#else
  (void)macs;
  return 1;
#endif
}

inline std::int32_t clamp_i32(std::int64_t v) noexcept {
  return static_cast<std::int32_t>(std::clamp<std::int64_t>(v, std::numeric_limits<std::int32_t>::min(),
                                                            std::numeric_limits<std::int32_t>::max()));
}

// ---------------------------------------------------------------------------------------------
// Portable path: four dot products share each load of the A row, over contiguous int16 data, a
// shape GCC and Clang vectorize into pmaddwd / vpdpwssd. int8 operands are first widened to int16
// (B once per call, A per block of rows): compilers turn int8 dot products into slow widen-
// multiply-widen-add sequences, and the widening pass is cheap next to the m*n*k work.

// Chunks of 512 products cannot overflow int32 (512 * 2047^2 < 2^31); chunk sums are added in
// int64, so the totals are exact and the caller decides how to narrow them.
inline constexpr std::size_t kExactI16Chunk = 512;

inline void dot4(const std::int16_t* a, const std::int16_t* b0, const std::int16_t* b1, const std::int16_t* b2,
                 const std::int16_t* b3, std::size_t k, std::int64_t* out) noexcept {
  std::int64_t t0 = 0, t1 = 0, t2 = 0, t3 = 0;
  for (std::size_t p0 = 0; p0 < k; p0 += kExactI16Chunk) {
    const std::size_t p1 = std::min(k, p0 + kExactI16Chunk);
    std::int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (std::size_t p = p0; p < p1; ++p) {
      const std::int32_t x = a[p];
      s0 += x * b0[p];
      s1 += x * b1[p];
      s2 += x * b2[p];
      s3 += x * b3[p];
    }
    t0 += s0, t1 += s1, t2 += s2, t3 += s3;
  }
  out[0] = t0, out[1] = t1, out[2] = t2, out[3] = t3;
}

template <class T>
inline void portable_gemm(std::size_t m, std::size_t n, std::size_t k, const T* A, std::size_t lda, const T* B,
                          std::size_t ldb, std::int32_t* C, std::size_t ldc, bool accumulate) {
  if (m == 0 || n == 0) return;
  constexpr bool wide = std::is_same_v<T, std::int16_t>;
  [[maybe_unused]] const int threads = max_threads(m * n * k);
  std::unique_ptr<std::int16_t[]> b_wide;
  const std::int16_t* b16;
  std::size_t ldb16;
  if constexpr (wide) {
    b16 = B, ldb16 = ldb;
  } else {
    b_wide.reset(new std::int16_t[n * k]);
    for (std::size_t j = 0; j < n; ++j) std::copy_n(B + j * ldb, k, b_wide.get() + j * k);
    b16 = b_wide.get(), ldb16 = k;
  }
  // Blocks of B rows small enough to stay in L1 while the 16 rows of an A block pass over them:
  // each B element costs a load per multiply-add, which L2 bandwidth cannot sustain.
  const std::size_t nb = std::max<std::size_t>(4, (std::size_t{24} << 10) / std::max<std::size_t>(1, 2 * k) / 4 * 4);
  constexpr std::size_t row_block = 16;
  const std::size_t nblocks = (m + row_block - 1) / row_block;
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
  {
    std::unique_ptr<std::int16_t[]> a_wide(wide ? nullptr : new std::int16_t[row_block * k]);
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
    for (std::size_t blk = 0; blk < nblocks; ++blk) {
      const std::size_t i0 = blk * row_block, i1 = std::min(m, i0 + row_block);
      const std::int16_t* a16 = nullptr;
      std::size_t lda16 = lda;
      if constexpr (wide) {
        a16 = A + i0 * lda;
      } else {
        for (std::size_t i = i0; i < i1; ++i) std::copy_n(A + i * lda, k, a_wide.get() + (i - i0) * k);
        a16 = a_wide.get(), lda16 = k;
      }
      for (std::size_t j0 = 0; j0 < n; j0 += nb) {
        const std::size_t j1 = std::min(n, j0 + nb);
        for (std::size_t i = i0; i < i1; ++i) {
          std::int32_t* c = C + i * ldc;
          for (std::size_t j = j0; j < j1; j += 4) {
            const std::size_t cnt = std::min<std::size_t>(4, j1 - j);
            // Columns past the end repeat the last valid one; their results are dropped.
            const std::int16_t* b[4];
            for (std::size_t q = 0; q < 4; ++q) b[q] = b16 + (j + std::min(q, cnt - 1)) * ldb16;
            std::int64_t s[4];
            dot4(a16 + (i - i0) * lda16, b[0], b[1], b[2], b[3], k, s);
            for (std::size_t q = 0; q < cnt; ++q) {
              if constexpr (wide)
                c[j + q] = clamp_i32((accumulate ? c[j + q] : 0) + s[q]);
              else  // exact in int32; the unsigned add wraps like the SIMD path when accumulating
                c[j + q] = static_cast<std::int32_t>((accumulate ? static_cast<std::uint32_t>(c[j + q]) : 0u) +
                                                     static_cast<std::uint32_t>(s[q]));
            }
          }
        }
      }
    }
  }
}

#if PBNN_INT_GEMM_VNNI
// ---------------------------------------------------------------------------------------------
// AVX-512 VNNI path.
//
// B is packed into strips of 16 columns: strip[g][c] is one 32-bit word holding the 4 int8 (or 2
// int16) values B[c, 4g..4g+3] (B[c, 2g..2g+1]), zero-padded past k and past n. One zmm load thus
// gives 16 columns x one k-group, and a 32-bit broadcast of A[i, group g] multiplies against it:
// vpdpbusd / vpdpwssds add the group's dot product into each int32 lane. A is read in place.
//
// vpdpbusd multiplies unsigned by signed bytes, so packed B is stored as B + 128 (xor 0x80) and
// each row of C starts from -128 * sum_p A[i,p]. Everything wraps mod 2^32 and the true result
// fits in int32, so this is exact. Padding bytes are 0 (not 0x80) and contribute nothing.

// GCC 12's _mm512_undefined_* trips -Wmaybe-uninitialized once inlined (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
namespace vnni {

inline constexpr int kLanes = 16;  // int32 lanes per zmm = columns per strip
// Micro-tile: 12 rows x 2 strips = 24 accumulators (+ 2 B vectors + 1 broadcast of 32 registers).
// Two dot-product instructions issue per cycle at 5 cycles latency, so >= 10 independent
// accumulators keep both ports busy; 12 x 2 also measured as fast as 10 x 2, 8 x 3 and 6 x 4.
inline constexpr int kMR = 12;
inline constexpr int kNV = 2;
// Groups per k-block: a pair of packed strips (2 * 64 B per group) stays within L1 (speed was
// flat from 96 to 320; large k only needs blocking so that the packed strips stay cached).
inline constexpr std::size_t kMaxGroupsPerBlock = 320;
// Bytes of A (rows x k-block) we try to keep in L2 while the strips stream through L1.
inline constexpr std::size_t kABlockBytes = std::size_t{512} << 10;

// Growable 64-byte-aligned buffer, one per thread, so steady-state calls do not allocate.
struct scratch {
  std::unique_ptr<std::byte[]> raw;
  std::size_t cap = 0;
  std::byte* get(std::size_t bytes) {
    if (bytes > cap) {
      raw.reset(new std::byte[bytes + 64]);
      cap = bytes;
    }
    const auto addr = reinterpret_cast<std::uintptr_t>(raw.get());
    return raw.get() + ((64 - addr % 64) % 64);
  }
};
inline scratch& thread_scratch(int which) {
  thread_local std::array<scratch, 2> s;
  return s[static_cast<std::size_t>(which)];
}

template <class T>
inline constexpr std::size_t per_group = 4 / sizeof(T);  // k-values in one 32-bit group
template <class T>
inline constexpr bool is_i8 = std::is_same_v<T, std::int8_t>;

inline __mmask64 byte_mask(std::size_t bytes) noexcept {
  return bytes >= 64 ? ~__mmask64{0} : ((__mmask64{1} << bytes) - 1);
}

// In-place transpose of a 16x16 matrix of 32-bit words (r[i] = row i).
inline void transpose16(__m512i* r) noexcept {
  __m512i t[16];
  for (int q = 0; q < 16; q += 2) {
    t[q] = _mm512_unpacklo_epi32(r[q], r[q + 1]);
    t[q + 1] = _mm512_unpackhi_epi32(r[q], r[q + 1]);
  }
  // u[4*blk + s]: 128-bit lane L holds rows 4blk..4blk+3 of column 4L+s.
  __m512i u[16];
  for (int blk = 0; blk < 4; ++blk) {
    const __m512i* x = t + 4 * blk;
    u[4 * blk + 0] = _mm512_unpacklo_epi64(x[0], x[2]);
    u[4 * blk + 1] = _mm512_unpackhi_epi64(x[0], x[2]);
    u[4 * blk + 2] = _mm512_unpacklo_epi64(x[1], x[3]);
    u[4 * blk + 3] = _mm512_unpackhi_epi64(x[1], x[3]);
  }
  // For each s, transpose the 4x4 grid of 128-bit lanes across the four row blocks.
  for (int s = 0; s < 4; ++s) {
    const __m512i x0 = _mm512_shuffle_i32x4(u[s], u[4 + s], 0x44);
    const __m512i x1 = _mm512_shuffle_i32x4(u[s], u[4 + s], 0xEE);
    const __m512i x2 = _mm512_shuffle_i32x4(u[8 + s], u[12 + s], 0x44);
    const __m512i x3 = _mm512_shuffle_i32x4(u[8 + s], u[12 + s], 0xEE);
    r[s] = _mm512_shuffle_i32x4(x0, x2, 0x88);
    r[4 + s] = _mm512_shuffle_i32x4(x0, x2, 0xDD);
    r[8 + s] = _mm512_shuffle_i32x4(x1, x3, 0x88);
    r[12 + s] = _mm512_shuffle_i32x4(x1, x3, 0xDD);
  }
}

// Packs B rows [0, rows) (rows <= 16; missing rows are zero) over kc values into one strip of
// ceil(kc / per_group) groups, 16 groups (64 bytes of each row) at a time.
template <class T>
inline void pack_strip(const T* B, std::size_t ldb, int rows, std::size_t kc, std::uint32_t* out) noexcept {
  const std::size_t ng = (kc + per_group<T> - 1) / per_group<T>;
  const std::size_t bytes = kc * sizeof(T);
  const auto* base = reinterpret_cast<const char*>(B);
  const std::size_t row_bytes = ldb * sizeof(T);
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  std::size_t g = 0;
  if (rows == 16) {
    // Full blocks: 128-bit loads inserted into lanes do half of the transpose, so only the
    // in-lane 4x4 word transposes remain for the shuffle port (2x fewer p5 shuffles than
    // transpose16, which is what bounds packing).
    for (; (g + 16) * 4 <= bytes; g += 16) {
      const char* src = base + g * 4;
      for (int l = 0; l < 4; ++l) {  // 16-byte chunk l of each row = groups g+4l .. g+4l+3
        __m512i x[4];
        for (int j = 0; j < 4; ++j) {  // x[j] lane q = chunk l of row j + 4q
          const char* p = src + static_cast<std::size_t>(j) * row_bytes + 16 * l;
          __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
          v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 4 * row_bytes)), 1);
          v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8 * row_bytes)), 2);
          v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 12 * row_bytes)), 3);
          if constexpr (is_i8<T>) v = _mm512_xor_si512(v, bias);
          x[j] = v;
        }
        const __m512i t0 = _mm512_unpacklo_epi32(x[0], x[1]), t1 = _mm512_unpackhi_epi32(x[0], x[1]);
        const __m512i t2 = _mm512_unpacklo_epi32(x[2], x[3]), t3 = _mm512_unpackhi_epi32(x[2], x[3]);
        std::uint32_t* o = out + (g + 4 * static_cast<std::size_t>(l)) * kLanes;
        _mm512_store_si512(o, _mm512_unpacklo_epi64(t0, t2));  // lane q word s = row 4q+s
        _mm512_store_si512(o + kLanes, _mm512_unpackhi_epi64(t0, t2));
        _mm512_store_si512(o + 2 * kLanes, _mm512_unpacklo_epi64(t1, t3));
        _mm512_store_si512(o + 3 * kLanes, _mm512_unpackhi_epi64(t1, t3));
      }
    }
  }
  // k tail and partial strips: masked row loads (zero past k and past n), full 16x16 transpose.
  for (; g < ng; g += 16) {
    const std::size_t off = g * 4;
    const __mmask64 bm = byte_mask(bytes - off);
    __m512i r[16];
    for (int c = 0; c < 16; ++c) {
      if (c < rows) {
        r[c] = _mm512_maskz_loadu_epi8(bm, base + static_cast<std::size_t>(c) * row_bytes + off);
        if constexpr (is_i8<T>) r[c] = _mm512_maskz_mov_epi8(bm, _mm512_xor_si512(r[c], bias));
      } else {
        r[c] = _mm512_setzero_si512();
      }
    }
    transpose16(r);
    const std::size_t cnt = std::min<std::size_t>(16, ng - g);
    for (std::size_t i = 0; i < cnt; ++i) _mm512_store_si512(out + (g + i) * kLanes, r[i]);
  }
}

// acc += dot products of b_packed with a_bcast, per 32-bit lane. Inline asm rather than the
// intrinsic: with the intrinsic GCC 12 copies the tied accumulators between registers and the
// stack inside the hot loop (the whole GEMM ran ~1.8x slower); a "+v" operand keeps each in place.
template <class T>
inline void dp(__m512i& acc, __m512i b_packed, __m512i a_bcast) noexcept {
  if constexpr (is_i8<T>)
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(b_packed), "v"(a_bcast));  // u8 (B + 128) x s8 (A)
  else
    __asm__("vpdpwssds %2, %1, %0" : "+v"(acc) : "v"(b_packed), "v"(a_bcast));  // s16 x s16, saturating
}

struct tile_args {
  std::size_t groups;      // full 32-bit groups in this k-block
  std::size_t tail_bytes;  // bytes of a trailing partial group of A (0 if none)
  std::size_t strip_words; // distance between consecutive packed strips, in 32-bit words
  const std::uint32_t* b;  // first packed strip of the tile
  std::size_t ldc;
  bool load_c;                 // start from C (accumulate, or a later k-block)
  const std::int32_t* corr;    // per-row start values (int8 bias correction) or nullptr
  __mmask16 mask[kNV];         // valid columns of each strip
};

// C[MR x 16*NV] (+)= A[MR x block] * packed strips. Accumulators live in registers for the whole
// k-block; the loop body is NV loads, MR broadcasts and MR*NV dot-product instructions.
template <class T, int MR, int NV>
inline void micro_kernel(const T* A, std::size_t lda, std::int32_t* C, const tile_args& t) noexcept {
  __m512i acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    const __m512i c0 = t.corr ? _mm512_set1_epi32(t.corr[r]) : _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      acc[r][v] = t.load_c ? _mm512_add_epi32(c0, _mm512_maskz_loadu_epi32(t.mask[v], C + r * t.ldc + v * kLanes))
                           : c0;
  }
  const auto* a = reinterpret_cast<const char*>(A);
  const std::size_t la = lda * sizeof(T);
  const std::uint32_t* b = t.b;
  for (std::size_t g = 0; g < t.groups; ++g, a += 4, b += kLanes) {
    __m512i bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_si512(b + v * t.strip_words);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      std::int32_t w;
      std::memcpy(&w, a + r * la, 4);
      const __m512i av = _mm512_set1_epi32(w);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) dp<T>(acc[r][v], bv[v], av);
    }
  }
  if (t.tail_bytes) {  // partial last group: copy only the bytes that exist; packed B is zero past k
    __m512i bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_si512(b + v * t.strip_words);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      std::int32_t w = 0;
      std::memcpy(&w, a + r * la, t.tail_bytes);
      const __m512i av = _mm512_set1_epi32(w);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) dp<T>(acc[r][v], bv[v], av);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_epi32(C + r * t.ldc + v * kLanes, t.mask[v], acc[r][v]);
}

template <class T>
using kernel_fn = void (*)(const T*, std::size_t, std::int32_t*, const tile_args&) noexcept;

template <class T, std::size_t... I>
constexpr std::array<kernel_fn<T>, sizeof...(I)> kernel_table(std::index_sequence<I...>) {
  return {&micro_kernel<T, static_cast<int>(I % kMR) + 1, static_cast<int>(I / kMR) + 1>...};
}
// kernels<T>[(nv - 1) * kMR + mr - 1] handles mr rows x nv strips.
template <class T>
inline constexpr auto kernels = kernel_table<T>(std::make_index_sequence<kMR * kNV>{});

// out[i] = -128 * sum_p A[i, p] for i < rows: the start values that undo the +128 bias of packed
// B (mod 2^32). 16 rows at a time, so the horizontal sums share one transpose-add tree.
inline void bias_corrections(const std::int8_t* A, std::size_t lda, std::size_t rows, std::size_t k,
                             std::int32_t* out) noexcept {
  const __m512i ones = _mm512_set1_epi8(1);
  for (std::size_t i0 = 0; i0 < rows; i0 += 16) {
    const int cnt = static_cast<int>(std::min<std::size_t>(16, rows - i0));
    __m512i acc[16];
    for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_si512();
    const std::int8_t* a = A + i0 * lda;
    for (std::size_t p = 0; p < k; p += 64) {
      const __mmask64 bm = byte_mask(k - p);
      for (int r = 0; r < cnt; ++r)
        acc[r] = _mm512_dpbusd_epi32(acc[r], ones, _mm512_maskz_loadu_epi8(bm, a + static_cast<std::size_t>(r) * lda + p));
    }
    __m512i t[8], u[4];
    for (int q = 0; q < 8; ++q)  // lane words: even = row 2q, odd = row 2q+1 partial sums
      t[q] = _mm512_add_epi32(_mm512_unpacklo_epi32(acc[2 * q], acc[2 * q + 1]),
                              _mm512_unpackhi_epi32(acc[2 * q], acc[2 * q + 1]));
    for (int q = 0; q < 4; ++q)  // 128-bit lane word s = row 4q+s, summed within the lane
      u[q] = _mm512_add_epi32(_mm512_unpacklo_epi64(t[2 * q], t[2 * q + 1]),
                              _mm512_unpackhi_epi64(t[2 * q], t[2 * q + 1]));
    const __m512i v0 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[0], u[1], 0x44), _mm512_shuffle_i32x4(u[0], u[1], 0xEE));
    const __m512i v1 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[2], u[3], 0x44), _mm512_shuffle_i32x4(u[2], u[3], 0xEE));
    const __m512i sum = _mm512_add_epi32(_mm512_shuffle_i32x4(v0, v1, 0x88), _mm512_shuffle_i32x4(v0, v1, 0xDD));
    const __m512i corr = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, 7));
    _mm512_mask_storeu_epi32(out + i0, static_cast<__mmask16>((1u << cnt) - 1u), corr);
  }
}

struct grid {
  int tm = 1, tn = 1;
};

// Splits T threads into tm row blocks x tn strip blocks. A is read in place, so splitting the
// columns costs nothing extra; splitting the rows makes each thread pack the same strips again.
// Cost model in MAC-equivalents: the slowest thread's tiles plus its packing (~8 MACs per byte).
inline grid choose_grid(int threads, std::size_t m, std::size_t strips, std::size_t k) {
  grid best;
  double best_cost = -1;
  for (int tn = 1; tn <= threads; ++tn) {
    if (threads % tn) continue;
    const int tm = threads / tn;
    const std::size_t s = (strips + static_cast<std::size_t>(tn) - 1) / static_cast<std::size_t>(tn);
    const std::size_t rows = (m + static_cast<std::size_t>(tm) - 1) / static_cast<std::size_t>(tm);
    const std::size_t tiles = (rows + kMR - 1) / kMR;
    const double cost = static_cast<double>(s * kLanes) * static_cast<double>(k) *
                        (static_cast<double>(std::min<std::size_t>(rows, tiles * kMR)) + 8.0);
    if (best_cost < 0 || cost < best_cost) best_cost = cost, best = {tm, tn};
  }
  return best;
}

template <class T>
struct problem {
  std::size_t m, n, k;
  const T* A;
  std::size_t lda;
  const T* B;
  std::size_t ldb;
  std::int32_t* C;
  std::size_t ldc;
  bool accumulate;
};

// One thread's share: rows [m0, m1) x strips [s0, s1).
template <class T>
inline void run_block(const problem<T>& P, std::size_t m0, std::size_t m1, std::size_t s0, std::size_t s1) {
  if (m0 >= m1 || s0 >= s1) return;
  const std::size_t rows = m1 - m0, ns = s1 - s0;
  constexpr std::size_t pg = per_group<T>;
  const std::size_t kgroups = (P.k + pg - 1) / pg;
  // Even k-blocks of whole groups, each small enough for a strip pair to stay in L1.
  const std::size_t nkb = std::max<std::size_t>(1, (kgroups + kMaxGroupsPerBlock - 1) / kMaxGroupsPerBlock);
  const std::size_t gpb = (kgroups + nkb - 1) / nkb;

  std::int32_t* corr = nullptr;
  if constexpr (is_i8<T>) {
    corr = reinterpret_cast<std::int32_t*>(thread_scratch(1).get(rows * sizeof(std::int32_t)));
    bias_corrections(P.A + m0 * P.lda, P.lda, rows, P.k, corr);
  }
  const std::size_t strip_words = gpb * kLanes;
  auto* packed = reinterpret_cast<std::uint32_t*>(thread_scratch(0).get(ns * strip_words * sizeof(std::uint32_t)));

  // Rows per A block: a multiple of kMR whose k-block fits the L2 budget.
  const std::size_t a_rows = std::max<std::size_t>(
      kMR, kABlockBytes / std::max<std::size_t>(1, gpb * 4) / kMR * kMR);

  for (std::size_t g0 = 0; g0 < kgroups; g0 += gpb) {
    const std::size_t g1 = std::min(kgroups, g0 + gpb);
    const std::size_t k0 = g0 * pg, kc = std::min(P.k, g1 * pg) - k0;
    const bool last_kb = g1 == kgroups;
    tile_args t{};
    t.groups = kc / pg;
    t.tail_bytes = last_kb ? (kc % pg) * sizeof(T) : 0;
    t.strip_words = strip_words;
    t.ldc = P.ldc;
    t.load_c = g0 > 0 || P.accumulate;
    const bool first_kb = g0 == 0;

    for (std::size_t mb0 = 0; mb0 < rows; mb0 += a_rows) {
      const std::size_t mb1 = std::min(rows, mb0 + a_rows);
      // Balanced tiles (100 rows -> 9 tiles of 11 or 12 rows, not 8 x 12 + 4) so that no tile is
      // left with so few rows that its accumulators cannot hide the instruction latency.
      const std::size_t ntiles = (mb1 - mb0 + kMR - 1) / kMR;
      const std::size_t base = (mb1 - mb0) / ntiles, extra = (mb1 - mb0) % ntiles;
      for (std::size_t s = 0; s < ns; s += kNV) {
        const int nv = static_cast<int>(std::min<std::size_t>(kNV, ns - s));
        std::uint32_t* strip = packed + s * strip_words;
        const std::size_t col0 = (s0 + s) * kLanes;
        if (mb0 == 0) {  // pack on first use, right before the tiles that read it (still in L1)
          for (int v = 0; v < nv; ++v) {
            const std::size_t c = col0 + static_cast<std::size_t>(v) * kLanes;
            const int valid = static_cast<int>(std::min<std::size_t>(kLanes, P.n - std::min(P.n, c)));
            pack_strip<T>(P.B + c * P.ldb + k0, P.ldb, valid, kc, strip + static_cast<std::size_t>(v) * strip_words);
          }
        }
        for (int v = 0; v < kNV; ++v) {
          const std::size_t c = col0 + static_cast<std::size_t>(v) * kLanes;
          const std::size_t valid = v < nv ? std::min<std::size_t>(kLanes, P.n - std::min(P.n, c)) : 0;
          t.mask[v] = static_cast<__mmask16>((1u << valid) - 1u);
        }
        t.b = strip;
        std::size_t i = mb0;
        for (std::size_t tile = 0; tile < ntiles; ++tile) {
          const std::size_t mr = base + (tile < extra ? 1 : 0);
          t.corr = first_kb && corr ? corr + i : nullptr;
          const T* a = P.A + (m0 + i) * P.lda + k0;
          std::int32_t* c = P.C + (m0 + i) * P.ldc + col0;
          kernels<T>[static_cast<std::size_t>(nv - 1) * kMR + mr - 1](a, P.lda, c, t);
          i += mr;
        }
      }
    }
  }
}

template <class T>
inline void gemm(const problem<T>& P) {
  if (P.m == 0 || P.n == 0) return;
  if (P.k == 0) {
    if (!P.accumulate)
      for (std::size_t i = 0; i < P.m; ++i) std::fill_n(P.C + i * P.ldc, P.n, 0);
    return;
  }
  const std::size_t strips = (P.n + kLanes - 1) / kLanes;
  const int threads = max_threads(P.m * P.n * P.k);
  auto work = [&](int tid, int nt) {
    const grid gr = choose_grid(nt, P.m, strips, P.k);
    const auto bi = static_cast<std::size_t>(tid / gr.tn), bj = static_cast<std::size_t>(tid % gr.tn);
    const auto tm = static_cast<std::size_t>(gr.tm), tn = static_cast<std::size_t>(gr.tn);
    run_block(P, P.m * bi / tm, P.m * (bi + 1) / tm, strips * bj / tn, strips * (bj + 1) / tn);
  };
  if (threads <= 1) {
    work(0, 1);
    return;
  }
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
  work(omp_get_thread_num(), omp_get_num_threads());
#endif
}

}  // namespace vnni
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif  // PBNN_INT_GEMM_VNNI

}  // namespace int_gemm_impl

// Portable reference-speed implementations (also used when the SIMD path is compiled out).
inline void gemm_nt_portable(std::size_t m, std::size_t n, std::size_t k, const std::int8_t* A, std::size_t lda,
                             const std::int8_t* B, std::size_t ldb, std::int32_t* C, std::size_t ldc,
                             bool accumulate = false) {
  int_gemm_impl::portable_gemm(m, n, k, A, lda, B, ldb, C, ldc, accumulate);
}
inline void gemm_nt_portable(std::size_t m, std::size_t n, std::size_t k, const std::int16_t* A, std::size_t lda,
                             const std::int16_t* B, std::size_t ldb, std::int32_t* C, std::size_t ldc,
                             bool accumulate = false) {
  int_gemm_impl::portable_gemm(m, n, k, A, lda, B, ldb, C, ldc, accumulate);
}

// C[i*ldc + j] (=|+=) sum_p A[i*lda + p] * B[j*ldb + p] for i < m, j < n. See the contracts above.
inline void gemm_nt(std::size_t m, std::size_t n, std::size_t k, const std::int8_t* A, std::size_t lda,
                    const std::int8_t* B, std::size_t ldb, std::int32_t* C, std::size_t ldc, bool accumulate = false) {
#if PBNN_INT_GEMM_VNNI
  int_gemm_impl::vnni::gemm<std::int8_t>({m, n, k, A, lda, B, ldb, C, ldc, accumulate});
#else
  gemm_nt_portable(m, n, k, A, lda, B, ldb, C, ldc, accumulate);
#endif
}
inline void gemm_nt(std::size_t m, std::size_t n, std::size_t k, const std::int16_t* A, std::size_t lda,
                    const std::int16_t* B, std::size_t ldb, std::int32_t* C, std::size_t ldc, bool accumulate = false) {
#if PBNN_INT_GEMM_VNNI
  int_gemm_impl::vnni::gemm<std::int16_t>({m, n, k, A, lda, B, ldb, C, ldc, accumulate});
#else
  gemm_nt_portable(m, n, k, A, lda, B, ldb, C, ldc, accumulate);
#endif
}

}  // namespace pbnn::detail
