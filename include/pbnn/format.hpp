#pragma once
// Number-format policies and their traits.
//
// A format names how tensors are stored and how products accumulate. Fixed formats store integers
// (int8 / int16) and accumulate in int32 for real; a tensor's real value is q * 2^exp with one
// power-of-two exponent per tensor (see docs in README.md, "Number formats").
#include <cstdint>
#include <type_traits>

namespace pbnn {

enum class rounding { nearest_even, stochastic };

// IEEE single precision everywhere: the reference format.
struct fp32 {};

// Fixed point with Bits-bit storage. ParamFrac: fractional bits of parameters (latent weights P),
// so a parameter spans [-2^(Bits-1-ParamFrac), 2^(Bits-1-ParamFrac)); the default Bits-1 gives [-1, 1),
// the range every binarization scheme keeps its parameters in.
template <int Bits, int ParamFrac = Bits - 1>
struct fixed {
  static_assert(Bits == 8 || Bits == 16, "pbnn::fixed<Bits>: Bits must be 8 or 16");
  static_assert(ParamFrac >= 0 && ParamFrac < Bits, "pbnn::fixed<Bits, ParamFrac>: ParamFrac out of range");
};

// Specialize format_traits for a format of your own; the library reads only these members.
template <class Format>
struct format_traits;

template <>
struct format_traits<fp32> {
  using storage = float;
  using accum = float;
  static constexpr bool is_fixed = false;
  static constexpr const char* name = "fp32";
};

template <int Bits, int ParamFrac>
struct format_traits<fixed<Bits, ParamFrac>> {
  using storage = std::conditional_t<Bits == 8, std::int8_t, std::int16_t>;
  using accum = std::int32_t;
  static constexpr bool is_fixed = true;
  static constexpr const char* name = Bits == 8 ? "fixed8" : "fixed16";
  static constexpr int bits = Bits;
  // Parameters: value = q * 2^-param_frac, saturating to +-param_max.
  static constexpr int param_frac = ParamFrac;
  static constexpr std::int32_t param_max = (1 << (Bits - 1)) - 1;
  // GEMM operands (activations, errors, binarized weights) are limited to +-operand_max so that
  // int32 accumulation cannot overflow in practice: 8-bit products sum exactly for any k <= 66000;
  // for 16 bits, 12-bit operands keep k * 2^22 within int32 up to k = 512, and beyond that the
  // accumulation saturates (counted) instead of wrapping.
  static constexpr std::int32_t operand_max = Bits == 8 ? 127 : 2047;
  // Values bounded by 1 (binarized weights theta, binary/progressive activations): 1.0 == 2^unit_frac.
  static constexpr int unit_frac = Bits == 8 ? 6 : 10;
  // Where each kind of tensor is rounded (stochastic rounding keeps small values in expectation).
  static constexpr rounding activation_rounding = rounding::nearest_even;
  static constexpr rounding error_rounding = rounding::stochastic;
  static constexpr rounding update_rounding = rounding::stochastic;
};

template <class F>
concept number_format = requires { typename format_traits<F>::storage; };

template <class F>
inline constexpr bool is_fixed_v = format_traits<F>::is_fixed;

template <class F>
using storage_t = typename format_traits<F>::storage;

}  // namespace pbnn
