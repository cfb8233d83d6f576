#pragma once
// out[c * rows + r] = in[r * cols + c]: the transposes that put the reduction dimension of the integer
// GEMMs' operands in contiguous memory (im2col matrices of tens of MB in the convolutions' backward
// pass). Tiles of 16 x 16 bytes (8 x 8 int16) are transposed in SSE2 registers on x86-64; elsewhere,
// and for the edges, a scalar tile loop whose writes run along contiguous output rows. Both are
// threaded over bands of input rows.
#include <algorithm>
#include <cstddef>

#if defined(__SSE2__) || defined(_M_X64)
#define PBNN_TRANSPOSE_SSE2 1
#include <emmintrin.h>
#else
#define PBNN_TRANSPOSE_SSE2 0
#endif

namespace pbnn::detail {

namespace transpose_impl {

// Rows [r0, r1) x columns [c0, c1), one output row at a time (contiguous writes).
template <class T>
inline void scalar_tile(const T* in, std::size_t rows, std::size_t cols, T* out, std::size_t r0, std::size_t r1,
                        std::size_t c0, std::size_t c1) noexcept {
  for (std::size_t c = c0; c < c1; ++c)
    for (std::size_t r = r0; r < r1; ++r) out[c * rows + r] = in[r * cols + c];
}

#if PBNN_TRANSPOSE_SSE2
inline __m128i load(const void* p) noexcept { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
inline void store(void* p, __m128i v) noexcept { _mm_storeu_si128(static_cast<__m128i*>(p), v); }

// 16 x 16 bytes: rows of 16 bytes at in + i * ld_in become columns at out + j * ld_out.
// Each stage interleaves pairs of registers at twice the width of the stage before.
inline void tile16x16_u8(const char* in, std::size_t ld_in, char* out, std::size_t ld_out) noexcept {
  __m128i r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = load(in + static_cast<std::size_t>(i) * ld_in);
  for (int i = 0; i < 8; ++i) {  // t[i]: 16-bit word j = column j of rows 2i, 2i+1 (t[i+8]: column 8+j)
    t[i] = _mm_unpacklo_epi8(r[2 * i], r[2 * i + 1]);
    t[i + 8] = _mm_unpackhi_epi8(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h)  // r[8h + 4q + i]...: dword j = column 8h + 4q' + j of rows 4i..4i+3
    for (int i = 0; i < 4; ++i) {
      r[8 * h + i] = _mm_unpacklo_epi16(t[8 * h + 2 * i], t[8 * h + 2 * i + 1]);      // columns 8h + 0..3
      r[8 * h + 4 + i] = _mm_unpackhi_epi16(t[8 * h + 2 * i], t[8 * h + 2 * i + 1]);  // columns 8h + 4..7
    }
  for (int q = 0; q < 4; ++q) {  // r[4q + i] holds columns 4q..4q+3 of rows 4i..4i+3
    const __m128i* u = r + 4 * q;
    const __m128i lo01 = _mm_unpacklo_epi32(u[0], u[1]), hi01 = _mm_unpackhi_epi32(u[0], u[1]);  // rows 0..7
    const __m128i lo23 = _mm_unpacklo_epi32(u[2], u[3]), hi23 = _mm_unpackhi_epi32(u[2], u[3]);  // rows 8..15
    char* o = out + static_cast<std::size_t>(4 * q) * ld_out;
    store(o, _mm_unpacklo_epi64(lo01, lo23));
    store(o + ld_out, _mm_unpackhi_epi64(lo01, lo23));
    store(o + 2 * ld_out, _mm_unpacklo_epi64(hi01, hi23));
    store(o + 3 * ld_out, _mm_unpackhi_epi64(hi01, hi23));
  }
}

// 8 x 8 16-bit values, the same scheme one stage shorter.
inline void tile8x8_u16(const char* in, std::size_t ld_in, char* out, std::size_t ld_out) noexcept {
  __m128i r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = load(in + static_cast<std::size_t>(i) * ld_in);
  for (int i = 0; i < 4; ++i) {  // t[i]: dword j = column j of rows 2i, 2i+1 (t[i+4]: column 4+j)
    t[i] = _mm_unpacklo_epi16(r[2 * i], r[2 * i + 1]);
    t[i + 4] = _mm_unpackhi_epi16(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // columns 4h..4h+3
    const __m128i* u = t + 4 * h;
    const __m128i lo01 = _mm_unpacklo_epi32(u[0], u[1]), hi01 = _mm_unpackhi_epi32(u[0], u[1]);  // rows 0..3
    const __m128i lo23 = _mm_unpacklo_epi32(u[2], u[3]), hi23 = _mm_unpackhi_epi32(u[2], u[3]);  // rows 4..7
    char* o = out + static_cast<std::size_t>(4 * h) * ld_out;
    store(o, _mm_unpacklo_epi64(lo01, lo23));
    store(o + ld_out, _mm_unpackhi_epi64(lo01, lo23));
    store(o + 2 * ld_out, _mm_unpacklo_epi64(hi01, hi23));
    store(o + 3 * ld_out, _mm_unpackhi_epi64(hi01, hi23));
  }
}
#endif

// Side of the square tile held in registers for T (1 where there is none).
template <class T>
inline constexpr std::size_t simd_tile = PBNN_TRANSPOSE_SSE2 && sizeof(T) <= 2 ? 16 / sizeof(T) : 1;

}  // namespace transpose_impl

template <class T>
void transpose(const T* in, std::size_t rows, std::size_t cols, T* out) {
  using namespace transpose_impl;
  // Bands of 64 input rows (whole cache lines of output per column); columns in blocks of 64 so
  // the band's input stays in L1 while its output rows are written.
  constexpr std::size_t band = 64, blk = 64, tile = simd_tile<T>;
  const std::size_t bands = (rows + band - 1) / band;
#pragma omp parallel for schedule(static) if (rows * cols > 262144)
  for (std::size_t b = 0; b < bands; ++b) {
    const std::size_t r0 = b * band, r1 = std::min(rows, r0 + band);
    for (std::size_t c0 = 0; c0 < cols; c0 += blk) {
      const std::size_t c1 = std::min(cols, c0 + blk);
      std::size_t rt = r0, ct = c0;  // whole SIMD tiles cover [r0, rt) x [c0, ct); without SIMD, none
      if constexpr (tile > 1) {
        rt = r0 + (r1 - r0) / tile * tile, ct = c0 + (c1 - c0) / tile * tile;
        for (std::size_t c = c0; c < ct; c += tile)
          for (std::size_t r = r0; r < rt; r += tile) {
            const auto* src = reinterpret_cast<const char*>(in + r * cols + c);
            auto* dst = reinterpret_cast<char*>(out + c * rows + r);
            if constexpr (sizeof(T) == 1) tile16x16_u8(src, cols, dst, rows);
            else tile8x8_u16(src, cols * 2, dst, rows * 2);
          }
      }
      scalar_tile(in, rows, cols, out, r0, r1, ct, c1);  // right edge, all rows
      scalar_tile(in, rows, cols, out, rt, r1, c0, ct);  // bottom edge
    }
  }
}

}  // namespace pbnn::detail
