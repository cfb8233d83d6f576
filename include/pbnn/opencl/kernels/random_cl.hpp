#pragma once
// OpenCL C 1.2 source of pbnn's counter-based random stream (pbnn/random.hpp): hash32(key, i), Wellons'
// lowbias32 of i * golden ^ key, and hash_uniform, its top 24 bits in [0, 1). Prepended to the
// sources of kernels that round stochastically or draw signs (with_random), so that device draws
// equal the CPU's.
#include <string>

namespace pbnn::opencl::kernels {

inline constexpr const char* random_source = R"CLC(
uint hash32(uint key, uint i) {
  uint h = (i * 0x9e3779b9u) ^ key;
  h ^= h >> 16;
  h *= 0x7feb352du;
  h ^= h >> 15;
  h *= 0x846ca68bu;
  h ^= h >> 16;
  return h;
}
float hash_uniform(uint key, uint i) { return (float)(hash32(key, i) >> 8) * (1.0f / 16777216.0f); }
)CLC";

inline std::string with_random(const char* source) { return std::string(random_source) + source; }

}  // namespace pbnn::opencl::kernels
