#pragma once
// Training-time augmentation of channels-last (HWC) float images, drawn from the caller's seeded
// generator so a run stays reproducible. A crop_flip is callable as train_options::augment.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "pbnn/random.hpp"

namespace pbnn {

// Random crop of the image zero-padded by `pad` pixels on each side, then a horizontal flip with
// probability 1/2 (the usual CIFAR-10 augmentation). The crop is a shift by dx, dy drawn uniformly
// from [-pad, pad]; pixels shifted in from outside the image are 0.
struct crop_flip {
  std::size_t height = 0, width = 0, channels = 0;
  int pad = 4;
  bool flip = true;

  std::size_t image_size() const noexcept { return height * width * channels; }

  // out = in moved right by dx and down by dy, then mirrored left-right if `mirror`:
  // out(h, w) = in(h - dy, w' - dx) with w' = mirror ? width - 1 - w : w, 0 outside. in != out.
  void apply(const float* in, float* out, int dx, int dy, bool mirror) const noexcept {
    const auto rows = static_cast<std::ptrdiff_t>(height), cols = static_cast<std::ptrdiff_t>(width);
    for (std::ptrdiff_t h = 0; h < rows; ++h) {
      float* out_row = out + static_cast<std::size_t>(h) * width * channels;
      const std::ptrdiff_t sh = h - dy;
      if (sh < 0 || sh >= rows) {
        std::fill_n(out_row, width * channels, 0.0f);
        continue;
      }
      const float* in_row = in + static_cast<std::size_t>(sh) * width * channels;
      for (std::ptrdiff_t w = 0; w < cols; ++w) {
        const std::ptrdiff_t sw = (mirror ? cols - 1 - w : w) - dx;
        float* px = out_row + static_cast<std::size_t>(w) * channels;
        if (sw < 0 || sw >= cols) std::fill_n(px, channels, 0.0f);
        else std::copy_n(in_row + static_cast<std::size_t>(sw) * channels, channels, px);
      }
    }
  }

  // Augments n images stored one after another at `samples` (image_size() values each) in place,
  // drawing dx, dy, then the flip, per image from g.
  void operator()(float* samples, std::size_t n, rng& g) const {
    if (pad < 0) throw std::invalid_argument("pbnn::crop_flip: pad must not be negative");
    const std::size_t size = image_size();
    const auto shifts = static_cast<std::uint64_t>(2 * pad + 1);
    std::vector<float> original(size);
    for (std::size_t i = 0; i < n; ++i) {
      const int dx = static_cast<int>(g.below(shifts)) - pad;
      const int dy = static_cast<int>(g.below(shifts)) - pad;
      const bool mirror = flip && g.below(2) == 1;
      float* image = samples + i * size;
      std::copy_n(image, size, original.data());
      apply(original.data(), image, dx, dy, mirror);
    }
  }
};

}  // namespace pbnn
