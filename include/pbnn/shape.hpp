#pragma once
// Compile-time tensor shapes: the feature dimensions of one sample (the batch is the runtime row count).
#include <cstddef>

namespace pbnn {

template <std::size_t... Dims>
struct shape {
  static_assert(sizeof...(Dims) >= 1, "pbnn::shape needs at least one dimension");
  static_assert(((Dims > 0) && ...), "pbnn::shape: every dimension must be positive");
  static constexpr std::size_t rank = sizeof...(Dims);
  static constexpr std::size_t size = (Dims * ...);
};

// The shape of a network's input sample: input<784> for flat vectors, input<3, 32, 32> for images.
template <std::size_t... Dims>
using input = shape<Dims...>;

}  // namespace pbnn
