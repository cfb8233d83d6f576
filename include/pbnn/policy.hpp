#pragma once
// A policy bundles the three compile-time choices every layer is built from: number format,
// binarization scheme and backend.
#include "pbnn/binarize.hpp"
#include "pbnn/format.hpp"

namespace pbnn {

// The reference backend: Eigen (fp32) and pbnn's own integer kernels (fixed formats), OpenMP threads.
struct cpu {
  static constexpr const char* name = "cpu";
};

template <number_format Format, binarization_scheme Scheme, class Backend = cpu>
struct policy {
  using format = Format;
  using scheme = Scheme;
  using backend = Backend;
};

// Marks a layer option that takes the network policy's value.
struct inherit {};

// The same policy with another scheme (a layer kept real inside a binarized network, for example).
template <class Policy, class Scheme>
using with_scheme = policy<typename Policy::format, std::conditional_t<std::is_same_v<Scheme, inherit>,
                                                                       typename Policy::scheme, Scheme>,
                           typename Policy::backend>;

template <class T>
inline constexpr bool is_progressive_v = false;
template <class S, activation_gradient G>
inline constexpr bool is_progressive_v<progressive<S, G>> = true;

}  // namespace pbnn
