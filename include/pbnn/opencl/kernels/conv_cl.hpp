#pragma once
// OpenCL C 1.2 source of the convolution's and pooling's data movement, element for element the CPU
// backend's (layers/conv2d.hpp, layers/max_pool.hpp): images are channels-last (H x W x C per
// sample); im2col rows are output pixels, columns (kh, kw, c). Build options: -DTQ=float|char|short|int,
// -DVEC=1|2|4|8|16; -DTRACK_MAX=1 (int sums): col2im reduces the largest |dx| it writes into
// maxima[slot] (gemm_cl.hpp's track_max_source), as quantize_cl.hpp's max_abs_int would after it.
#include "pbnn/opencl/kernels/gemm_cl.hpp"
#include "pbnn/opencl/kernels/join.hpp"

namespace pbnn::opencl::kernels {

inline constexpr char conv_body_source[] = R"CLC(
// Channels come in vectors of VEC (a build option dividing the channel count): VEC consecutive
// channels are contiguous in images and in cols alike. Kernels run over two dimensions (channels or
// columns, pixels) so the index arithmetic stays in 32 bits.
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#if VEC == 1
#define VTYPE TQ
#define VLOAD(p) (*(p))
#define VSTORE(v, p) (*(p) = (v))
#else
#define VTYPE CAT(TQ, VEC)
#define VLOAD(p) CAT(vload, VEC)(0, p)
#define VSTORE(v, p) CAT(vstore, VEC)(v, 0, p)
#endif

// cols[(n, oh, ow), (kh, kw, c)] = x[n, oh S - P + kh, ow S - P + kw, c], 0 outside the image.
// Work-item (j, row): columns j VEC .. j VEC + VEC - 1 of one row.
__kernel void im2col(__global const TQ* x, const int b, const int ih_, const int iw_, const int ic,
                     const int kk, const int stride, const int pad, const int oh_, const int ow_,
                     __global TQ* cols) {
  const int row_len = kk * kk * ic;
  const int col = get_global_id(0) * VEC, row = get_global_id(1);
  if (col >= row_len || row >= b * oh_ * ow_) return;
  const int ow = row % ow_, oh = (row / ow_) % oh_, n = row / (ow_ * oh_);
  const int c = col % ic, kw = (col / ic) % kk, kh = col / (ic * kk);
  const int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
  const VTYPE v = (ih >= 0 && ih < ih_ && iw >= 0 && iw < iw_) ? VLOAD(x + ((size_t)(n * ih_ + ih) * iw_ + iw) * ic + c)
                                                                : (VTYPE)0;
  VSTORE(v, cols + (size_t)row * row_len + col);
}

// dx[n, ih, iw, c] = sum of the dcols entries im2col copied from there, added in the CPU's order
// (output pixels ascending, so kernel taps descending): identical float sums. Work-item (cv, pixel):
// channels cv VEC .. cv VEC + VEC - 1 of one input pixel.
// TRACK_MAX: work-groups of 256 (conv.hpp's launch_grid), every item reaching the group's reduction.
#if TRACK_MAX && VEC == 1
#define LARGEST(s) ((uint)abs(s))
#elif TRACK_MAX && VEC == 2
#define LARGEST(s) max((uint)abs((s).x), (uint)abs((s).y))
#elif TRACK_MAX && VEC == 4
#define LARGEST(s) max(max((uint)abs((s).x), (uint)abs((s).y)), max((uint)abs((s).z), (uint)abs((s).w)))
#endif
__kernel void col2im(__global const TQ* dcols, const int b, const int ih_, const int iw_, const int ic,
                     const int kk, const int stride, const int pad, const int oh_, const int ow_,
                     __global TQ* dx TRACK_MAX_ARGS) {
  const int c = get_global_id(0) * VEC, pix = get_global_id(1);
  uint largest = 0;
  if (c < ic && pix < b * ih_ * iw_) {
    const int iw = pix % iw_, ih = (pix / iw_) % ih_, n = pix / (iw_ * ih_);
    const int row_len = kk * kk * ic;
    VTYPE s = (VTYPE)0;
    for (int kh = kk - 1; kh >= 0; --kh) {
      const int t = ih + pad - kh;
      if (t < 0 || t % stride) continue;
      const int oh = t / stride;
      if (oh >= oh_) continue;
      for (int kw = kk - 1; kw >= 0; --kw) {
        const int u = iw + pad - kw;
        if (u < 0 || u % stride) continue;
        const int ow = u / stride;
        if (ow >= ow_) continue;
        s += VLOAD(dcols + (size_t)((n * oh_ + oh) * ow_ + ow) * row_len + (kh * kk + kw) * ic + c);
      }
    }
    VSTORE(s, dx + (size_t)pix * ic + c);
#if TRACK_MAX
    largest = LARGEST(s);
#endif
  }
#if TRACK_MAX
  __local uint scratch[256];
  group_max_into(largest, scratch, 256, get_local_id(1) * get_local_size(0) + get_local_id(0), maxima, slot);
#else
  (void)largest;
#endif
}

// Max over each size x size window per channel; argmax = the window position of the first maximum
// (row-major in the window), kept for the backward pass when keep_argmax. Work-item (channel, pixel).
__kernel void max_pool(__global const TQ* x, const int b, const int h, const int w, const int ch, const int size,
                       __global TQ* y, __global uchar* argmax, const int keep_argmax) {
  const int ho = h / size, wo = w / size;
  const int c = get_global_id(0), pix = get_global_id(1);  // channel, output pixel
  if (c >= ch || pix >= b * ho * wo) return;
  const size_t g = (size_t)pix * ch + c;
  const int ow = pix % wo, oh = (pix / wo) % ho, n = pix / (wo * ho);
  __global const TQ* first = x + ((size_t)(n * h + oh * size) * w + ow * size) * ch + c;
  TQ best = first[0];
  uchar arg = 0;
  for (int k = 1; k < size * size; ++k) {
    const TQ v = first[((size_t)(k / size) * w + k % size) * ch];
    if (v > best) {
      best = v;
      arg = (uchar)k;
    }
  }
  y[g] = best;
  if (keep_argmax) argmax[g] = arg;
}

// dx = dy routed to each window's arg-max, 0 elsewhere. Work-item (channel, output pixel): reads its
// dy and argmax once and writes the whole window.
__kernel void max_pool_grad(__global const TQ* dy, __global const uchar* argmax, const int b, const int h,
                            const int w, const int ch, const int size, __global TQ* dx) {
  const int ho = h / size, wo = w / size;
  const int c = get_global_id(0), pix = get_global_id(1);  // channel, output pixel
  if (c >= ch || pix >= b * ho * wo) return;
  const size_t o = (size_t)pix * ch + c;
  const int ow = pix % wo, oh = (pix / wo) % ho, n = pix / (wo * ho);
  const TQ g = dy[o];
  const int arg = argmax[o];
  __global TQ* first = dx + ((size_t)(n * h + oh * size) * w + ow * size) * ch + c;
  for (int k = 0; k < size * size; ++k) first[((size_t)(k / size) * w + k % size) * ch] = k == arg ? g : (TQ)0;
}
)CLC";

inline constexpr auto conv_joined = join_sources(track_max_source, conv_body_source);
inline constexpr const char* conv_source = conv_joined.data();

}  // namespace pbnn::opencl::kernels
