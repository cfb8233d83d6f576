#pragma once
// What a layer needs to know about the current step besides its inputs.
#include <cstdint>

#include "pbnn/quantize.hpp"
#include "pbnn/random.hpp"

namespace pbnn {

// train: the training network (theta, batch statistics). eval: the trained binary network (sign
// weights and activations, batch norm from its running statistics). calibrate: the binary network
// with batch norm measuring batch statistics and averaging them into its running ones.
enum class mode { train, eval, calibrate };

struct context {
  pbnn::mode mode = mode::train;
  float v = 1.0f;                 // progressive scale of this epoch
  bool bn_threshold = false;      // v >= the configured threshold: sign(BN(x)) by comparison (eqs. 4-5)
  rng* gen = nullptr;             // source of per-step random streams (stochastic schemes, rounding)
  saturation_counter saturation;  // fixed-point saturation events
  // Set (by detail::layer_passes) while a layer writes an output or input gradient that a batch norm
  // trained together with its activation reads next: a backend may then leave it in a form only
  // that operation takes (the OpenCL backend: a product's k slices, added as the batch norm reads them).
  bool read_by_fused_batch_norm = false;

  bool training() const noexcept { return mode == mode::train; }
  // A fresh counter-based stream; deterministic given the seed and the order of calls.
  stream next_stream() noexcept { return gen ? make_stream(*gen) : stream{0x5eed5eedu}; }
};

}  // namespace pbnn
