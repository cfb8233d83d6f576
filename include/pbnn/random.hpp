#pragma once
// Seeded random numbers. Two kinds:
// - rng: a sequential generator (xoshiro256**) for shuffling and initialisation;
// - stream: counter-based (a hash of key and index), so element i of a tensor gets the same random
//   value however the loop is split across threads. Runs are reproducible from one seed.
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>

namespace pbnn {

// splitmix64's finaliser: a bijective 64-bit mix with good avalanche.
constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class rng {
 public:
  using result_type = std::uint64_t;
  explicit rng(std::uint64_t seed = 1) noexcept { reseed(seed); }
  void reseed(std::uint64_t seed) noexcept {
    for (auto& w : s_) w = seed = mix64(seed);
  }
  static constexpr result_type min() noexcept { return 0; }
  static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }
  result_type operator()() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // The full generator state, to save a run and continue it later exactly where it stopped.
  using state_type = std::array<std::uint64_t, 4>;
  state_type state() const noexcept { return {s_[0], s_[1], s_[2], s_[3]}; }
  void set_state(const state_type& s) {
    // xoshiro's one invalid state: it would return 0 forever.
    if (s == state_type{}) throw std::invalid_argument("pbnn::rng::set_state: the all-zero state is invalid");
    for (std::size_t i = 0; i < 4; ++i) s_[i] = s[i];
  }

  // Uniform in [0, 1) with 24 random bits.
  float uniform() noexcept { return static_cast<float>((*this)() >> 40) * 0x1p-24f; }
  float uniform(float lo, float hi) noexcept { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n) (Lemire's multiply-shift; the bias is below n / 2^64).
  std::uint64_t below(std::uint64_t n) noexcept {
    __extension__ using u128 = unsigned __int128;
    return static_cast<std::uint64_t>((static_cast<u128>((*this)()) * n) >> 64);
  }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4]{};
};

// Counter-based random stream: value i depends only on (key, i). A 32-bit integer hash (Wellons'
// lowbias32) rather than a 64-bit one, because it vectorizes and stochastic rounding needs one
// value per tensor element on the hot path.
constexpr std::uint32_t hash32(std::uint32_t key, std::uint32_t i) noexcept {
  std::uint32_t h = (i * 0x9e3779b9u) ^ key;
  h ^= h >> 16;
  h *= 0x7feb352du;
  h ^= h >> 15;
  h *= 0x846ca68bu;
  h ^= h >> 16;
  return h;
}
// Uniform in [0, 1) with 24 bits.
constexpr float hash_uniform(std::uint32_t key, std::uint32_t i) noexcept {
  return static_cast<float>(hash32(key, i) >> 8) * 0x1p-24f;
}

struct stream {
  std::uint32_t key = 0;
  std::uint32_t bits(std::uint32_t i) const noexcept { return hash32(key, i); }
  float uniform(std::uint32_t i) const noexcept { return hash_uniform(key, i); }
};

// A fresh stream from the sequential generator.
inline stream make_stream(rng& g) noexcept { return stream{static_cast<std::uint32_t>(g() >> 32)}; }

}  // namespace pbnn
