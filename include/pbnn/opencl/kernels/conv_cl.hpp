#pragma once
// OpenCL C 1.2 source of the convolution's and pooling's data movement, element for element the CPU
// backend's (layers/conv2d.hpp, layers/max_pool.hpp): images are channels-last (H x W x C per
// sample); im2col rows are output pixels, columns (kh, kw, c). Build option: -DTQ=float|char|short|int.
namespace pbnn::opencl::kernels {

inline constexpr const char* conv_source = R"CLC(
// cols[(n, oh, ow), (kh, kw, c)] = x[n, oh S - P + kh, ow S - P + kw, c], 0 outside the image.
// One work-item per element of cols.
__kernel void im2col(__global const TQ* x, const int b, const int ih_, const int iw_, const int ic,
                     const int kk, const int stride, const int pad, const int oh_, const int ow_,
                     __global TQ* cols) {
  const int row_len = kk * kk * ic;
  const size_t total = (size_t)b * oh_ * ow_ * row_len;
  const size_t g = get_global_id(0);
  if (g >= total) return;
  const int col = (int)(g % row_len);
  const size_t row = g / row_len;
  const int ow = (int)(row % ow_), oh = (int)((row / ow_) % oh_), n = (int)(row / ((size_t)ow_ * oh_));
  const int c = col % ic, kw = (col / ic) % kk, kh = col / (ic * kk);
  const int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
  cols[g] = (ih >= 0 && ih < ih_ && iw >= 0 && iw < iw_) ? x[(((size_t)n * ih_ + ih) * iw_ + iw) * ic + c] : (TQ)0;
}

// dx[n, ih, iw, c] = sum of the dcols entries im2col copied from there, added in the CPU's order
// (output pixels ascending, so kernel taps descending): identical float sums.
__kernel void col2im(__global const TQ* dcols, const int b, const int ih_, const int iw_, const int ic,
                     const int kk, const int stride, const int pad, const int oh_, const int ow_,
                     __global TQ* dx) {
  const size_t total = (size_t)b * ih_ * iw_ * ic;
  const size_t g = get_global_id(0);
  if (g >= total) return;
  const int c = (int)(g % ic);
  const size_t pix = g / ic;
  const int iw = (int)(pix % iw_), ih = (int)((pix / iw_) % ih_), n = (int)(pix / ((size_t)iw_ * ih_));
  const int row_len = kk * kk * ic;
  TQ s = 0;
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
      s += dcols[(((size_t)n * oh_ + oh) * ow_ + ow) * row_len + (kh * kk + kw) * ic + c];
    }
  }
  dx[g] = s;
}

// Max over each size x size window per channel; argmax = the window position of the first maximum
// (row-major in the window), kept for the backward pass when keep_argmax.
__kernel void max_pool(__global const TQ* x, const int b, const int h, const int w, const int ch, const int size,
                       __global TQ* y, __global uchar* argmax, const int keep_argmax) {
  const int ho = h / size, wo = w / size;
  const size_t total = (size_t)b * ho * wo * ch;
  const size_t g = get_global_id(0);
  if (g >= total) return;
  const int c = (int)(g % ch);
  const size_t pix = g / ch;
  const int ow = (int)(pix % wo), oh = (int)((pix / wo) % ho), n = (int)(pix / ((size_t)wo * ho));
  __global const TQ* first = x + (((size_t)n * h + oh * size) * w + ow * size) * ch + c;
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

// dx = dy routed to each window's arg-max, 0 elsewhere. One work-item per element of dx.
__kernel void max_pool_grad(__global const TQ* dy, __global const uchar* argmax, const int b, const int h,
                            const int w, const int ch, const int size, __global TQ* dx) {
  const int ho = h / size, wo = w / size;
  const size_t total = (size_t)b * h * w * ch;
  const size_t g = get_global_id(0);
  if (g >= total) return;
  const int c = (int)(g % ch);
  const size_t pix = g / ch;
  const int iw = (int)(pix % w), ih = (int)((pix / w) % h), n = (int)(pix / ((size_t)w * h));
  const int oh = ih / size, ow = iw / size;
  const size_t o = (((size_t)n * ho + oh) * wo + ow) * ch + c;
  dx[g] = argmax[o] == (uchar)((ih % size) * size + iw % size) ? dy[o] : (TQ)0;
}
)CLC";

}  // namespace pbnn::opencl::kernels
