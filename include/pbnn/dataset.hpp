#pragma once
// An in-memory labelled data set of real-valued samples, and batches drawn from it in the format.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <vector>

#include "pbnn/data/cifar10.hpp"
#include "pbnn/data/idx.hpp"
#include "pbnn/quantize.hpp"
#include "pbnn/tensor.hpp"

namespace pbnn {

struct dataset {
  std::size_t count = 0, features = 0, classes = 10;
  std::vector<float> x;             // count x features, row-major
  std::vector<std::uint8_t> label;  // count
};

// Images scaled to [0, 1].
inline dataset to_dataset(const data::labelled_images& d, std::size_t classes = 10) {
  dataset out;
  out.count = d.count;
  out.features = d.image_size();
  out.classes = classes;
  out.x.resize(d.pixels.size());
  std::transform(d.pixels.begin(), d.pixels.end(), out.x.begin(), [](std::uint8_t p) { return p / 255.0f; });
  out.label = d.labels;
  return out;
}

// CIFAR-10 images scaled to [0, 1], channels-last as read (features = 32 * 32 * 3).
inline dataset to_dataset(const data::cifar10_images& d) {
  dataset out;
  out.count = d.count;
  out.features = data::cifar10_images::image_size;
  out.classes = data::cifar10_images::classes;
  out.x.resize(d.pixels.size());
  std::transform(d.pixels.begin(), d.pixels.end(), out.x.begin(), [](std::uint8_t p) { return p / 255.0f; });
  out.label = d.labels;
  return out;
}

// Mean and standard deviation over every value of the set (computed on the training set, applied
// to both sets with standardize()).
struct moments {
  float mean = 0, stddev = 1;
};
inline moments global_moments(const dataset& d) {
  double s1 = 0, s2 = 0;
  for (const float v : d.x) {
    s1 += v;
    s2 += static_cast<double>(v) * v;
  }
  const double n = static_cast<double>(d.x.size()), mean = n ? s1 / n : 0.0;
  const double var = n ? std::max(0.0, s2 / n - mean * mean) : 1.0;
  return {static_cast<float>(mean), static_cast<float>(var > 0 ? std::sqrt(var) : 1.0)};
}
// x = (x - mean) / stddev for every value.
inline void standardize(dataset& d, moments m) {
  for (float& v : d.x) v = (v - m.mean) / m.stddev;
}

// Mean and standard deviation of each channel of a channels-last set (value j of a sample belongs
// to channel j % channels), over every pixel of every sample: colour channels differ in level and
// spread, so one global pair would leave them unequal. Computed on the training set.
struct channel_moments {
  std::vector<float> mean, stddev;  // one per channel
  std::size_t channels() const noexcept { return mean.size(); }
};
inline channel_moments per_channel_moments(const dataset& d, std::size_t channels) {
  if (channels == 0 || d.features % channels != 0)
    throw std::invalid_argument("pbnn::per_channel_moments: the sample size must be a positive multiple of the "
                                "channel count");
  std::vector<double> s1(channels), s2(channels);
  for (std::size_t j = 0; j < d.x.size(); ++j) {
    const double v = d.x[j];
    s1[j % channels] += v;
    s2[j % channels] += v * v;
  }
  const double n = static_cast<double>(d.x.size() / channels);
  channel_moments m;
  for (std::size_t c = 0; c < channels; ++c) {
    const double mean = n ? s1[c] / n : 0.0, var = n ? std::max(0.0, s2[c] / n - mean * mean) : 1.0;
    m.mean.push_back(static_cast<float>(mean));
    m.stddev.push_back(static_cast<float>(var > 0 ? std::sqrt(var) : 1.0));
  }
  return m;
}
// x = (x - mean[c]) / stddev[c] for every value of channel c.
inline void standardize(dataset& d, const channel_moments& m) {
  const std::size_t channels = m.channels();
  if (channels == 0 || m.stddev.size() != channels || d.features % channels != 0)
    throw std::invalid_argument("pbnn::standardize: moments of one channel each, a channel count that divides the "
                                "sample size");
  for (std::size_t j = 0; j < d.x.size(); ++j) d.x[j] = (d.x[j] - m.mean[j % channels]) / m.stddev[j % channels];
}

// Called on a batch's n gathered real-valued rows (n x features, contiguous) before they are
// quantized: training-time augmentation.
using batch_transform = std::function<void(float* rows, std::size_t n)>;

// Gathers samples idx[0..n) into a batch in the format (fixed: nearest-even rounding with a
// per-batch exponent) and their labels into labels; `transform`, if set, first edits the real values.
template <class F>
void gather_batch(const dataset& d, const std::size_t* idx, std::size_t n, batch_tensor<F>& out,
                  std::vector<std::uint8_t>& labels, std::vector<float>& scratch,
                  const batch_transform& transform = {}) {
  out.resize(n, d.features);
  labels.resize(n);
  float* dst = nullptr;
  if constexpr (is_fixed_v<F>) {
    scratch.resize(n * d.features);
    dst = scratch.data();
  } else {
    dst = out.data.data();
  }
  for (std::size_t r = 0; r < n; ++r) {
    std::copy_n(d.x.data() + idx[r] * d.features, d.features, dst + r * d.features);
    labels[r] = d.label[idx[r]];
  }
  if (transform) transform(dst, n);
  if constexpr (is_fixed_v<F>)
    out.exp = quantize_dynamic(scratch.data(), scratch.size(), out.data.data(), format_traits<F>::operand_max,
                               rounding::nearest_even, stream{});
  else
    out.exp = 0;
}

}  // namespace pbnn
